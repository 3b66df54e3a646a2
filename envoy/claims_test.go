package envoy

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/mcp-authz/mcp-authz/authz"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// referenceMetadata is the dynamic metadata built the plain way: every field through structpb.NewStruct,
// claims through structpb.NewValue after json.Number became float64.
func referenceMetadata(d *authz.Decision, withClaims bool) *structpb.Struct {
	id := d.Identity
	scopes := make([]any, len(id.Scopes))
	for i, s := range id.Scopes {
		scopes[i] = s
	}
	fields := map[string]any{"sub": id.Subject, "client_id": id.ClientID, "iss": id.Issuer, "scopes": scopes, "resource": d.Resource}
	if claims, err := structpb.NewValue(plainJSON(id.Claims)); err == nil && withClaims {
		fields["claims"] = claims.AsInterface()
	}
	if d.MCP != nil {
		fields["mcp_method"] = d.MCP.Method
		if d.MCP.Tool != "" {
			fields["tool"] = d.MCP.Tool
		}
	}
	s, err := structpb.NewStruct(fields)
	if err != nil {
		return nil
	}
	return s
}

func plainJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = plainJSON(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = plainJSON(e)
		}
		return out
	case json.Number:
		f, _ := v.Float64()
		return f
	default:
		return v
	}
}

func decodeClaims(t *testing.T, s string) map[string]any {
	t.Helper()
	var c map[string]any
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// sentMetadata is the dynamic metadata of resp as Envoy receives it: after the wire.
func sentMetadata(t *testing.T, resp *authv3.CheckResponse) *structpb.Struct {
	t.Helper()
	b, err := proto.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	var got authv3.CheckResponse
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.ProtoReflect().GetUnknown()) > 0 {
		t.Errorf("the response has unknown fields on the wire")
	}
	return got.GetDynamicMetadata()
}

// TestMetadata checks the dynamic metadata of an allow, as sent, against the plain construction.
func TestMetadata(t *testing.T) {
	tests := []struct {
		name   string
		claims map[string]any
		scopes []string
		mcp    *authz.Message
	}{
		{"typical", decodeClaims(t, `{"sub":"alice","aud":["a","b"],"exp":1900000000,"scope":"x y","groups":["g"],"n":{"f":1.5,"t":true,"z":null}}`), []string{"x", "y"}, &authz.Message{Method: "tools/call", Tool: "echo"}},
		{"no message, no scopes", decodeClaims(t, `{"sub":"bob"}`), nil, nil},
		{"method without tool", decodeClaims(t, `{"sub":"bob","big":12345678901234567890}`), []string{"a"}, &authz.Message{Method: "tools/list"}},
		{"claim value not UTF-8: claims left out", map[string]any{"sub": "x", "bad": "\xff"}, []string{"a"}, nil},
		{"claim key not UTF-8: claims left out", map[string]any{"sub": "x", "\xff": "v"}, nil, nil},
		{"nested invalid value", map[string]any{"list": []any{"ok", map[string]any{"k": "\xfe"}}}, nil, nil},
		{"scope not UTF-8: no metadata", map[string]any{"sub": "x"}, []string{"\xff"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &authz.Decision{Allow: true, Resource: "https://mcp.example.com/mcp", MCP: tc.mcp,
				Identity: &authz.Identity{Subject: "alice", ClientID: "mcp-client", Issuer: "https://idp", Scopes: tc.scopes, Claims: tc.claims}}
			for _, claims := range []bool{false, true} {
				want := referenceMetadata(d, claims)
				for range 2 {
					if got := sentMetadata(t, (&Server{claims: claims}).response(d)); !proto.Equal(got, want) {
						t.Errorf("claims %v: metadata =\n%v\nwant\n%v", claims, got, want)
					}
				}
			}
		})
	}
}

// TestWireNumbers checks the wire numbers appendStringEntry and identityEntries write against the
// descriptors of Struct, Value and ListValue, and appendStringEntry's bytes against proto.Marshal's.
func TestWireNumbers(t *testing.T) {
	fields := (&structpb.Struct{}).ProtoReflect().Descriptor().Fields().ByName("fields")
	entry := fields.Message()
	for _, c := range []struct {
		name      string
		got, want protowire.Number
	}{
		{"Struct.fields", structFieldsNumber, fields.Number()},
		{"map key", mapKeyNumber, entry.Fields().ByName("key").Number()},
		{"map value", mapValueNumber, entry.Fields().ByName("value").Number()},
		{"Value.string_value", valueStringValueNumber, (&structpb.Value{}).ProtoReflect().Descriptor().Fields().ByName("string_value").Number()},
		{"Value.list_value", valueListValueNumber, (&structpb.Value{}).ProtoReflect().Descriptor().Fields().ByName("list_value").Number()},
		{"ListValue.values", listValuesNumber, (&structpb.ListValue{}).ProtoReflect().Descriptor().Fields().ByName("values").Number()},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	for _, v := range []string{"", "tools/call", strings.Repeat("é", 200)} {
		want, err := proto.Marshal(&structpb.Struct{Fields: map[string]*structpb.Value{"k": structpb.NewStringValue(v)}})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendStringEntry(nil, "k", v); !bytes.Equal(got, want) {
			t.Errorf("appendStringEntry(%q) = %x, want %x", v, got, want)
		}
	}
}
