package service_test

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/service"
	"github.com/mcp-authz/mcp-authz/test/idp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

const (
	resourceURL = "https://mcp.example.com/mcp"
	publicURL   = "https://mcp.example.com/public/mcp"
	metadataURL = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
)

// startIdP serves a test OpenID provider on 127.0.0.1 until the test ends.
func startIdP(t *testing.T, opts ...idp.Option) *idp.Provider {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p, err := idp.New("http://"+l.Addr().String(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: p.Handler()}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return p
}

// policyDir writes the shipped default policy with the given data into a temporary folder.
func policyDir(t *testing.T, data string, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	rego, err := os.ReadFile("../deploy/policies/authz.rego")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"authz.rego": string(rego), "data.yaml": data}
	for k, v := range extra {
		files[k] = v
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const testData = `
authorizer:
  allowed_clients: [mcp-client, okta-client, cognito-client]
  allowed_scopes: [tools:read, tools:call]
  tools:
    admin_reset: {required_scopes: [tools:admin]}
`

// instance is one running service with its gRPC client.
type instance struct {
	client authv3.AuthorizationClient
	http   string
	svc    *service.Service
}

// startService runs mcp-authz in process on 127.0.0.1 listeners with the given configuration.
func startService(t *testing.T, yaml string, waitReady bool, opts ...service.Option) *instance {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	log := slog.New(slog.NewJSONHandler(testWriter{t}, nil))
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := service.New(ctx, cfg, log, opts...)
	if err != nil {
		cancel()
		t.Fatalf("service.New: %v", err)
	}
	gl, _ := net.Listen("tcp", "127.0.0.1:0")
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan struct{})
	go func() { svc.Serve(ctx, gl, hl); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if waitReady {
		hc := healthpb.NewHealthClient(conn)
		deadline := time.Now().Add(10 * time.Second)
		for {
			r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
			if err == nil && r.Status == healthpb.HealthCheckResponse_SERVING {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("service not ready: %v %v", r, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return &instance{client: authv3.NewAuthorizationClient(conn), http: "http://" + hl.Addr().String(), svc: svc}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// checkRequest is a CheckRequest shaped as Envoy's ext_authz filter sends it (with_request_body,
// pack_as_bytes, per-route context extension).
func checkRequest(headers map[string]string, path, body string) *authv3.CheckRequest {
	h := map[string]string{":authority": "mcp.example.com", ":method": "POST", ":path": path, "content-type": "application/json", "x-request-id": "r1"}
	for k, v := range headers {
		if v == "" {
			delete(h, k)
			continue
		}
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:            &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 50000}}}}},
		ContextExtensions: map[string]string{"resource": resourceURL},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "r1", Method: "POST", Headers: h, Path: path, Host: "mcp.example.com", Scheme: "https", Protocol: "HTTP/1.1",
			RawBody: []byte(body), Size: int64(len(body)),
		}},
	}}
}

type env struct {
	std, okta, cognito *idp.Provider
	inst               *instance
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{std: startIdP(t), okta: startIdP(t, idp.WithClaimShape(idp.ShapeOkta)), cognito: startIdP(t, idp.WithClaimShape(idp.ShapeCognito))}
	dir := policyDir(t, testData, nil)
	e.inst = startService(t, fmt.Sprintf(`
resources:
  - url: %s
    name: tools
    scopes_supported: [tools:read, tools:call, tools:admin]
    audiences: [%[1]s, api://default]
  - url: %s
issuers:
  - discovery_url: %s/.well-known/openid-configuration
    required_type: at+jwt
    min_refresh_interval: 1ms
  - discovery_url: %s/.well-known/openid-configuration
  - discovery_url: %s/.well-known/openid-configuration
    clients_without_audience: [cognito-client]
policy:
  paths: [%s]
`, resourceURL, publicURL, e.std.Issuer(), e.okta.Issuer(), e.cognito.Issuer(), dir), true)
	return e
}

func mint(t *testing.T, p *idp.Provider, claims map[string]any, opts ...idp.MintOption) string {
	t.Helper()
	tok, err := p.Mint(claims, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// userClaims are the claims of a valid token from the standard IdP.
func userClaims(extra map[string]any) map[string]any {
	c := map[string]any{"sub": "alice", "aud": resourceURL, "client_id": "mcp-client", "scope": "tools:read tools:call", "email": "alice@example.com"}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

const listTools = `{"jsonrpc":"2.0","id":7,"method":"tools/list"}`

func callTool(name string) string {
	return `{"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{"name":"` + name + `","arguments":{}}}`
}

type denial struct {
	status      int
	errorCode   string // RFC 6750 error in WWW-Authenticate; "" = no error parameter
	description string // substring of error_description
	scope       string // exact scope parameter
	message     string // substring of the JSON-RPC error message
	id          string // JSON-RPC id echoed in the body
}

func TestDenyMatrix(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	hour := time.Hour
	rsaPub := func() []byte {
		var raw rsa.PublicKey
		pub, _ := e.std.ActiveKey().PublicKey()
		if err := pub.Raw(&raw); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(pub)
		return b
	}
	foreign, err := idp.New("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		headers map[string]string
		path    string
		body    string
		want    denial
	}{
		{"missing token", nil, "/mcp", listTools, denial{status: 401, message: "Missing Bearer token", id: "7", scope: "tools:read tools:call tools:admin"}},
		{"basic scheme", map[string]string{"authorization": "Basic YWxpY2U6c2VjcmV0"}, "/mcp", listTools, denial{status: 400, errorCode: "invalid_request", description: "not Bearer"}},
		{"empty bearer", map[string]string{"authorization": "Bearer "}, "/mcp", listTools, denial{status: 400, errorCode: "invalid_request", description: "empty"}},
		{"two tokens", map[string]string{"authorization": "Bearer a.b.c, Bearer d.e.f"}, "/mcp", listTools, denial{status: 400, errorCode: "invalid_request", description: "more than one"}},
		{"token in query", nil, "/mcp?access_token=a.b.c", listTools, denial{status: 400, errorCode: "invalid_request", description: "query string"}},
		{"token in query beside header", map[string]string{"authorization": "Bearer " + mint(t, e.std, userClaims(nil))}, "/mcp?x=1&access_token=a", listTools, denial{status: 400, errorCode: "invalid_request", description: "query string"}},
		{"not a JWT", map[string]string{"authorization": "Bearer abc.def"}, "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "malformed", message: "Invalid Bearer token"}},
		{"garbage segments", map[string]string{"authorization": "Bearer eyJ.eyJ.sig"}, "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "malformed"}},
		{"oversized", map[string]string{"authorization": "Bearer " + strings.Repeat("a", 20000) + ".b.c"}, "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "too large"}},
		{"expired", bearer(mint(t, e.std, userClaims(map[string]any{"exp": now.Add(-2 * hour).Unix(), "iat": now.Add(-3 * hour).Unix()}))), "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "expired"}},
		{"not yet valid", bearer(mint(t, e.std, userClaims(map[string]any{"nbf": now.Add(hour).Unix()}))), "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "not yet valid"}},
		{"issued in the future", bearer(mint(t, e.std, userClaims(map[string]any{"iat": now.Add(hour).Unix()}))), "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "issued in the future"}},
		{"exp not a number", bearer(mint(t, e.std, userClaims(map[string]any{"exp": "tomorrow"}))), "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "malformed claims"}},
		{"no exp", bearer(mint(t, e.std, userClaims(map[string]any{"exp": nil}))), "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "no exp"}},
		{"untrusted issuer", bearer(mint(t, e.std, userClaims(map[string]any{"iss": "https://evil.example.com"}))), "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "issuer not trusted"}},
		{"wrong audience", bearer(mint(t, e.std, userClaims(map[string]any{"aud": "https://other.example.com/mcp"}))), "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "audience"}},
		{"audience of the other resource", bearer(mint(t, e.std, userClaims(map[string]any{"aud": publicURL}))), "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "audience"}},
		{"no audience", bearer(mint(t, e.std, userClaims(map[string]any{"aud": nil}))), "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "no audience"}},
		{"unknown kid", bearer(mint(t, e.std, userClaims(nil), idp.WithKID("not-a-key"))), "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "unknown signing key"}},
		{"alg none", bearer(idp.UnsignedToken(map[string]any{"alg": "none", "typ": "at+jwt", "kid": e.std.ActiveKey().KeyID()}, withIss(userClaims(map[string]any{"exp": now.Add(hour).Unix()}), e.std.Issuer()))), "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "algorithm none not allowed"}},
		{"HS256 with the RSA public key", bearer(mint(t, e.std, userClaims(nil), idp.WithKey(jwa.HS256, rsaPub()))), "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "algorithm HS256 not allowed"}},
		{"foreign key, trusted kid", bearer(mint(t, e.std, userClaims(nil), idp.WithKey(jwa.RS256, foreign.ActiveKey()), idp.WithKID(e.std.ActiveKey().KeyID()))), "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "signature verification failed"}},
		{"embedded jwk header", bearer(mint(t, e.std, userClaims(nil), idp.WithKey(jwa.RS256, foreign.ActiveKey()), idp.WithKID("attacker"), idp.WithHeader("jwk", publicOf(t, foreign.ActiveKey())))), "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "unknown signing key"}},
		{"jku header", bearer(mint(t, e.std, userClaims(nil), idp.WithKey(jwa.RS256, foreign.ActiveKey()), idp.WithKID("attacker"), idp.WithHeader("jku", "http://127.0.0.1:1/jwks"))), "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "unknown signing key"}},
		{"ID token where at+jwt is required", bearer(mint(t, e.std, userClaims(map[string]any{"aud": resourceURL}), idp.WithType("JWT"))), "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "token type"}},
		{"no typ where at+jwt is required", bearer(mint(t, e.std, userClaims(nil), idp.WithType(""))), "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "token type"}},
		{"tampered payload", bearer(tamper(mint(t, e.std, userClaims(nil)))), "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "signature verification failed"}},
		{"insufficient scope for a tool", bearer(mint(t, e.std, userClaims(nil))), "/mcp", callTool("admin_reset"), denial{status: 403, errorCode: "insufficient_scope", scope: "tools:admin tools:read tools:call", description: "requires scopes tools:admin", id: `"c-1"`}},
		{"none of the allowed scopes", bearer(mint(t, e.std, userClaims(map[string]any{"scope": "openid"}))), "/mcp", listTools, denial{status: 403, errorCode: "insufficient_scope", scope: "tools:read tools:call"}},
		{"policy deny: client not allowed", bearer(mint(t, e.std, userClaims(map[string]any{"client_id": "intruder"}))), "/mcp", listTools, denial{status: 403, description: `client 'intruder' is not allowed`, message: "Forbidden"}},
		{"cognito client not listed", bearer(mint(t, e.cognito, map[string]any{"sub": "bob", "client_id": "other-client", "scope": "tools:read", "token_use": "access"}, idp.WithType(""))), "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "no audience"}},
		{"okta token for another API audience", bearer(mint(t, e.okta, map[string]any{"sub": "carol", "aud": "api://other", "cid": "okta-client", "scp": []string{"tools:read"}}, idp.WithType("JWT"))), "/mcp", listTools, denial{status: 401, errorCode: "invalid_token", description: "audience"}},
		{"invalid JSON body", bearer(mint(t, e.std, userClaims(nil))), "/mcp", `{"jsonrpc":`, denial{status: 400, errorCode: "invalid_request", description: "not a JSON object"}},
		{"JSON-RPC batch", bearer(mint(t, e.std, userClaims(nil))), "/mcp", `[` + callTool("admin_reset") + `]`, denial{status: 400, errorCode: "invalid_request", description: "batches"}},
		{"case-variant member hides the tool", bearer(mint(t, e.std, userClaims(nil))), "/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_reset","NAME":"echo"}}`, denial{status: 400, errorCode: "invalid_request", description: "ambiguous JSON member 'NAME' in params", message: "Bad Request", id: "1"}},
		{"oversized body", bearer(mint(t, e.std, userClaims(nil))), "/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"m":"` + strings.Repeat("x", 2<<20) + `"}}}`, denial{status: 413, errorCode: "invalid_request", description: "too large"}},
	}
	for _, tr := range transports() {
		t.Run(tr.name, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					assertDenied(t, tr.check(t, e.inst, checkRequest(tc.headers, tc.path, tc.body)), tc.want)
				})
			}
		})
	}
}

func bearer(tok string) map[string]string { return map[string]string{"authorization": "Bearer " + tok} }

func withIss(c map[string]any, iss string) map[string]any { c["iss"] = iss; return c }

func publicOf(t *testing.T, k jwk.Key) jwk.Key {
	t.Helper()
	pub, err := k.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// tamper changes the subject in the payload of a signed token, keeping the signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		panic(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"sub":"alice"`, `"sub":"admin"`, 1)))
	return strings.Join(parts, ".")
}

// assertDenied checks a deny as the client would get it: status, challenge, content-type and JSON-RPC body.
func assertDenied(t *testing.T, o outcome, want denial) {
	t.Helper()
	if o.allowed || o.unavailable {
		t.Fatalf("want a denied response, got %+v", o)
	}
	if o.status != want.status {
		t.Errorf("status = %d, want %d (body %s)", o.status, want.status, o.body)
	}
	headers := o.headers
	if headers["content-type"] != "application/json" {
		t.Errorf("content-type = %q", headers["content-type"])
	}
	ch := parseChallenge(t, headers["www-authenticate"])
	if ch["resource_metadata"] != metadataURL {
		t.Errorf("resource_metadata = %q, want %q", ch["resource_metadata"], metadataURL)
	}
	if ch["error"] != want.errorCode {
		t.Errorf("error = %q, want %q (challenge %s)", ch["error"], want.errorCode, headers["www-authenticate"])
	}
	if !strings.Contains(ch["error_description"], want.description) {
		t.Errorf("error_description = %q, want it to contain %q", ch["error_description"], want.description)
	}
	if ch["scope"] != want.scope {
		t.Errorf("scope = %q, want %q", ch["scope"], want.scope)
	}
	var body struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(o.body), &body); err != nil {
		t.Fatalf("body %q: %v", o.body, err)
	}
	if body.JSONRPC != "2.0" || body.Error.Code != -32001 || !strings.Contains(body.Error.Message, want.message) {
		t.Errorf("body = %s", o.body)
	}
	if want.id != "" && string(body.ID) != want.id {
		t.Errorf("body id = %s, want %s", body.ID, want.id)
	}
}

// parseChallenge reads a `Bearer k="v", k="v"` challenge, failing on a repeated parameter (RFC 6750 §3).
func parseChallenge(t *testing.T, h string) map[string]string {
	t.Helper()
	rest, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		t.Fatalf("challenge %q is not Bearer", h)
	}
	out := map[string]string{}
	for rest != "" {
		name, after, ok := strings.Cut(rest, `="`)
		if !ok {
			t.Fatalf("challenge %q: bad parameter at %q", h, rest)
		}
		value, tail, ok := strings.Cut(after, `"`)
		if !ok {
			t.Fatalf("challenge %q: unterminated value", h)
		}
		if _, dup := out[name]; dup {
			t.Fatalf("challenge %q repeats %s", h, name)
		}
		out[name] = value
		rest = strings.TrimPrefix(tail, ", ")
	}
	return out
}

func discardLogger() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

// overwrites reports whether a header option is set the way Envoy should apply it: OVERWRITE_IF_EXISTS_OR_ADD,
// with the deprecated `append` left unset so old and new Envoy agree.
func overwrites(h *corev3.HeaderValueOption) bool {
	//lint:ignore SA1019 the test asserts that the deprecated field stays unset
	return h.GetAppendAction() == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD && h.GetAppend() == nil
}
