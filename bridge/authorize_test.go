package bridge

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestAuthorizeShownOnPage: until the client and its redirect URI are validated, errors are shown on a page
// and never redirected.
func TestAuthorizeShownOnPage(t *testing.T) {
	e := newEnv(t, envOptions{})
	redirect := "http://127.0.0.1:5555/cb"
	id := e.register(redirect)
	// A client whose registered redirect is no longer (or never was) on the allow-list.
	offList, _ := e.b.sealer.Seal(PurposeClient, dcrClient{Bridge: "default", Name: "stale", RedirectURIs: []string{"https://evil.example/cb"}}, time.Time{})
	otherBridge, _ := e.b.sealer.Seal(PurposeClient, dcrClient{Bridge: "other", Name: "x", RedirectURIs: []string{redirect}}, time.Time{})
	stateAsClient, _ := e.b.sealer.Seal(PurposeState, dcrClient{Bridge: "default", Name: "x", RedirectURIs: []string{redirect}}, time.Time{})
	tests := []struct {
		name   string
		change func(url.Values)
		want   string
	}{
		{"no client id", func(q url.Values) { q.Del("client_id") }, "client_id is missing"},
		{"forged client id", func(q url.Values) { q.Set("client_id", "bm90LXNlYWxlZA") }, "neither a metadata document"},
		{"state sealed as a client id", func(q url.Values) { q.Set("client_id", stateAsClient) }, "neither a metadata document"},
		{"client of another bridge", func(q url.Values) { q.Set("client_id", otherBridge) }, "another bridge"},
		{"redirect not registered by the client", func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:5555/other") }, "did not register"},
		{"redirect of another host", func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") }, "did not register"},
		{"registered redirect not on the allow-list", func(q url.Values) {
			q.Set("client_id", offList)
			q.Set("redirect_uri", "https://evil.example/cb")
		}, "does not allow"},
		{"duplicate redirect_uri", func(q url.Values) { q.Add("redirect_uri", "https://evil.example/cb") }, "more than once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.newFlow(id, redirect)
			tt.change(f.params)
			r := f.authorize()
			if r.status != http.StatusBadRequest || r.location != nil {
				t.Fatalf("status %d location %v, want a 400 page", r.status, r.location)
			}
			if !strings.Contains(r.body, tt.want) || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
				t.Errorf("page does not say %q: %s", tt.want, r.body)
			}
			if r.header.Get("X-Frame-Options") != "DENY" || !strings.Contains(r.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
				t.Errorf("page headers %v", r.header)
			}
		})
	}
}

// TestAuthorizeRedirectedErrors: once the redirect URI is trusted, errors go back to it with state and iss.
func TestAuthorizeRedirectedErrors(t *testing.T) {
	e := newEnv(t, envOptions{})
	redirect := "http://127.0.0.1:5555/cb"
	id := e.register(redirect)
	tests := []struct {
		name   string
		change func(url.Values)
		code   string
	}{
		{"response type token", func(q url.Values) { q.Set("response_type", "token") }, "unsupported_response_type"},
		{"no PKCE", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, "invalid_request"},
		{"no challenge method", func(q url.Values) { q.Del("code_challenge_method") }, "invalid_request"},
		{"plain PKCE", func(q url.Values) { q.Set("code_challenge_method", "plain") }, "invalid_request"},
		{"challenge not a digest", func(q url.Values) { q.Set("code_challenge", "short") }, "invalid_request"},
		{"unknown resource", func(q url.Values) { q.Set("resource", "https://other.example/mcp") }, "invalid_target"},
		{"two resources", func(q url.Values) { q.Add("resource", testResource) }, "invalid_target"},
		{"bad scope", func(q url.Values) { q.Set("scope", "tools:read \"x\"") }, "invalid_scope"},
		{"scope the resource does not list", func(q url.Values) { q.Set("scope", "tools:read admin:everything") }, "invalid_scope"},
		{"oversized state", func(q url.Values) { q.Set("state", strings.Repeat("s", maxStateBytes+1)) }, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.newFlow(id, redirect)
			tt.change(f.params)
			r := f.authorize()
			if r.status != http.StatusFound || !strings.HasPrefix(r.location.String(), redirect) {
				t.Fatalf("want a redirect to the client, got %d %v %s", r.status, r.location, r.body)
			}
			q := r.location.Query()
			if q.Get("error") != tt.code || q.Get("iss") != e.iss || (tt.name != "oversized state" && q.Get("state") != "client-state") {
				t.Errorf("redirect %v, want error %s with state and iss", r.location, tt.code)
			}
		})
	}
}

// TestAuthorizeLoopbackPortVariance: a loopback redirect registered on one port is used on another (RFC 8252).
func TestAuthorizeLoopbackPortVariance(t *testing.T) {
	e := newEnv(t, envOptions{})
	id := e.register("http://127.0.0.1/cb")
	f := e.newFlow(id, "http://127.0.0.1:61234/cb")
	back := f.code()
	if r := f.redeem(back.Query().Get("code")); r.status != http.StatusOK {
		t.Fatalf("token: %d %s", r.status, r.body)
	}
}

// TestAuthorizeToIdP checks what the bridge sends the IdP: its own client, callback and PKCE, the mapped scope,
// the resource per the issuer's mode and the static parameters.
func TestAuthorizeToIdP(t *testing.T) {
	tests := []struct {
		name, yaml                string
		scope, resource, audience string
	}{
		{"pass", "", "tools:read openid offline_access", testResource, ""},
		{"drop with a scope prefix", "resource: drop\nscope_prefix: api://app/\nauthorize_params: {prompt: login}", "api://app/tools:read openid offline_access", "", ""},
		{"audience", "resource: audience\naudience: api://default", "tools:read openid offline_access", "", "api://default"},
		{"no scope asked: the resource's", "", "tools:read tools:call openid offline_access", testResource, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{bridgeYAML: tt.yaml})
			redirect := "http://127.0.0.1:5555/cb"
			f := e.newFlow(e.register(redirect), redirect)
			if strings.HasPrefix(tt.name, "no scope") {
				f.params.Del("scope")
			}
			r := f.consent(f.authorize(), "allow")
			q := r.location.Query()
			if q.Get("client_id") != "mcp-client" || q.Get("redirect_uri") != e.iss+"/callback" || q.Get("code_challenge_method") != "S256" ||
				!validChallenge(q.Get("code_challenge")) || q.Get("code_challenge") == f.params.Get("code_challenge") || q.Get("response_type") != "code" {
				t.Errorf("to IdP: %v", q)
			}
			if q.Get("scope") != tt.scope || q.Get("resource") != tt.resource || q.Get("audience") != tt.audience {
				t.Errorf("scope %q resource %q audience %q", q.Get("scope"), q.Get("resource"), q.Get("audience"))
			}
			if tt.name == "drop with a scope prefix" && q.Get("prompt") != "login" {
				t.Errorf("authorize_params not sent: %v", q)
			}
		})
	}
}

func TestScopeMapping(t *testing.T) {
	is := &issuer{}
	is.cfg.ScopePrefix = "api://app/"
	is.cfg.ExtraScopes = []string{"openid"}
	if got := is.idpScope("tools:read openid api://app/tools:call tools:read"); got != "api://app/tools:read openid api://app/tools:call" {
		t.Errorf("idpScope = %q", got)
	}
	if got := is.mcpScope("api://app/tools:read openid"); got != "tools:read openid" {
		t.Errorf("mcpScope = %q", got)
	}
}
