package bridge

import (
	"net/http"
	"net/url"
	"testing"
)

// TestMetadata checks the authorization server metadata at its three paths.
func TestMetadata(t *testing.T) {
	e := newEnv(t, envOptions{})
	u, _ := url.Parse(e.iss)
	for _, p := range []string{"/.well-known/oauth-authorization-server/oauth/default", "/.well-known/openid-configuration/oauth/default", "/oauth/default/.well-known/openid-configuration"} {
		r := newBrowser(t).get(u.Scheme + "://" + u.Host + p)
		if r.status != http.StatusOK || r.header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("%s: %d %v", p, r.status, r.header)
		}
		m := decodeJSON(t, r.body)
		if m["issuer"] != e.iss || m["authorization_endpoint"] != e.iss+"/authorize" || m["token_endpoint"] != e.iss+"/token" ||
			m["registration_endpoint"] != e.iss+"/register" || m["client_id_metadata_document_supported"] != true ||
			m["authorization_response_iss_parameter_supported"] != true {
			t.Errorf("%s: %v", p, m)
		}
		if s, _ := m["code_challenge_methods_supported"].([]any); len(s) != 1 || s[0] != "S256" {
			t.Errorf("%s: code_challenge_methods_supported %v", p, s)
		}
		if s, _ := m["token_endpoint_auth_methods_supported"].([]any); len(s) != 1 || s[0] != "none" {
			t.Errorf("%s: token_endpoint_auth_methods_supported %v", p, s)
		}
		if s, _ := m["scopes_supported"].([]any); len(s) != 2 || s[0] != "tools:read" {
			t.Errorf("%s: scopes_supported %v", p, s)
		}
	}
}

// TestCORSPreflight: browser-based clients may call the token and registration endpoints cross-origin.
func TestCORSPreflight(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, p := range []string{"/token", "/register"} {
		req, _ := http.NewRequest(http.MethodOptions, e.iss+p, nil)
		req.Header.Set("Origin", "https://app.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		r := newBrowser(t).do(req)
		if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != "*" || r.header.Get("Access-Control-Allow-Methods") == "" {
			t.Errorf("%s preflight: %d %v", p, r.status, r.header)
		}
	}
}

// TestPublicURLWithPath: with public_url https://h/auth, the issuer is https://h/auth/oauth/default and its
// metadata is at the RFC 8414 path-inserted URL; the whole flow runs under the path.
func TestPublicURLWithPath(t *testing.T) {
	e := newEnv(t, envOptions{publicPath: "/auth"})
	u, _ := url.Parse(e.iss)
	if u.Path != "/auth/oauth/default" {
		t.Fatalf("issuer %s", e.iss)
	}
	r := newBrowser(t).get(u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server/auth/oauth/default")
	if m := decodeJSON(t, r.body); r.status != http.StatusOK || m["issuer"] != e.iss || m["token_endpoint"] != e.iss+"/token" {
		t.Fatalf("%d %v", r.status, m)
	}
	redirect := "http://127.0.0.1:5555/cb"
	f := e.newFlow(e.register(redirect), redirect)
	if r := f.redeem(f.code().Query().Get("code")); r.status != http.StatusOK {
		t.Fatalf("token: %d %s", r.status, r.body)
	}
}
