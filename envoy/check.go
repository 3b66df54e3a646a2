// Package envoy adapts Envoy's external authorization gRPC API (envoy.service.auth.v3) to package authz:
// a CheckRequest becomes an authz.Request, an authz.Decision becomes a CheckResponse. It never decides.
package envoy

import (
	"context"
	"net/http"
	"strings"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/mcp-authz/mcp-authz/authz"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// ResourceKey is the per-route context extension naming the targeted resource (its url or name).
const ResourceKey = "resource"

// partialBodyHeader is set by Envoy when it sent only part of the body (allow_partial_message).
const partialBodyHeader = "x-envoy-auth-partial-body"

// Checker decides requests; *authz.Authorizer is one.
type Checker interface {
	Check(ctx context.Context, req *authz.Request) *authz.Decision
}

// Server implements envoy.service.auth.v3.Authorization.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	checker Checker
	tracing Tracing // nil: trace headers in gRPC metadata are ignored
	claims  bool    // the token's claims go into the dynamic metadata too
}

// NewServer returns the gRPC Authorization service deciding with c.
func NewServer(c Checker, opts ...Option) *Server {
	s := &Server{checker: c}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Check implements the ext_authz Check call. Every outcome, even a malformed CheckRequest, is an answer:
// the RPC itself never fails, so Envoy never falls back to failure_mode_allow.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return s.response(s.checker.Check(s.traceContext(ctx), Request(req))), nil
}

// Request translates a CheckRequest into an authz.Request.
func Request(req *authv3.CheckRequest) *authz.Request {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	r := &authz.Request{
		Method:   h.GetMethod(),
		Scheme:   h.GetScheme(),
		Host:     h.GetHost(),
		Path:     h.GetPath(),
		Headers:  h.GetHeaders(),
		Resource: attrs.GetContextExtensions()[ResourceKey],
	}
	if hm := h.GetHeaderMap(); hm != nil && len(r.Headers) == 0 { // encode_raw_headers: true
		r.Headers = make(map[string]string, len(hm.GetHeaders()))
		for _, hv := range hm.GetHeaders() {
			k := strings.ToLower(hv.GetKey())
			v := hv.GetValue()
			if v == "" {
				v = string(hv.GetRawValue())
			}
			if prev, ok := r.Headers[k]; ok {
				v = prev + "," + v
			}
			r.Headers[k] = v
		}
	}
	if r.Headers == nil {
		r.Headers = map[string]string{}
	}
	if r.Host == "" {
		r.Host = r.Headers[":authority"]
	}
	if raw := h.GetRawBody(); len(raw) > 0 {
		r.Body = raw
	} else if b := h.GetBody(); b != "" {
		r.Body = []byte(b)
	}
	r.BodyTruncated = r.Headers[partialBodyHeader] == "true"
	return r
}

// Response translates an authz.Decision into a CheckResponse: OK with headers to set and remove and the
// dynamic metadata (the identity, not its claims), a DeniedHttpResponse, or for an unavailable decision an
// error_response (so Envoy counts it as an authorization-service error) with status UNAVAILABLE. The
// dynamic metadata is carried already encoded: GetDynamicMetadata returns it once the response went
// through the wire.
func Response(d *authz.Decision) *authv3.CheckResponse { return (&Server{}).response(d) }

func (s *Server) response(d *authz.Decision) *authv3.CheckResponse {
	if d.Allow {
		m := new(allowMessages)
		m.status.Code = int32(code.Code_OK)
		m.ok.Headers, m.ok.HeadersToRemove = headerOptions(d.Headers), d.RemoveHeaders
		m.okResponse.OkResponse = &m.ok
		resp := &m.resp
		resp.Status, resp.HttpResponse = &m.status, &m.okResponse
		if md := metadata(d, s.claims); md != nil {
			resp.ProtoReflect().SetUnknown(md) // dynamic_metadata, already encoded
		}
		return resp
	}
	denied := &authv3.DeniedHttpResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(d.Status)},
		Headers: headerOptions(d.Headers),
		Body:    string(d.Body),
	}
	if d.Unavailable {
		return &authv3.CheckResponse{
			Status:       &rpcstatus.Status{Code: int32(code.Code_UNAVAILABLE), Message: d.Reason},
			HttpResponse: &authv3.CheckResponse_ErrorResponse{ErrorResponse: denied},
		}
	}
	c := code.Code_PERMISSION_DENIED
	if d.Status == http.StatusUnauthorized {
		c = code.Code_UNAUTHENTICATED
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(c)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: denied},
	}
}

// allowMessages are the messages of an allow's CheckResponse, allocated in one block rather than one by one.
type allowMessages struct {
	resp       authv3.CheckResponse
	status     rpcstatus.Status
	okResponse authv3.CheckResponse_OkResponse
	ok         authv3.OkHttpResponse
}

// headerOptions converts headers to set, allocating the messages in two blocks rather than two per header.
func headerOptions(hs []authz.Header) []*corev3.HeaderValueOption {
	out := make([]*corev3.HeaderValueOption, len(hs))
	opts := make([]corev3.HeaderValueOption, len(hs))
	values := make([]corev3.HeaderValue, len(hs))
	for i, h := range hs {
		values[i].Key, values[i].Value = h.Name, h.Value
		opts[i].Header, opts[i].AppendAction = &values[i], corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		out[i] = &opts[i]
	}
	return out
}

// metadataField is the wire number of CheckResponse.dynamic_metadata.
var metadataField = (&authv3.CheckResponse{}).ProtoReflect().Descriptor().Fields().ByName("dynamic_metadata").Number()

// metadata is the dynamic metadata of an allow, in the envoy.filters.http.ext_authz namespace: the caller's
// identity, and its claims when claims is set, for access logs and later filters. Claims that cannot be
// represented are left out; the rest is kept. Nil when there is none.
//
// It is returned already encoded, as the CheckResponse's dynamic_metadata field (Response sets it as the
// message's raw field bytes, which the gRPC codec sends as they are): the identity's fields are encoded
// once per cached token (identityEntries; kept from its second request on), and only the per-request
// strings (resource, MCP method and tool) are appended per Check (marshalling the Struct from its map on
// every Check cost more than the rest of the response). A Struct is a map, whose entries may come in any order on the wire; Envoy (and any
// protobuf parser) reads the concatenation as one Struct.
func metadata(d *authz.Decision, claims bool) protoreflect.RawFields {
	id := d.Identity
	if id == nil {
		return nil
	}
	v, ok := id.Memoized(identityEntriesKey{claims})
	if !ok {
		v = id.MemoOnReuse(identityEntriesKey{claims}, func() any { return identityEntries(id, claims) })
	}
	idEntries, _ := v.([]byte)
	if idEntries == nil || !utf8.ValidString(d.Resource) || d.MCP != nil && (!utf8.ValidString(d.MCP.Method) || !utf8.ValidString(d.MCP.Tool)) {
		return nil // proto strings must be UTF-8: no metadata rather than a response that cannot be sent
	}
	// The per-request entries, then the field: tag, length, identity entries, per-request entries.
	var perRequest [160]byte
	entries := appendStringEntry(perRequest[:0], "resource", d.Resource)
	if d.MCP != nil {
		entries = appendStringEntry(entries, "mcp_method", d.MCP.Method)
		if d.MCP.Tool != "" {
			entries = appendStringEntry(entries, "tool", d.MCP.Tool)
		}
	}
	size := len(idEntries) + len(entries)
	field := make([]byte, 0, protowire.SizeTag(metadataField)+protowire.SizeBytes(size))
	field = protowire.AppendTag(field, metadataField, protowire.BytesType)
	field = protowire.AppendVarint(field, uint64(size))
	field = append(field, idEntries...)
	return append(field, entries...)
}

// Wire numbers of google.protobuf.Struct's map entries (key 1, value 2, as for every map), of the
// string_value and list_value of google.protobuf.Value and of ListValue.values; TestWireNumbers checks them
// against the descriptors.
const (
	structFieldsNumber     protowire.Number = 1
	mapKeyNumber           protowire.Number = 1
	mapValueNumber         protowire.Number = 2
	valueStringValueNumber protowire.Number = 3
	valueListValueNumber   protowire.Number = 6
	listValuesNumber       protowire.Number = 1
)

// entryBodySize is the size of the map entry message of a Struct entry key: value, for a Value of
// valueSize bytes.
func entryBodySize(key string, valueSize int) int {
	return protowire.SizeTag(mapKeyNumber) + protowire.SizeBytes(len(key)) + protowire.SizeTag(mapValueNumber) + protowire.SizeBytes(valueSize)
}

// entrySize is the size of a Struct entry key: value in the Struct's encoding, tag and length included.
func entrySize(key string, valueSize int) int {
	return protowire.SizeTag(structFieldsNumber) + protowire.SizeBytes(entryBodySize(key, valueSize))
}

// appendEntryHead appends to a Struct's encoding the start of the entry key: value, for a Value of valueSize
// bytes, which the caller appends next.
func appendEntryHead(b []byte, key string, valueSize int) []byte {
	b = protowire.AppendTag(b, structFieldsNumber, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(entryBodySize(key, valueSize)))
	b = protowire.AppendTag(b, mapKeyNumber, protowire.BytesType)
	b = protowire.AppendString(b, key)
	b = protowire.AppendTag(b, mapValueNumber, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(valueSize))
}

// stringValueSize is the size of the Value {string_value: s}.
func stringValueSize(s string) int {
	return protowire.SizeTag(valueStringValueNumber) + protowire.SizeBytes(len(s))
}

// appendStringValue appends the Value {string_value: s}.
func appendStringValue(b []byte, s string) []byte {
	b = protowire.AppendTag(b, valueStringValueNumber, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendStringEntry appends to a Struct's encoding the entry key: {string_value: value}, as proto.Marshal
// encodes it.
func appendStringEntry(b []byte, key, value string) []byte {
	return appendStringValue(appendEntryHead(b, key, stringValueSize(value)), value)
}

// identityEntriesKey keys the encoded identity fields of an identity in Identity.Memo.
type identityEntriesKey struct{ claims bool }

// identityEntries are the metadata fields that depend on the identity alone, encoded as the entries of a
// Struct (a Struct's encoding is the list of its entries), as proto.Marshal encodes them: sub, client_id
// and iss as strings, scopes as a list of strings, and with withClaims the token's claims (claimsValue),
// unless they cannot be represented. It runs on a token's first allow (the token cache then keeps it), so
// every new token pays it: the entries are written directly into one buffer of their exact size; only the
// claims, optional and nested, go through structpb. It is nil when one of the identity's strings is not
// valid UTF-8.
func identityEntries(id *authz.Identity, withClaims bool) []byte {
	if !utf8.ValidString(id.Subject) || !utf8.ValidString(id.ClientID) || !utf8.ValidString(id.Issuer) {
		return nil
	}
	scopesSize := 0 // of the ListValue
	for _, s := range id.Scopes {
		if !utf8.ValidString(s) {
			return nil
		}
		scopesSize += protowire.SizeTag(listValuesNumber) + protowire.SizeBytes(stringValueSize(s))
	}
	scopesValueSize := protowire.SizeTag(valueListValueNumber) + protowire.SizeBytes(scopesSize)
	var claims []byte // the encoded Value
	if withClaims {
		if v, err := claimsValue(id.Claims); err == nil {
			claims, _ = proto.Marshal(v) // on an error, nil: the claims are left out
		}
	}
	size := entrySize("sub", stringValueSize(id.Subject)) + entrySize("client_id", stringValueSize(id.ClientID)) +
		entrySize("iss", stringValueSize(id.Issuer)) + entrySize("scopes", scopesValueSize)
	if claims != nil {
		size += entrySize("claims", len(claims))
	}
	b := make([]byte, 0, size)
	b = appendStringEntry(b, "sub", id.Subject)
	b = appendStringEntry(b, "client_id", id.ClientID)
	b = appendStringEntry(b, "iss", id.Issuer)
	b = appendEntryHead(b, "scopes", scopesValueSize)
	b = protowire.AppendTag(b, valueListValueNumber, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(scopesSize))
	for _, s := range id.Scopes {
		b = protowire.AppendTag(b, listValuesNumber, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(stringValueSize(s)))
		b = appendStringValue(b, s)
	}
	if claims != nil {
		b = append(appendEntryHead(b, "claims", len(claims)), claims...)
	}
	return b
}
