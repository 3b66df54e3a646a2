package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/mcp-authz/mcp-authz/test/mcpserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// The token exchange scenario runs a real RFC 8693 authorization server: test/tools/exchangeas, a main on
// the OpenID provider of github.com/zitadel/oidc/v3 (OpenID Certified, token exchange through
// op.TokenExchangeStorage), built into bin/ by test/tools/build.sh. It was chosen because it is the one
// that builds from the Go module proxy: Dex is served there only at a 2018 version (later ones lack the
// /v2 module path), Ory Hydra v2.3 does not implement RFC 8693, and node-oidc-provider has no built-in
// token exchange. Its storage (ours) issues JWT access tokens with client_credentials and lets a client
// exchange tokens only for the audiences listed for it.

const (
	// apiAudience is the audience of the second API, the one the MCP server calls as the user.
	apiAudience = "https://api.example.test"
	// userClient is the client the MCP client uses; its client_credentials tokens have sub alice.
	userClient, userSecret = "e2e-user", "e2e-user-secret"
	// exchangeClient is mcp-authz's client at the AS, allowed to exchange for apiAudience.
	exchangeClient, exchangeSecret = "mcp-authz", "mcp-authz-secret"
	// keyClient is another client of mcp-authz, which authenticates with private_key_jwt.
	keyClient = "mcp-authz-key"
)

// exchangeAS is a running exchangeas.
type exchangeAS struct {
	issuer string
	proc   *process
}

// startExchangeAS runs bin/exchangeas (or MCP_AUTHZ_EXCHANGEAS) with the suite's clients; resources are
// the audience of the user's tokens, publicKey (PEM) keyClient's key.
func startExchangeAS(t testing.TB, resources []string, publicKey string) *exchangeAS {
	t.Helper()
	bin := findProgram(t, "the token exchange authorization server", "build it with `test/tools/build.sh exchangeas` or set MCP_AUTHZ_EXCHANGEAS",
		os.Getenv("MCP_AUTHZ_EXCHANGEAS"), filepath.Join(repoRoot(t), "bin", "exchangeas"))
	port := freePort(t)
	as := &exchangeAS{issuer: fmt.Sprintf("http://127.0.0.1:%d", port)}
	clients := map[string]any{
		"access_token_lifetime": "5m",
		"clients": []map[string]any{
			{"id": userClient, "secret": userSecret, "subject": "alice", "audience": resources,
				"scope": "tools:read tools:call", "claims": map[string]any{"groups": []string{"mcp-users"}}},
			{"id": exchangeClient, "secret": exchangeSecret, "exchange_audiences": []string{apiAudience}},
			{"id": keyClient, "public_key_pem": publicKey, "key_id": "k1", "exchange_audiences": []string{apiAudience}},
		},
	}
	dir := t.TempDir()
	b, _ := json.Marshal(clients)
	if err := os.WriteFile(filepath.Join(dir, "clients.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	as.proc = start(t, "exchangeas", nil, dir, bin, "-listen", fmt.Sprintf("127.0.0.1:%d", port), "-issuer", as.issuer,
		"-clients", filepath.Join(dir, "clients.json"))
	waitHTTP(t, as.issuer+"/.well-known/openid-configuration", 30*time.Second, as.proc)
	return as
}

// exchanges is how many tokens the AS has issued by exchange.
func (as *exchangeAS) exchanges(t testing.TB) int {
	t.Helper()
	resp, err := http.Get(as.issuer + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct{ Exchanges int }
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s.Exchanges
}

// protectedAPI is the second API of the scenario: it accepts only a token of the AS for apiAudience
// (signature against the AS's JWKS, iss, aud, exp) and answers the token's sub, act and scope. It records
// the Authorization of every request.
type protectedAPI struct {
	issuer string

	mu    sync.Mutex
	keys  jwk.Set
	seen  []string // Authorization headers received
	calls int
}

func (a *protectedAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	authz := r.Header.Get("Authorization")
	a.mu.Lock()
	a.seen = append(a.seen, authz)
	a.calls++
	keys := a.keys
	a.mu.Unlock()
	if keys == nil {
		var err error
		if keys, err = jwk.Fetch(r.Context(), a.issuer+"/keys"); err != nil {
			http.Error(w, "jwks: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		a.mu.Lock()
		a.keys = keys
		a.mu.Unlock()
	}
	raw, ok := strings.CutPrefix(authz, "Bearer ")
	if !ok {
		http.Error(w, "no bearer token", http.StatusUnauthorized)
		return
	}
	tok, err := jwt.Parse([]byte(raw), jwt.WithKeySet(keys), jwt.WithValidate(true), jwt.WithIssuer(a.issuer), jwt.WithAudience(apiAudience))
	if err != nil {
		http.Error(w, "invalid token: "+err.Error(), http.StatusUnauthorized)
		return
	}
	out := map[string]any{"sub": tok.Subject(), "aud": tok.Audience()}
	for _, c := range []string{"act", "scope", "client_id"} {
		if v, ok := tok.Get(c); ok {
			out[c] = v
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

func (a *protectedAPI) received() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.seen)
}

// startExchangeAuthz runs mcp-authz for resource with the token_exchange block te (the contents of a YAML
// flow mapping) and the shipped policy with the method and tool rules, behind an Envoy stand-in on l that
// sends allowed requests to upstream. KEY_FILE in te names a file holding privateKeyPEM.
func startExchangeAuthz(t testing.TB, as *exchangeAS, l net.Listener, upstream *url.URL, resource, te, privateKeyPEM string) *authzInstance {
	t.Helper()
	dir := t.TempDir()
	rego, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "policies", "authz.rego"))
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"authz.rego": string(rego), "data.yaml": policyData([]string{userClient}, true),
		"exchange-secret": exchangeSecret + "\n", "exchange-key.pem": privateKeyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	te = strings.ReplaceAll(te, "SECRET_FILE", filepath.Join(dir, "exchange-secret"))
	te = strings.ReplaceAll(te, "KEY_FILE", filepath.Join(dir, "exchange-key.pem"))
	yaml := fmt.Sprintf(`resources:
  - {url: %q, scopes_supported: [tools:read, tools:call], token_exchange: {%s}}
issuers:
  - {discovery_url: %q}
leeway: 1s
policy: {paths: [%q]}
`, resource, te, as.issuer+"/.well-known/openid-configuration", dir)
	az := startAuthz(t, yaml, listen(t), listen(t))
	startStandin(t, l, az, upstream, nil)
	return az
}

// authorizations are the Authorization headers the MCP server received.
func authorizations(s *mcpserver.Server) []string {
	var out []string
	for _, r := range s.Records() {
		out = append(out, r.Header.Get("Authorization"))
	}
	return out
}

// TestTokenExchange: a real MCP Go SDK client, with a client_credentials token of the AS for the MCP
// resource, calls the example server's call_api through the Envoy stand-in; mcp-authz exchanges the token
// at the AS (RFC 8693, with mcp-authz's own client_credentials token as actor_token) for one for the API,
// which the example server passes on. The API sees the user's sub, its own audience and the act claim; the
// client's token never goes upstream; a second call is served from the cache; a client of mcp-authz with
// private_key_jwt exchanges too; an AS that refuses gives 502 with the OAuth error, an AS that is down
// 503, and neither reaches the upstream.
func TestTokenExchange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	allowedL, refusedL, keyL := listen(t), listen(t), listen(t)
	allowed, refused, withKey := "http://"+allowedL.Addr().String()+"/mcp", "http://"+refusedL.Addr().String()+"/mcp", "http://"+keyL.Addr().String()+"/mcp"
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}))
	as := startExchangeAS(t, []string{allowed, refused, withKey}, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})))

	api := &protectedAPI{issuer: as.issuer}
	apiL := listen(t)
	serve(t, apiL, api)
	mcpL := listen(t)
	mcpSrv := mcpserver.New(mcpserver.WithAPI("http://"+apiL.Addr().String()+"/me", nil))
	serve(t, mcpL, mcpSrv)
	upstream, _ := url.Parse("http://" + mcpL.Addr().String())

	common := fmt.Sprintf("client_id: %s, client_secret_file: SECRET_FILE, timeout: 2s", exchangeClient)
	az := startExchangeAuthz(t, as, allowedL, upstream, allowed,
		fmt.Sprintf("audience: %q, scope: api.read, actor_token: {client_credentials: {}}, %s", apiAudience, common), "")
	startExchangeAuthz(t, as, refusedL, upstream, refused, fmt.Sprintf("audience: %q, %s", "https://not-allowed.example.test", common), "")
	startExchangeAuthz(t, as, keyL, upstream, withKey,
		fmt.Sprintf("audience: %q, client_id: %s, private_key_jwt: {key_file: KEY_FILE, key_id: k1}, timeout: 2s", apiAudience, keyClient), privPEM)

	users := clientcredentials.Config{ClientID: userClient, ClientSecret: userSecret, TokenURL: as.issuer + "/oauth/token", AuthStyle: oauth2.AuthStyleInHeader}
	tok, err := users.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	connect := func(endpoint string) *mcp.ClientSession {
		t.Helper()
		transport := &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: oauth2.NewClient(ctx, oauth2.StaticTokenSource(tok)), MaxRetries: -1}
		session, err := mcp.NewClient(&mcp.Implementation{Name: "mcp-authz-e2e", Version: "1.0.0"}, nil).Connect(ctx, transport, nil)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		t.Cleanup(func() { session.Close() })
		return session
	}
	session := connect(allowed)

	callAPI := func(session *mcp.ClientSession) map[string]any {
		t.Helper()
		out, err := callTool(ctx, session, "call_api", nil)
		if err != nil {
			t.Fatalf("call_api: %v", err)
		}
		var res struct {
			Status int    `json:"status"`
			Body   string `json:"body"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.Status != http.StatusOK {
			t.Fatalf("call_api = %s (%v)", out, err)
		}
		var claims map[string]any
		if err := json.Unmarshal([]byte(res.Body), &claims); err != nil {
			t.Fatalf("API answered %q", res.Body)
		}
		return claims
	}
	t.Run("the API sees the user, its audience and the actor", func(t *testing.T) {
		claims := callAPI(session)
		act, _ := claims["act"].(map[string]any)
		if claims["sub"] != "alice" || !slices.Contains(anyStrings(claims["aud"]), apiAudience) || claims["scope"] != "api.read" ||
			act == nil || act["sub"] != exchangeClient {
			t.Fatalf("API saw %v", claims)
		}
	})
	t.Run("a second call is served from the cache", func(t *testing.T) {
		before := as.exchanges(t)
		callAPI(session)
		if n := as.exchanges(t); n != before || n != 1 {
			t.Fatalf("exchanges at the AS: %d before, %d after, want 1 and 1", before, n)
		}
		resp, err := http.Get(az.httpURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var lines []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "mcp_authz_token_exchange") {
				lines = append(lines, l)
			}
		}
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, `result="hit"`) && !strings.HasSuffix(l, " 0") }) ||
			!slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, `outcome="ok"`) && strings.HasSuffix(l, " 1") }) {
			t.Fatalf("metrics:\n%s", strings.Join(lines, "\n"))
		}
	})
	t.Run("the client's token never goes upstream", func(t *testing.T) {
		client := "Bearer " + tok.AccessToken
		seen := authorizations(mcpSrv)
		if slices.Contains(seen, client) || slices.Contains(api.received(), client) {
			t.Fatal("the client's token reached the MCP server or the API")
		}
		got := api.received()[:2] // the two calls through the first stack
		if got[0] != got[1] || got[0] == "" {
			t.Fatalf("the API received %d calls (want 2 with the same exchanged token)", len(got))
		}
		if !slices.Contains(seen, got[0]) {
			t.Fatal("the MCP server never received the exchanged token")
		}
	})
	direct := -1 // the index of the one request the test itself sends the API with the client's token
	t.Run("the API refuses the client's own token (not its audience)", func(t *testing.T) {
		direct = len(api.received())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+apiL.Addr().String()+"/me", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("the API answered %d to the client's token, want 401", resp.StatusCode)
		}
	})
	t.Run("private_key_jwt client authentication", func(t *testing.T) {
		claims := callAPI(connect(withKey))
		if claims["sub"] != "alice" || claims["client_id"] != keyClient || claims["act"] != nil {
			t.Fatalf("API saw %v", claims)
		}
	})
	t.Run("the AS refuses: 502 with the OAuth error, upstream not reached", func(t *testing.T) {
		before := len(mcpSrv.Records())
		res := rawCall(t, refused, tok.AccessToken, callJSON("call_api"))
		if res.status != http.StatusBadGateway || !strings.Contains(res.body, "invalid_target") {
			t.Fatalf("refused exchange: %d %s", res.status, res.body)
		}
		if n := len(mcpSrv.Records()); n != before {
			t.Fatalf("the MCP server received %d requests", n-before)
		}
	})
	t.Run("the AS is down: 503, upstream not reached; a cached token still works", func(t *testing.T) {
		fresh, err := users.Token(ctx) // a token not exchanged yet
		if err != nil {
			t.Fatal(err)
		}
		as.proc.stop()
		before, apiBefore := len(mcpSrv.Records()), len(api.received())
		res := rawCall(t, allowed, fresh.AccessToken, callJSON("call_api"))
		if res.status != http.StatusServiceUnavailable {
			t.Fatalf("exchange with the AS down: %d %s", res.status, res.body)
		}
		if n := len(mcpSrv.Records()); n != before || len(api.received()) != apiBefore {
			t.Fatalf("upstream reached with the AS down: %d requests", n-before)
		}
		if claims := callAPI(session); claims["sub"] != "alice" {
			t.Fatalf("cached exchange: API saw %v", claims)
		}
	})
	// Over the whole run, whatever the stack and the outcome (the API got it once: the direct call above).
	client := "Bearer " + tok.AccessToken
	if slices.Contains(authorizations(mcpSrv), client) {
		t.Fatal("the client's token reached the MCP server")
	}
	for i, a := range api.received() {
		if a == client && i != direct {
			t.Fatal("the client's token reached the API through the MCP server")
		}
	}
}

// anyStrings reads a JSON string or array of strings.
func anyStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
