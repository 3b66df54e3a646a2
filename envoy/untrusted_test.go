package envoy_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/mcp-authz/mcp-authz/envoy"
	"github.com/mcp-authz/mcp-authz/test/benchenv"
	"google.golang.org/protobuf/proto"
)

// The tests of this file send what an attacker controls (the JSON-RPC body, the token's claims) through
// envoy.Server, built as the service builds it (test IdP, shipped policy), and read the CheckResponse as
// Envoy receives it.

// untrustedEnv is the decision path behind an envoy.Server.
type untrustedEnv struct {
	*benchenv.Env
	srv *envoy.Server
}

func newUntrustedEnv(t *testing.T) *untrustedEnv {
	t.Helper()
	e, err := benchenv.New(context.Background(), "../deploy/policies", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return &untrustedEnv{Env: e, srv: envoy.NewServer(e.Authorizer)}
}

// token mints a valid token of the caller alice, with extra claims added (a nil value removes one).
func (e *untrustedEnv) token(t *testing.T, extra map[string]any) string {
	t.Helper()
	c := map[string]any{"sub": "alice", "aud": benchenv.ResourceURL, "client_id": "mcp-client", "scope": "tools:read tools:call"}
	for k, v := range extra {
		c[k] = v
	}
	tok, err := e.IdP.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// answer is a CheckResponse as Envoy decodes it.
type answer struct {
	allowed   bool
	status    int               // HTTP status of a deny; 200 on an allow
	headers   map[string]string // set upstream (allow) or sent to the client (deny)
	removed   []string          // headers_to_remove of an allow
	challenge string            // WWW-Authenticate of a deny
	message   string            // JSON-RPC error message of a deny
	id        string            // JSON-RPC id of a deny
}

// check sends body with the bearer token through the Server and decodes the response off the wire.
func (e *untrustedEnv) check(t *testing.T, token, body string) answer {
	t.Helper()
	resp, err := e.srv.Check(t.Context(), benchenv.CheckRequest(token, body))
	if err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(resp)
	if err != nil {
		t.Fatalf("the response cannot be sent: %v", err)
	}
	var got authv3.CheckResponse
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	a := answer{headers: map[string]string{}}
	if ok := got.GetOkResponse(); ok != nil {
		a.allowed, a.status, a.removed = true, 200, ok.GetHeadersToRemove()
		for _, h := range ok.GetHeaders() {
			a.headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		return a
	}
	d := got.GetDeniedResponse()
	if d == nil {
		t.Fatalf("neither allowed nor denied: %v", &got)
	}
	a.status = int(d.GetStatus().GetCode())
	for _, h := range d.GetHeaders() {
		a.headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	a.challenge = a.headers["www-authenticate"]
	var rpc struct {
		ID    json.RawMessage `json:"id"`
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(d.GetBody()), &rpc); err != nil {
		t.Fatalf("deny body %q: %v", d.GetBody(), err)
	}
	a.message, a.id = rpc.Error.Message, string(rpc.ID)
	return a
}

// TestAmbiguousMembersThroughEnvoy: a body whose tool, method or params depends on how the MCP server's
// JSON decoder treats case variants or repeated members is refused with 400 invalid_request and says which
// member; members mcp-authz does not read stay free. The token may call list_files but not admin_reset.
func TestAmbiguousMembersThroughEnvoy(t *testing.T) {
	e := newUntrustedEnv(t)
	tok := e.token(t, nil)
	tests := []struct {
		name   string
		body   string
		member string // the refused member as the challenge shows it; "" for an allow
		id     string // the JSON-RPC id of the error body
	}{
		{"case variant after the tool", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_files","Name":"admin_reset"}}`, `ambiguous JSON member 'Name' in params`, "1"},
		{"case variant alone", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"admin_reset"}}`, `ambiguous JSON member 'Name' in params`, "1"},
		{"upper-case uri", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a","URI":"file:///b"}}`, `ambiguous JSON member 'URI' in params`, "1"},
		{"tool name twice", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_files","name":"admin_reset"}}`, `duplicate JSON member 'name' in params`, "1"},
		{"method case variant", `{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call","params":{"name":"admin_reset"}}`, `ambiguous JSON member 'Method'`, "0"},
		{"params case variant", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_files"},"Params":{"name":"admin_reset"}}`, `ambiguous JSON member 'Params'`, "0"},
		{"params with LONG S", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_files"},"param\u017f":{"name":"admin_reset"}}`, `ambiguous JSON member 'param'': case-insensitive decoders read it as 'params'`, "0"},
		{"escaped case variant", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_files","\u004eame":"admin_reset"}}`, `ambiguous JSON member 'Name' in params`, "1"},
		{"method twice", `{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"admin_reset"}}`, `duplicate JSON member 'method'`, "0"},
		{"id case variant", `{"jsonrpc":"2.0","id":1,"Id":2,"method":"tools/list"}`, `ambiguous JSON member 'Id'`, "0"},
		{"unrelated members", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_files","Arguments":{},"arguments":{"Name":"admin_reset","name":"x","name":"y"},"_meta":{}},"Extra":1,"extra":2}`, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := e.check(t, tok, tc.body)
			if tc.member == "" {
				if !a.allowed {
					t.Fatalf("denied %d: %s", a.status, a.challenge)
				}
				return
			}
			if a.allowed || a.status != 400 {
				t.Fatalf("allowed=%v status=%d, want a 400 deny (%s)", a.allowed, a.status, a.challenge)
			}
			if !strings.Contains(a.challenge, `error="invalid_request"`) || !strings.Contains(a.challenge, tc.member) {
				t.Errorf("challenge %s, want invalid_request and %s", a.challenge, tc.member)
			}
			if !strings.HasPrefix(a.message, "Bad Request: ") || !strings.Contains(a.message, "JSON member") || a.id != tc.id {
				t.Errorf("JSON-RPC error %q id %s, want Bad Request: ... JSON member ... with id %s", a.message, a.id, tc.id)
			}
		})
	}
}

// TestIdentityClaimsThroughEnvoy: a token whose claim would go upstream as an identity header but is not a
// value HTTP can carry as it is (CR LF that would add headers, NUL, a scope holding a space) is refused
// with 401 invalid_token naming the claim, also the second time, when the token comes from the Verifier's
// token cache (on by default); nothing of it reaches an allow.
func TestIdentityClaimsThroughEnvoy(t *testing.T) {
	e := newUntrustedEnv(t)
	const body = `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"list_files"}}`
	tests := []struct {
		name   string
		claims map[string]any
		claim  string // the claim refused; "" for an allow
	}{
		{"CR LF in sub", map[string]any{"sub": "eve\r\nX-Injected: yes"}, "sub"},
		{"NUL in sub", map[string]any{"sub": "eve\x00"}, "sub"},
		{"LF in client_id", map[string]any{"client_id": "mcp-client\nX-Injected: yes"}, "client_id"},
		{"space in a scp item", map[string]any{"scope": nil, "scp": []string{"tools:call", "tools:read tools:admin"}}, "scp"},
		{"CR LF in a verified email", map[string]any{"email": "eve@example.com\r\nX-Injected: yes", "email_verified": true}, "email"},
		{"CR LF in an unverified email, which is not sent", map[string]any{"email": "eve@example.com\r\nX-Injected: yes"}, ""},
		{"non-ASCII sub", map[string]any{"sub": "José"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := e.token(t, tc.claims)
			for i := range 2 { // afresh, then from the token cache
				a := e.check(t, tok, body)
				for name, v := range a.headers {
					if strings.ContainsAny(v, "\r\n\x00") {
						t.Fatalf("request %d: header %s = %q", i, name, v)
					}
				}
				if tc.claim == "" {
					if !a.allowed {
						t.Fatalf("request %d: denied %d %s", i, a.status, a.challenge)
					}
					if _, ok := a.headers["x-mcp-email"]; ok {
						t.Errorf("request %d: x-mcp-email set from an unverified email", i)
					}
					continue
				}
				desc := "token claim " + tc.claim + " cannot be sent as a header"
				if a.allowed || a.status != 401 || !strings.Contains(a.challenge, `error="invalid_token"`) || !strings.Contains(a.challenge, `error_description="`+desc+`"`) {
					t.Fatalf("request %d: allowed=%v status=%d challenge %s, want 401 invalid_token %q", i, a.allowed, a.status, a.challenge, desc)
				}
				if a.message != "Invalid Bearer token: "+desc || a.id != "9" {
					t.Errorf("request %d: JSON-RPC error %q id %s", i, a.message, a.id)
				}
			}
		})
	}
}

// TestEmailVerifiedThroughEnvoy: the email identity header carries `email` only when `email_verified` is
// true (the boolean, or the string "true"); otherwise the header is removed, whatever the client sent.
func TestEmailVerifiedThroughEnvoy(t *testing.T) {
	e := newUntrustedEnv(t)
	const body = `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
	tests := []struct {
		name     string
		verified any // nil: no email_verified claim
		set      bool
	}{
		{"verified", true, true},
		{"verified as a string", "true", true},
		{"not verified", false, false},
		{"not verified as a string", "false", false},
		{"no email_verified", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			claims := map[string]any{"email": "alice@example.com"}
			if tc.verified != nil {
				claims["email_verified"] = tc.verified
			}
			req := benchenv.CheckRequest(e.token(t, claims), body)
			req.Attributes.Request.Http.Headers["x-mcp-email"] = "ceo@example.com" // a client's copy
			resp, err := e.srv.Check(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			ok := resp.GetOkResponse()
			if ok == nil {
				t.Fatalf("not allowed: %v", resp)
			}
			got := ""
			for _, h := range ok.GetHeaders() {
				if h.GetHeader().GetKey() == "x-mcp-email" {
					got = h.GetHeader().GetValue()
				}
			}
			removed := slices.Contains(ok.GetHeadersToRemove(), "x-mcp-email")
			if tc.set && (got != "alice@example.com" || removed) {
				t.Errorf("x-mcp-email = %q (removed %v), want alice@example.com", got, removed)
			}
			if !tc.set && (got != "" || !removed) {
				t.Errorf("x-mcp-email = %q (removed %v), want it removed and not set", got, removed)
			}
		})
	}
}
