package bridge

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// TestRedirectToKeepsTheQuery checks that the parameters sent back to a client are appended to its
// redirect URI's own query, which is kept byte for byte (RFC 6749 section 3.1.2): a re-encoding would drop
// or change what the client registered (a pair with ';', a bare flag, the order).
func TestRedirectToKeepsTheQuery(t *testing.T) {
	tests := []struct{ redirect, want string }{
		{"http://127.0.0.1:40001/cb", "http://127.0.0.1:40001/cb?code=C&iss=https%3A%2F%2Fa%2Foauth%2Fx&state=S"},
		{"http://127.0.0.1:40001/cb?t=a;b&flag&z=1&a=2", "http://127.0.0.1:40001/cb?t=a;b&flag&z=1&a=2&code=C&iss=https%3A%2F%2Fa%2Foauth%2Fx&state=S"},
	}
	for _, tc := range tests {
		w := httptest.NewRecorder()
		redirectTo(w, httptest.NewRequest(http.MethodGet, "/x", nil), tc.redirect, url.Values{"code": {"C"}}, "S", "https://a/oauth/x")
		if got := w.Header().Get("Location"); w.Code != http.StatusFound || got != tc.want {
			t.Errorf("%s: %d %s, want %s", tc.redirect, w.Code, got, tc.want)
		}
	}
}

// TestIdPClientFollowsNoRedirect checks that the client the bridge calls IdPs with does not follow a
// redirect: a token request carries the client secret and the authorization code, and a redirect would
// send them again to wherever the answer points.
func TestIdPClientFollowsNoRedirect(t *testing.T) {
	var hit bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit = true }))
	defer elsewhere.Close()
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/token", http.StatusTemporaryRedirect)
	}))
	defer redirecting.Close()
	e := newEnv(t, envOptions{})
	resp, err := e.b.client.PostForm(redirecting.URL+"/token", url.Values{"code": {"c"}, "client_secret": {"s"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || hit {
		t.Errorf("status %d, redirect followed %v; want the 307 itself, not followed", resp.StatusCode, hit)
	}
}
