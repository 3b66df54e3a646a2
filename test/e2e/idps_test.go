package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/test/idp"
)

// redirectURL is the Go SDK client's redirect URI. The user agent takes the code from the redirect itself,
// so nothing listens there.
const redirectURL = "http://127.0.0.1:8976/callback"

// clientCredentials gets an access token with the client_credentials grant (client_secret_basic).
func clientCredentials(t testing.TB, tokenURL, id, secret string, params url.Values) string {
	t.Helper()
	params.Set("grant_type", "client_credentials")
	req, err := http.NewRequest("POST", tokenURL, strings.NewReader(params.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.AccessToken == "" {
		t.Fatalf("client_credentials at %s: %d %v %s %s", tokenURL, resp.StatusCode, err, out.Error, out.Description)
	}
	return out.AccessToken
}

// testHydra: Ory Hydra v2.3.0 with the suite's login/consent app.
func testHydra(t *testing.T) {
	p := newPlan(t)
	h := startHydra(t, p.resources())
	public := func(id string) map[string]any {
		return map[string]any{
			"client_id": id, "token_endpoint_auth_method": "none",
			"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
			"scope": "openid offline_access tools:read tools:call tools:admin", "redirect_uris": []string{redirectURL},
			"audience": p.resources(),
		}
	}
	h.createClient(t, public("mcp-client"), 0)
	callbackPort := freePort(t)
	remote := public("mcp-remote")
	remote["redirect_uris"] = []string{fmt.Sprintf("http://127.0.0.1:%d/oauth/callback", callbackPort)}
	h.createClient(t, remote, 0)
	const shortTTL = 3 * time.Second
	h.createClient(t, public("mcp-short"), shortTTL)
	h.createClient(t, map[string]any{
		"client_id": "svc", "client_secret": "svc-secret-0123456789", "token_endpoint_auth_method": "client_secret_basic",
		"grant_types": []string{"client_credentials"}, "scope": "tools:read",
		"audience": append(p.resources(), "https://elsewhere.example.com/mcp"),
	}, 0)
	st := p.start(t, fmt.Sprintf("  - {discovery_url: %q}\n", h.issuer+"/.well-known/openid-configuration"), []string{"mcp-client", "mcp-short", "mcp-remote"})
	env := idpEnv{
		issuer: h.issuer, clientID: "mcp-client", shortClientID: "mcp-short", shortTTL: shortTTL, redirectURL: redirectURL, userLogin: true,
		remoteClientID: "mcp-remote", callbackPort: callbackPort,
		serviceToken: func(t testing.TB, aud string) string {
			return clientCredentials(t, h.issuer+"/oauth2/token", "svc", "svc-secret-0123456789", url.Values{"scope": {"tools:read"}, "audience": {aud}})
		},
	}
	runScenarios(t, st, env, h.proc.stop)
}

// testDevIdP: the project's own provider (test/idp, served by cmd/mcp-devidp), which approves every login as
// one user and issues RFC 9068 at+jwt tokens with the resource as audience.
func testDevIdP(t *testing.T) {
	p := newPlan(t)
	l := listen(t)
	prov, err := idp.New("http://"+l.Addr().String(), idp.WithUser("alice", "alice@example.com", []string{"mcp-users", "admins"}))
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l, prov.Handler())
	st := p.start(t, fmt.Sprintf("  - {discovery_url: %q, required_type: at+jwt}\n", prov.Issuer()+"/.well-known/openid-configuration"), []string{"mcp-client"})
	env := idpEnv{
		issuer: prov.Issuer(), clientID: "mcp-client", redirectURL: redirectURL,
		remoteClientID: "mcp-client", callbackPort: freePort(t), // public, any loopback redirect URI
		serviceToken: func(t testing.TB, aud string) string {
			return clientCredentials(t, prov.Issuer()+"/token", "demo-service", "demo-secret", url.Values{"scope": {"tools:read"}, "resource": {aud}})
		},
	}
	runScenarios(t, st, env, func() { prov.SetDown(true) })
}

// testOIDCProvider: node oidc-provider 9 (test/e2e/node/oidc-provider.mjs), which honours RFC 8707
// `resource` (aud) and issues `typ: at+jwt` JWT access tokens; users log in on its devInteractions pages.
func testOIDCProvider(t *testing.T) {
	node, dir, _ := nodeTools(t, false)
	p := newPlan(t)
	port, callbackPort := freePort(t), freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", port)
	public := func(id string, redirects ...string) map[string]any {
		return map[string]any{
			"client_id": id, "token_endpoint_auth_method": "none", "application_type": "native",
			"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
			"scope": "openid offline_access tools:read tools:call tools:admin", "redirect_uris": redirects,
		}
	}
	clients, _ := json.Marshal([]map[string]any{
		public("mcp-client", redirectURL, fmt.Sprintf("http://127.0.0.1:%d/oauth/callback", callbackPort)),
		public("mcp-short", redirectURL),
		{"client_id": "svc", "client_secret": "svc-secret-0123456789", "grant_types": []string{"client_credentials"},
			"redirect_uris": []string{}, "response_types": []string{}, "scope": "tools:read"},
	})
	resources, _ := json.Marshal(p.resources())
	const shortTTL = 3 * time.Second
	proc := start(t, "oidc-provider", []string{
		fmt.Sprintf("OP_PORT=%d", port), "OP_CLIENTS=" + string(clients), "OP_RESOURCES=" + string(resources),
		fmt.Sprintf("OP_SHORT_TTL=%d", int(shortTTL/time.Second)),
	}, dir, node, filepath.Join(dir, "oidc-provider.mjs"))
	waitHTTP(t, issuer+"/.well-known/openid-configuration", 30*time.Second, proc)
	st := p.start(t, fmt.Sprintf("  - {discovery_url: %q, required_type: at+jwt}\n", issuer+"/.well-known/openid-configuration"), []string{"mcp-client", "mcp-short"})
	env := idpEnv{
		issuer: issuer, clientID: "mcp-client", shortClientID: "mcp-short", shortTTL: shortTTL, redirectURL: redirectURL, userLogin: true,
		remoteClientID: "mcp-client", callbackPort: callbackPort,
		// OpenID Connect: offline_access is dropped unless the user is prompted for consent.
		refreshParams: url.Values{"prompt": {"consent"}},
		serviceToken: func(t testing.TB, aud string) string {
			return clientCredentials(t, issuer+"/token", "svc", "svc-secret-0123456789", url.Values{"scope": {"tools:read"}, "resource": {aud}})
		},
	}
	runScenarios(t, st, env, proc.stop)
}
