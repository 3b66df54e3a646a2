// Package benchenv builds what the benchmarks of mcp-authz share: a test OpenID provider on 127.0.0.1, the
// configuration of one protected resource trusting it, the decision path built from that configuration
// (key set, verifier, shipped policy, authorizer), and a corpus of Envoy CheckRequests with the decision
// each one must get. The Go benchmarks (`go test -bench`) and the load benchmark (`test/bench`) use it, so
// they measure the same requests.
package benchenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/policy"
	"github.com/mcp-authz/mcp-authz/test/idp"
)

// ResourceURL is the protected resource every benchmark request targets.
const ResourceURL = "https://mcp.example.com/mcp"

// RestrictedTool is the tool the shipped policy data (deploy/policies/data.yaml) limits to the scope
// tools:admin and the group admins.
const RestrictedTool = "admin_reset"

// IdP is a test OpenID provider served on 127.0.0.1.
type IdP struct {
	*idp.Provider
	srv *http.Server
}

// StartIdP serves a test OpenID provider on a free 127.0.0.1 port.
func StartIdP() (*IdP, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p, err := idp.New("http://" + l.Addr().String())
	if err != nil {
		l.Close()
		return nil, err
	}
	srv := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	return &IdP{Provider: p, srv: srv}, nil
}

// Close stops the provider's HTTP server.
func (p *IdP) Close() error { return p.srv.Close() }

// ConfigYAML is the mcp-authz configuration of the benchmarks: one resource, the given issuer (typ at+jwt
// required, RS256 only) and the policies under policyDir; listeners on 127.0.0.1 with free ports.
func ConfigYAML(issuer, policyDir, logLevel string) string {
	return fmt.Sprintf(`
listen: {grpc: "127.0.0.1:0", http: "127.0.0.1:0"}
resources:
  - url: %s
    name: tools
    scopes_supported: [tools:read, tools:call, tools:admin]
issuers:
  - discovery_url: %s/.well-known/openid-configuration
    required_type: at+jwt
    algorithms: [RS256]
policy:
  paths: [%s]
log: {level: %s}
`, ResourceURL, issuer, policyDir, logLevel)
}

// Env is the decision path of mcp-authz built in process, as service.New builds it, with keys loaded.
type Env struct {
	IdP        *IdP
	Config     config.Config
	KeySet     *authz.KeySet
	Verifier   *authz.Verifier
	Policy     *policy.Policy
	Authorizer *authz.Authorizer

	policyDir string
	log       *slog.Logger
}

// New starts an IdP and builds the decision path against it with the policies under policyDir (the
// shipped ones: deploy/policies). Decisions are logged to log; nil discards them.
func New(ctx context.Context, policyDir string, log *slog.Logger) (*Env, error) {
	if log == nil {
		log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	p, err := StartIdP()
	if err != nil {
		return nil, err
	}
	e, err := build(ctx, p, policyDir, log)
	if err != nil {
		p.Close()
		return nil, err
	}
	return e, nil
}

func build(ctx context.Context, p *IdP, policyDir string, log *slog.Logger) (*Env, error) {
	cfg, err := config.Parse([]byte(ConfigYAML(p.Issuer(), policyDir, "info")))
	if err != nil {
		return nil, err
	}
	is := cfg.Issuers[0]
	ks := authz.NewKeySet(is, &http.Client{Timeout: 5 * time.Second}, log, nil)
	if _, err := ks.Keys(ctx, ""); err != nil {
		return nil, fmt.Errorf("load keys: %w", err)
	}
	v, err := authz.NewVerifier(cfg.Issuers, map[string]*authz.KeySet{is.Issuer: ks}, time.Duration(cfg.Leeway), time.Now)
	if err != nil {
		return nil, err
	}
	pol, err := policy.Load(ctx, cfg.Policy.Paths, cfg.Policy.Query)
	if err != nil {
		return nil, err
	}
	a, err := authz.New(cfg, v, pol, log)
	if err != nil {
		return nil, err
	}
	return &Env{IdP: p, Config: cfg, KeySet: ks, Verifier: v, Policy: pol, Authorizer: a, policyDir: policyDir, log: log}, nil
}

// WithEmptyCaches builds another Env on the same IdP, with the same configuration and policy but empty token
// and decision caches: a benchmark of tokens verified afresh renews it when its corpus comes round again.
// Close only the Env that New returned.
func (e *Env) WithEmptyCaches(ctx context.Context) (*Env, error) {
	return build(ctx, e.IdP, e.policyDir, e.log)
}

// Close stops the IdP.
func (e *Env) Close() error { return e.IdP.Close() }

// Case is one request of the corpus with the decision it must get.
type Case struct {
	// Name says what the request is.
	Name string
	// Request is the CheckRequest as Envoy's ext_authz filter sends it.
	Request *authv3.CheckRequest
	// Token is the bearer token the request carries.
	Token string
	// Allow is the expected decision.
	Allow bool
	// Status is the expected HTTP status: 200 on an allow, 401 or 403 on a deny.
	Status int
}

// CallsPerTool is how many calls of each tool a user makes in the corpus, each with a distinct JSON-RPC id.
const CallsPerTool = 4

// Corpus mints the benchmark requests: tools/call requests with valid RS256 tokens of `users` different
// users (each calling a few allowed tools), and the denies: the restricted tool without its scope (403),
// an expired token (401) and a token with a bad signature (401). About one request in six is a deny.
func Corpus(p *idp.Provider, users int) ([]Case, error) {
	if users < 1 {
		return nil, errors.New("corpus: need at least one user")
	}
	var cs []Case
	tools := []string{"echo", "list_files", "search"}
	var valid string
	for u := range users {
		tok, err := p.Mint(userClaims(fmt.Sprintf("user-%d", u), nil))
		if err != nil {
			return nil, err
		}
		valid = tok
		for _, tool := range tools {
			// Several calls of each tool, each with its own JSON-RPC id, as a client's session makes them.
			for range CallsPerTool {
				cs = append(cs, Case{Name: "allow " + tool, Request: CheckRequest(tok, CallTool(tool, len(cs)+1)), Token: tok, Allow: true, Status: 200})
			}
		}
	}
	now := time.Now()
	expired, err := p.Mint(userClaims("user-expired", map[string]any{"exp": now.Add(-2 * time.Hour).Unix(), "iat": now.Add(-3 * time.Hour).Unix()}))
	if err != nil {
		return nil, err
	}
	denies := []Case{
		{Name: "deny restricted tool", Request: CheckRequest(valid, CallTool(RestrictedTool, 1)), Token: valid, Status: 403},
		{Name: "deny expired", Request: CheckRequest(expired, CallTool("echo", 2)), Token: expired, Status: 401},
		{Name: "deny bad signature", Request: CheckRequest(BadSignature(valid), CallTool("echo", 3)), Token: BadSignature(valid), Status: 401},
	}
	// Interleave: the denies spread through the corpus rather than bunched at its end.
	out := make([]Case, 0, len(cs)+len(denies))
	step := max(1, len(cs)/len(denies))
	for i, c := range cs {
		out = append(out, c)
		if (i+1)%step == 0 && len(denies) > 0 {
			out = append(out, denies[0])
			denies = denies[1:]
		}
	}
	return append(out, denies...), nil
}

// userClaims are the claims of a valid token: the resource as audience, the client mcp-client, the scopes
// tools:read and tools:call, and the custom claims a real IdP adds.
func userClaims(sub string, extra map[string]any) map[string]any {
	c := map[string]any{
		"sub": sub, "aud": ResourceURL, "client_id": "mcp-client", "scope": "tools:read tools:call",
		"email": sub + "@example.com", "groups": []string{"developers", "mcp-users"}, "department": "engineering",
	}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// ValidToken mints a valid token for sub.
func ValidToken(p *idp.Provider, sub string) (string, error) { return p.Mint(userClaims(sub, nil)) }

// BadSignature returns tok with the last signature character changed, so the signature no longer verifies.
func BadSignature(tok string) string {
	last := tok[len(tok)-2]
	repl := byte('A')
	if last == 'A' {
		repl = 'B'
	}
	return tok[:len(tok)-2] + string(repl) + tok[len(tok)-1:]
}

// CallTool is the JSON-RPC body of a tools/call of tool with request id id.
func CallTool(tool string, id int) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":{"path":"/tmp","query":"benchmark"}}}`, id, tool)
}

// CheckRequest is a CheckRequest shaped as Envoy's ext_authz filter sends it for a streamable-HTTP MCP
// POST carrying the bearer token and body (with_request_body, pack_as_bytes, per-route resource).
func CheckRequest(token, body string) *authv3.CheckRequest {
	h := map[string]string{
		":authority": "mcp.example.com", ":method": "POST", ":path": "/mcp", ":scheme": "https",
		"content-type": "application/json", "accept": "application/json, text/event-stream",
		"mcp-protocol-version": "2025-06-18", "mcp-session-id": "3f2a9c1e-bench", "user-agent": "bench/1.0",
		"x-forwarded-proto": "https", "x-request-id": "7d3c2b1a-0000-4000-8000-000000000000",
		"authorization": "Bearer " + token,
	}
	if token == "" {
		delete(h, "authorization")
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:            &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 50000}}}}},
		ContextExtensions: map[string]string{"resource": ResourceURL},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "7d3c2b1a", Method: "POST", Headers: h, Path: "/mcp", Host: "mcp.example.com", Scheme: "https", Protocol: "HTTP/1.1",
			RawBody: []byte(body), Size: int64(len(body)),
		}},
	}}
}
