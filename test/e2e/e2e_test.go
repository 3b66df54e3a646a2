package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/test/idp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"
)

// TestE2E runs the suite once per OpenID provider, each with its own stack (MCP server, mcp-authz, proxies).
func TestE2E(t *testing.T) {
	t.Run("hydra", testHydra)
	t.Run("devidp", testDevIdP)
	t.Run("oidc-provider", testOIDCProvider)
}

// idpEnv is what the scenarios need from one IdP of the suite.
type idpEnv struct {
	issuer string
	// clientID is a public client (PKCE) the Go SDK client uses; shortClientID one whose access tokens
	// live a few seconds ("" when the IdP cannot have one).
	clientID, shortClientID string
	redirectURL             string
	// shortTTL is the lifetime of shortClientID's access tokens.
	shortTTL time.Duration
	// serviceToken returns a client_credentials token of a client the policy does not allow, for aud.
	serviceToken func(t testing.TB, aud string) string
	// userLogin: the IdP shows a login form and knows the suite's users (else it approves as alice).
	userLogin bool
	// remoteClientID is the public client mcp-remote uses, with redirect URI
	// http://127.0.0.1:<callbackPort>/oauth/callback ("" skips the mcp-remote scenario).
	remoteClientID string
	callbackPort   int
	// refreshParams are added to authorization requests that ask for a refresh token.
	refreshParams url.Values
}

// scenarioCtx bounds one scenario.
func scenarioCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// runScenarios runs the client scenarios against every proxy of st, then takes the IdP down (down) and
// checks the sessions opened before keep working.
func runScenarios(t *testing.T, st *stack, env idpEnv, down func()) {
	sessions := map[string]*mcp.ClientSession{}
	outer := t
	for _, px := range st.proxies {
		t.Run(px.name, func(t *testing.T) {
			if px.missing != "" {
				missing(t, px.missing)
			}
			t.Run("login, list and call", func(t *testing.T) { sessions[px.name] = loginListCall(t, st, px, env) })
			if s := sessions[px.name]; s != nil {
				outer.Cleanup(func() { s.Close() }) // kept open for the IdP-down scenario
			}
			t.Run("restricted tool needs its scope", func(t *testing.T) { stepUp(t, st, px, env) })
			t.Run("refused tokens", func(t *testing.T) { refused(t, px, env) })
			t.Run("ambiguous request shapes", func(t *testing.T) { requestShapes(t, px, env) })
			t.Run("expired token, client recovers", func(t *testing.T) { expired(t, px, env) })
			t.Run("refreshed token keeps working", func(t *testing.T) { refreshed(t, px, env) })
			if env.userLogin {
				t.Run("user without the required claim", func(t *testing.T) { customClaim(t, px, env) })
			}
			t.Run("mcp-remote with Chromium", func(t *testing.T) {
				if env.remoteClientID == "" {
					t.Skip("no client registered for mcp-remote at this IdP")
				}
				mcpRemoteScenario(t, st, px, env, env.remoteClientID, env.callbackPort)
			})
		})
	}
	t.Run("IdP down: issued tokens keep working", func(t *testing.T) {
		if len(sessions) == 0 {
			t.Skip("no session was opened")
		}
		down()
		for name, s := range sessions {
			if s == nil {
				continue
			}
			out, err := callTool(scenarioCtx(t), s, "echo", map[string]any{"message": "still here"})
			if err != nil || !strings.Contains(out, "still here") {
				t.Errorf("%s: echo with the IdP down: %q, %v", name, out, err)
			}
		}
	})
}

// loginListCall: no token -> 401 + WWW-Authenticate -> PRM -> IdP discovery -> login with PKCE -> token ->
// tools/list and tools/call; the MCP server sees the identity headers and never an Authorization header.
func loginListCall(t *testing.T, st *stack, px proxy, env idpEnv) *mcp.ClientSession {
	// The anonymous request a client starts with.
	r := rawCall(t, px.resource(), "", listJSON)
	if r.status != http.StatusUnauthorized || r.challenge["resource_metadata"] != px.metadataURL() || r.challenge["error"] != "" {
		t.Fatalf("anonymous request: %d %v", r.status, r.challenge)
	}
	if !strings.Contains(r.body, `"message":"Missing Bearer token"`) {
		t.Errorf("anonymous request: body %q lacks mcp-authz's JSON-RPC error", r.body)
	}
	ctx := scenarioCtx(t)
	c := newGoClient(t, clientOptions{clientID: env.clientID, user: "alice", redirectURL: env.redirectURL})
	before := len(st.mcp.Records())
	s, err := c.connect(ctx, px.resource())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if c.ua.Flows() != 1 {
		t.Errorf("authorization flows = %d, want 1", c.ua.Flows())
	}
	if got := c.ua.LastScope(); !strings.Contains(got, "tools:read") || !strings.Contains(got, "tools:call") {
		t.Errorf("requested scope %q, want the resource's scopes_supported", got)
	}
	tools, err := s.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"admin_reset", "echo", "list_files"}) {
		t.Errorf("tools = %v", names)
	}
	if out, err := callTool(ctx, s, "echo", map[string]any{"message": "hello " + px.name}); err != nil || out != `{"message":"hello `+px.name+`"}` {
		t.Errorf("echo = %s, %v", out, err)
	}
	if out, err := callTool(ctx, s, "list_files", nil); err != nil || !strings.Contains(out, "README.md") {
		t.Errorf("list_files = %s, %v", out, err)
	}
	recs := st.mcp.Records()[before:]
	if len(recs) < 4 {
		t.Fatalf("MCP server saw %d requests, want initialize, initialized, list and two calls", len(recs))
	}
	for _, rec := range recs {
		if rec.Header.Get("Authorization") != "" {
			t.Errorf("%s %s reached the MCP server with an Authorization header", rec.Method, rec.Path)
		}
		want := map[string]string{"X-Mcp-Subject": "alice", "X-Mcp-Client-Id": env.clientID, "X-Mcp-Issuer": env.issuer}
		for k, v := range want {
			if got := rec.Header.Get(k); got != v {
				t.Errorf("%s %s: %s = %q, want %q", rec.Method, rec.Path, k, got, v)
			}
		}
		if sc := rec.Header.Get("X-Mcp-Scopes"); !strings.Contains(sc, "tools:call") {
			t.Errorf("%s %s: X-Mcp-Scopes = %q", rec.Method, rec.Path, sc)
		}
	}
	return s
}

// stepUp: admin_reset without tools:admin is refused with 403 insufficient_scope and the scope to ask for;
// the SDK client then re-authorizes for it and the call goes through.
func stepUp(t *testing.T, st *stack, px proxy, env idpEnv) {
	if !px.bodyChecked {
		t.Skipf("%s does not send the request body to mcp-authz, so tool rules cannot apply behind it (the policy is deployed without them)", px.name)
	}
	ctx := scenarioCtx(t)
	c := newGoClient(t, clientOptions{clientID: env.clientID, user: "alice", redirectURL: env.redirectURL})
	s, err := c.connect(ctx, px.resource())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer s.Close()
	r := rawCall(t, px.resource(), c.token(t).AccessToken, callJSON("admin_reset"))
	if r.status != http.StatusForbidden || r.challenge["error"] != "insufficient_scope" || !sameScopes(r.challenge["scope"], "tools:admin tools:read tools:call") || r.challenge["resource_metadata"] != px.metadataURL() {
		t.Fatalf("admin_reset without tools:admin: %d %v %s", r.status, r.challenge, r.body)
	}
	resets := st.mcp.Resets()
	out, err := callTool(ctx, s, "admin_reset", nil)
	if err != nil {
		t.Fatalf("admin_reset after step-up: %v", err)
	}
	if st.mcp.Resets() != resets+1 || !strings.Contains(out, "resets") {
		t.Errorf("admin_reset = %s; resets %d -> %d", out, resets, st.mcp.Resets())
	}
	if c.ua.Flows() != 2 || !strings.Contains(c.ua.LastScope(), "tools:admin") {
		t.Errorf("flows = %d, last scope %q: want a second authorization asking for tools:admin", c.ua.Flows(), c.ua.LastScope())
	}
}

// refused: tokens for another audience, from an untrusted issuer, or of a client the policy does not allow.
func refused(t *testing.T, px proxy, env idpEnv) {
	foreign, err := idp.New("http://127.0.0.1:1/untrusted")
	if err != nil {
		t.Fatal(err)
	}
	untrusted, err := foreign.Mint(map[string]any{"sub": "alice", "aud": px.resource(), "client_id": env.clientID, "scope": "tools:read tools:call", "groups": []string{"mcp-users"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		token  string
		status int
		error  string
		desc   string
	}{
		{"token for another audience", env.serviceToken(t, "https://elsewhere.example.com/mcp"), 401, "invalid_token", "audience"},
		{"token from an untrusted issuer", untrusted, 401, "invalid_token", "issuer not trusted"},
		{"client not allowed", env.serviceToken(t, px.resource()), 403, "", "is not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rawCall(t, px.resource(), tc.token, listJSON)
			if r.status != tc.status || r.challenge["error"] != tc.error || !strings.Contains(r.challenge["error_description"], tc.desc) {
				t.Errorf("got %d %v, want %d error=%q description ~ %q", r.status, r.challenge, tc.status, tc.error, tc.desc)
			}
			if r.challenge["resource_metadata"] != px.metadataURL() {
				t.Errorf("resource_metadata = %q", r.challenge["resource_metadata"])
			}
		})
	}
}

// expired: an expired token gets 401 invalid_token; a client holding one re-authorizes and carries on.
func expired(t *testing.T, px proxy, env idpEnv) {
	if env.shortClientID == "" {
		t.Skip("this IdP has no short-lived client")
	}
	ctx := scenarioCtx(t)
	// refresh: golang.org/x/oauth2 takes a token that expires within 10s for expired already, so a client
	// of a short-lived token needs a refresh token to use it at all.
	c := newGoClient(t, clientOptions{clientID: env.shortClientID, user: "alice", redirectURL: env.redirectURL, refresh: true, authParams: env.refreshParams})
	s, err := c.connect(ctx, px.resource())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	s.Close()
	tok := c.tokens.All()[0]
	waitShort(t, tok.AccessToken, env.shortTTL)
	time.Sleep(time.Until(jwtExpiry(t, tok.AccessToken)) + 2*time.Second) // past exp and mcp-authz's 1s leeway
	r := rawCall(t, px.resource(), tok.AccessToken, listJSON)
	if r.status != http.StatusUnauthorized || r.challenge["error"] != "invalid_token" || !strings.Contains(r.challenge["error_description"], "expired") {
		t.Fatalf("expired token: %d %v", r.status, r.challenge)
	}
	// A client that still holds the expired token (its clock is behind, say) and no refresh token for it.
	stale := newGoClient(t, clientOptions{clientID: env.shortClientID, user: "alice", redirectURL: env.redirectURL, refresh: true, authParams: env.refreshParams,
		initialToken: &oauth2.Token{AccessToken: tok.AccessToken, TokenType: "Bearer"}})
	s, err = stale.connect(ctx, px.resource())
	if err != nil {
		t.Fatalf("connect with an expired token: %v", err)
	}
	defer s.Close()
	if stale.ua.Flows() != 1 {
		t.Errorf("authorization flows = %d, want 1 (after the 401)", stale.ua.Flows())
	}
	if _, err := s.ListTools(ctx, nil); err != nil {
		t.Errorf("tools/list after recovery: %v", err)
	}
	if got := stale.tokens.All(); len(got) == 0 || got[0].AccessToken == tok.AccessToken {
		t.Errorf("the client did not get a new token (%d tokens)", len(got))
	}
}

// refreshed: with a refresh token, the client gets a new access token when the old one expires and calls
// keep working without a new login.
func refreshed(t *testing.T, px proxy, env idpEnv) {
	if env.shortClientID == "" {
		t.Skip("this IdP has no short-lived client")
	}
	ctx := scenarioCtx(t)
	c := newGoClient(t, clientOptions{clientID: env.shortClientID, user: "alice", redirectURL: env.redirectURL, refresh: true, authParams: env.refreshParams})
	s, err := c.connect(ctx, px.resource())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer s.Close()
	first := c.tokens.All()[0]
	if first.RefreshToken == "" {
		t.Fatalf("no refresh token (scope requested: %q)", c.ua.LastScope())
	}
	waitShort(t, first.AccessToken, env.shortTTL)
	time.Sleep(time.Until(jwtExpiry(t, first.AccessToken)) + 2*time.Second) // past exp and mcp-authz's 1s leeway
	for i := range 2 {
		if out, err := callTool(ctx, s, "echo", map[string]any{"message": fmt.Sprint("after refresh ", i)}); err != nil {
			t.Fatalf("echo after expiry: %s, %v", out, err)
		}
	}
	if n := len(c.tokens.All()); n < 2 {
		t.Errorf("%d distinct access tokens, want a refreshed one", n)
	}
	if c.ua.Flows() != 1 {
		t.Errorf("authorization flows = %d, want 1: refresh must not need a new login", c.ua.Flows())
	}
}

// customClaim: a user whose token lacks the group the policy requires is refused (403), and logging in
// again does not help.
func customClaim(t *testing.T, px proxy, env idpEnv) {
	ctx := scenarioCtx(t)
	c := newGoClient(t, clientOptions{clientID: env.clientID, user: "mallory", redirectURL: env.redirectURL})
	s, err := c.connect(ctx, px.resource())
	if err == nil {
		s.Close()
		t.Fatal("mallory connected")
	}
	r := rawCall(t, px.resource(), c.token(t).AccessToken, listJSON)
	if r.status != http.StatusForbidden || r.challenge["error"] != "" || !strings.Contains(r.challenge["error_description"], "groups") {
		t.Errorf("mallory: %d %v", r.status, r.challenge)
	}
}

// jwtExpiry reads the exp claim of a JWT (without verifying it: the test only needs to know when to wait).
func jwtExpiry(t testing.TB, tok string) time.Time {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Exp == 0 {
		t.Fatalf("access token without exp: %v", err)
	}
	return time.Unix(claims.Exp, 0)
}

// sameScopes compares two space-separated scope lists as sets (IdPs order granted scopes their own way).
func sameScopes(a, b string) bool {
	x, y := strings.Fields(a), strings.Fields(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// waitShort fails when tok lives much longer than the short lifetime asked of the IdP (rather than
// sleeping for an hour).
func waitShort(t testing.TB, tok string, ttl time.Duration) {
	t.Helper()
	if left := time.Until(jwtExpiry(t, tok)); left > ttl+2*time.Second {
		t.Fatalf("short-lived token expires in %s, want at most %s", left.Round(time.Second), ttl)
	}
}

// requestShapes sends, through the proxy, requests that a proxy and mcp-authz could read differently: a
// path with dot segments or escapes (the proxy routes its normalized form) and client-added headers of the
// forward-auth family the proxy does not set. The token is a valid one of a client the policy refuses, so
// a decision shows as 403 and a refused description as 400: none may reach the MCP server.
func requestShapes(t *testing.T, px proxy, env idpEnv) {
	token := env.serviceToken(t, px.resource())
	base := strings.TrimSuffix(px.resource(), "/mcp")
	for _, p := range []string{"/mcp/../mcp", "/x/../mcp", "/mcp/%2e%2e/mcp", "/mcp/./", "/mcp;x=1"} {
		r := rawCall(t, base+p, token, listJSON)
		if r.status != http.StatusBadRequest && r.status != http.StatusNotFound {
			t.Errorf("%s: status %d (%s), want 400 (or a 404 from the proxy itself)", p, r.status, r.body)
		}
	}
	// A client adding the other header family: a proxy that sets both (nginx) or sends none (Envoy) gets a
	// decision on its own description; one that passes the client's copy along (Caddy) gets 400.
	want := http.StatusForbidden
	if px.name == "caddy" {
		want = http.StatusBadRequest
	}
	req, err := http.NewRequest("POST", px.resource(), strings.NewReader(listJSON))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Original-URI", "/.well-known/oauth-protected-resource")
	req.Header.Set("X-Original-Method", "GET")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Errorf("client-added X-Original-*: status %d, want %d", resp.StatusCode, want)
	}
}
