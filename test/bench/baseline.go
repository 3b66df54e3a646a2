package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown/cache"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

// baselinePolicy does in Rego what mcp-authz does in Go, the way an OPA-Envoy deployment does it: the JWT is
// verified with io.jwt.decode_verify against the JWKS given as data (signature, RS256 only, iss, aud, exp
// and nbf), then the typ header, the allowed clients and scopes, and the per-tool rules of the shipped
// data (deploy/policies/data.yaml) are checked on the parsed JSON-RPC body.
const baselinePolicy = `package envoy.authz

import rego.v1

default result := {"allowed": false, "http_status": 401, "body": "Invalid Bearer token", "headers": {"www-authenticate": "Bearer error=\"invalid_token\""}}

authorization := input.attributes.request.http.headers.authorization

token := substring(authorization, 7, -1) if startswith(authorization, "Bearer ")

verified := io.jwt.decode_verify(token, {"cert": data.jwks, "iss": data.issuer, "aud": data.resource, "alg": "RS256"})

valid_token if {
	verified[0]
	lower(verified[1].typ) == "at+jwt"
}

claims := verified[2]

token_scopes := split(object.get(claims, "scope", ""), " ")

client_id := object.get(claims, "client_id", "")

authorizer := data.authorizer

tool := input.parsed_body.params.name if input.parsed_body.method == "tools/call"

tool_rules := object.get(authorizer, "tools", {})

denials contains {"reason": sprintf("client %q is not allowed", [client_id])} if {
	count(object.get(authorizer, "allowed_clients", [])) > 0
	not client_id in authorizer.allowed_clients
}

denials contains {"reason": "token has none of the allowed scopes", "scope": concat(" ", authorizer.allowed_scopes)} if {
	count(object.get(authorizer, "allowed_scopes", [])) > 0
	count({s | some s in token_scopes; s in authorizer.allowed_scopes}) == 0
}

denials contains {"reason": sprintf("tool %v requires scopes %v", [tool, concat(" ", missing)]), "scope": concat(" ", required)} if {
	r := tool_rules[tool]
	required := object.get(r, "required_scopes", [])
	missing := [s | some s in required; not s in token_scopes]
	count(missing) > 0
}

denials contains {"reason": sprintf("tool %v is limited to groups %v", [tool, concat(", ", r.groups)])} if {
	r := tool_rules[tool]
	r.groups
	count({g | some g in r.groups; g in object.get(claims, "groups", [])}) == 0
}

result := {"allowed": true, "http_status": 200, "headers": {
	"x-mcp-subject": claims.sub,
	"x-mcp-client-id": client_id,
	"x-mcp-scopes": concat(" ", token_scopes),
	"x-mcp-issuer": claims.iss,
}} if {
	valid_token
	count(denials) == 0
}

result := {"allowed": false, "http_status": 403, "body": sprintf("Forbidden: %v", [d.reason]), "headers": {"www-authenticate": sprintf("Bearer error=\"insufficient_scope\", scope=%q", [object.get(d, "scope", "")])}} if {
	valid_token
	count(denials) > 0
	d := sort([x | some x in denials])[0]
}
`

// baselineServer is an ext_authz server built as the OPA-Envoy plugin builds its decisions: the
// CheckRequest is turned into the input document through protojson (with parsed_path, parsed_query and
// parsed_body added), the prepared query data.envoy.authz.result is evaluated, and its result object
// becomes the CheckResponse. OPA's inter-query builtin value cache is on with OPA's defaults (the parsed
// JWKS is cached; the io_jwt verification cache is off unless configured, as in OPA itself), or with the
// verification cache on when jwtCache is set.
type baselineServer struct {
	authv3.UnimplementedAuthorizationServer
	query rego.PreparedEvalQuery
}

func newBaselineServer(ctx context.Context, jwksFile, issuer, resource, dataFile string, jwtCache bool) (*baselineServer, error) {
	jwks, err := os.ReadFile(jwksFile)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(dataFile)
	if err != nil {
		return nil, err
	}
	var shipped map[string]any
	if err := yaml.Unmarshal(raw, &shipped); err != nil {
		return nil, fmt.Errorf("%s: %w", dataFile, err)
	}
	shipped["jwks"] = string(jwks)
	shipped["issuer"] = issuer
	shipped["resource"] = resource
	cfgJSON := []byte(nil)
	if jwtCache {
		cfgJSON = []byte(`{"inter_query_builtin_value_cache": {"named": {"io_jwt": {"max_num_entries": 10000}}}}`)
	}
	cfg, err := cache.ParseCachingConfig(cfgJSON)
	if err != nil {
		return nil, err
	}
	pq, err := rego.New(
		rego.Query("data.envoy.authz.result"),
		rego.Module("baseline.rego", baselinePolicy),
		rego.Store(inmem.NewFromObject(shipped)),
		rego.InterQueryBuiltinValueCache(cache.NewInterQueryValueCache(ctx, cfg)),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("prepare baseline policy: %w", err)
	}
	return &baselineServer{query: pq}, nil
}

// Check implements the ext_authz Check call.
func (s *baselineServer) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	input, err := opaEnvoyInput(req)
	if err != nil {
		return nil, err
	}
	rs, err := s.query.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, fmt.Errorf("baseline policy: undefined result")
	}
	res, _ := rs[0].Expressions[0].Value.(map[string]any)
	allowed, _ := res["allowed"].(bool)
	var headers []*corev3.HeaderValueOption
	if hs, ok := res["headers"].(map[string]any); ok {
		for k, v := range hs {
			s, _ := v.(string)
			headers = append(headers, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: s}})
		}
	}
	if allowed {
		return &authv3.CheckResponse{
			Status:       &rpcstatus.Status{Code: int32(code.Code_OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{Headers: headers, HeadersToRemove: []string{"authorization"}}},
		}, nil
	}
	status, _ := res["http_status"].(json.Number)
	st, _ := status.Int64()
	body, _ := res["body"].(string)
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code.Code_PERMISSION_DENIED)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode(st)}, Headers: headers, Body: body,
		}},
	}, nil
}

// opaEnvoyInput builds the input document as the OPA-Envoy plugin does: the CheckRequest as protojson,
// decoded, plus parsed_path, parsed_query and parsed_body, converted to an ast.Value.
func opaEnvoyInput(req *authv3.CheckRequest) (ast.Value, error) {
	bs, err := protojson.Marshal(req)
	if err != nil {
		return nil, err
	}
	var input map[string]any
	dec := json.NewDecoder(strings.NewReader(string(bs)))
	dec.UseNumber()
	if err := dec.Decode(&input); err != nil {
		return nil, err
	}
	h := req.GetAttributes().GetRequest().GetHttp()
	path, query, _ := strings.Cut(h.GetPath(), "?")
	var parsedPath []any
	for _, seg := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		parsedPath = append(parsedPath, seg)
	}
	input["parsed_path"] = parsedPath
	parsedQuery := map[string]any{}
	if q, err := url.ParseQuery(query); err == nil {
		for k, vs := range q {
			l := make([]any, len(vs))
			for i, v := range vs {
				l[i] = v
			}
			parsedQuery[k] = l
		}
	}
	input["parsed_query"] = parsedQuery
	body := h.GetRawBody()
	if len(body) == 0 {
		body = []byte(h.GetBody())
	}
	if len(body) > 0 && strings.HasPrefix(h.GetHeaders()["content-type"], "application/json") {
		var parsed any
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.UseNumber()
		if err := dec.Decode(&parsed); err == nil {
			input["parsed_body"] = parsed
		}
	}
	input["truncated_body"] = false
	return ast.InterfaceToValue(input)
}

// floorServer is the do-nothing ext_authz server: it allows every request with a prebuilt response. It
// is the floor: the cost of gRPC and the load generator alone.
type floorServer struct {
	authv3.UnimplementedAuthorizationServer
	ok *authv3.CheckResponse
}

func newFloorServer() *floorServer {
	return &floorServer{ok: &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(code.Code_OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
	}}
}

// Check implements the ext_authz Check call.
func (s *floorServer) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return s.ok, nil
}
