package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"golang.org/x/oauth2"
)

// The IdPs of the bridge scenarios, set up as an operator sets up an enterprise IdP for mcp-authz's OAuth
// bridge: no registration for anonymous clients, one public client pre-registered for the bridge with the
// bridge's callback as its only redirect URI.

// bridgeClientID is the public client the operator registers at each IdP for the bridge.
const bridgeClientID = "mcp-authz-bridge"

// enterpriseAudience is the fixed audience of the enterprise-like oidc-provider (Okta's default
// authorization server issues every access token for it).
const enterpriseAudience = "api://default"

// startBridgeHydra runs Hydra (dynamic registration off) with the bridge's public client: PKCE, redirect
// URI callback, authorization_code and refresh_token, the MCP resource URLs as the audiences it may ask for.
func startBridgeHydra(t testing.TB, resources []string, callback string) *hydra {
	t.Helper()
	h := startHydra(t, resources)
	h.createClient(t, map[string]any{
		"client_id": bridgeClientID, "client_name": "mcp-authz OAuth bridge", "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		"scope": "openid offline_access tools:read tools:call tools:admin", "redirect_uris": []string{callback},
		"audience": resources,
	}, 0)
	return h
}

// enterpriseIdP is node oidc-provider set up like an enterprise IdP (test/e2e/node/oidc-provider.mjs with
// OP_AUDIENCE): no registration, one static public client (the bridge's), access tokens for the fixed
// audience api://default whatever `resource` asks, no code_challenge_methods_supported in its metadata.
type enterpriseIdP struct {
	issuer string
	proc   *process
}

// startEnterpriseIdP runs it with the bridge's client, whose only redirect URI is callback.
func startEnterpriseIdP(t testing.TB, callback string) *enterpriseIdP {
	t.Helper()
	node, dir, _ := nodeTools(t, false)
	port := freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", port)
	clients, _ := json.Marshal([]map[string]any{{
		"client_id": bridgeClientID, "client_name": "mcp-authz OAuth bridge", "token_endpoint_auth_method": "none",
		"application_type": "native", "grant_types": []string{"authorization_code", "refresh_token"},
		"response_types": []string{"code"}, "scope": "openid offline_access tools:read tools:call tools:admin",
		"redirect_uris": []string{callback},
	}})
	proc := start(t, "oidc-provider (enterprise)", []string{
		fmt.Sprintf("OP_PORT=%d", port), "OP_CLIENTS=" + string(clients), "OP_AUDIENCE=" + enterpriseAudience,
	}, dir, node, filepath.Join(dir, "oidc-provider.mjs"))
	waitHTTP(t, issuer+"/.well-known/openid-configuration", 30*time.Second, proc)
	return &enterpriseIdP{issuer: issuer, proc: proc}
}

// TestBridgeIdPs checks the IdPs of the bridge scenarios without the bridge: they refuse to register
// clients, their metadata is what the scenarios claim, and the bridge's pre-registered client completes
// an authorization code flow with PKCE at each of them (Hydra issues the audience it is asked for with
// `audience=`, the enterprise provider its fixed audience whatever `resource` says).
func TestBridgeIdPs(t *testing.T) {
	const callback = "http://127.0.0.1:9/oauth/idp/callback" // taken from the redirect, nothing listens
	const resource = "http://127.0.0.1:9/mcp"
	t.Run("hydra", func(t *testing.T) {
		t.Parallel()
		h := startBridgeHydra(t, []string{resource}, callback)
		meta := discovery(t, h.issuer)
		if _, ok := meta["registration_endpoint"]; ok {
			t.Errorf("Hydra advertises a registration endpoint: %v", meta["registration_endpoint"])
		}
		if status := register(t, h.issuer+"/oauth2/register"); status/100 == 2 {
			t.Errorf("Hydra registered a client (status %d) with dynamic registration off", status)
		}
		claims := bridgeClientFlow(t, meta, callback, url.Values{"audience": {resource}})
		if claims["iss"] != h.issuer || !audContains(claims["aud"], resource) || claims["client_id"] != bridgeClientID {
			t.Errorf("access token claims %v, want iss %s, aud %s, client_id %s", claims, h.issuer, resource, bridgeClientID)
		}
	})
	t.Run("oidc-provider enterprise", func(t *testing.T) {
		t.Parallel()
		op := startEnterpriseIdP(t, callback)
		for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
			meta := discoveryAt(t, op.issuer+path)
			for _, hidden := range []string{"registration_endpoint", "code_challenge_methods_supported"} {
				if _, ok := meta[hidden]; ok {
					t.Errorf("%s advertises %s: %v", path, hidden, meta[hidden])
				}
			}
		}
		if status := register(t, op.issuer+"/reg"); status/100 == 2 {
			t.Errorf("oidc-provider registered a client (status %d)", status)
		}
		meta := discovery(t, op.issuer)
		claims := bridgeClientFlow(t, meta, callback, url.Values{"resource": {resource}})
		if claims["iss"] != op.issuer || !audContains(claims["aud"], enterpriseAudience) || audContains(claims["aud"], resource) {
			t.Errorf("access token claims %v, want iss %s and aud %s only (resource ignored)", claims, op.issuer, enterpriseAudience)
		}
	})
}

// discovery fetches an issuer's OpenID configuration.
func discovery(t testing.TB, issuer string) map[string]any {
	t.Helper()
	return discoveryAt(t, issuer+"/.well-known/openid-configuration")
}

// discoveryAt fetches a JSON metadata document.
func discoveryAt(t testing.TB, u string) map[string]any {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var meta map[string]any
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&meta); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("metadata %s: %d %v", u, resp.StatusCode, err)
	}
	return meta
}

// register tries an RFC 7591 registration of a public client and returns the status.
func register(t testing.TB, endpoint string) int {
	t.Helper()
	body := `{"redirect_uris":["http://127.0.0.1:9/cb"],"token_endpoint_auth_method":"none","client_name":"anonymous"}`
	resp, err := http.Post(endpoint, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// bridgeClientFlow runs an authorization code flow with PKCE for the bridge's client as alice (the Go
// user agent fills the IdP's forms) and returns the access token's claims.
func bridgeClientFlow(t testing.TB, meta map[string]any, callback string, params url.Values) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := &oauth2.Config{
		ClientID:    bridgeClientID,
		Endpoint:    oauth2.Endpoint{AuthURL: meta["authorization_endpoint"].(string), TokenURL: meta["token_endpoint"].(string), AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: callback,
		Scopes:      []string{"openid", "tools:read", "tools:call"},
	}
	verifier := oauth2.GenerateVerifier()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	for k, vs := range params {
		opts = append(opts, oauth2.SetAuthURLParam(k, vs[0]))
	}
	ua := newUserAgent(t, "alice", callback)
	res, err := ua.fetch(ctx, &auth.AuthorizationArgs{URL: cfg.AuthCodeURL("state-0123456789", opts...)})
	if err != nil {
		t.Fatalf("authorization: %v", err)
	}
	if res.State != "state-0123456789" {
		t.Fatalf("state %q came back", res.State)
	}
	tok, err := cfg.Exchange(ctx, res.Code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	return jwtClaims(t, tok.AccessToken)
}

// jwtClaims reads a JWT's claims without verifying it (mcp-authz verifies; tests only look).
func jwtClaims(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWT (%d parts)", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// audContains says whether an aud claim (a string or an array) holds want.
func audContains(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		return slices.ContainsFunc(a, func(v any) bool { return v == want })
	}
	return false
}
