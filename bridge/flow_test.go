package bridge

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestFullFlowDCR runs a DCR client through authorize, consent, the IdP, the callback and the token endpoint,
// then refreshes; the access token is the IdP's.
func TestFullFlowDCR(t *testing.T) {
	e := newEnv(t, envOptions{})
	redirect := "http://127.0.0.1:5555/cb"
	f := e.newFlow(e.register(redirect), redirect)
	back := f.code()
	q := back.Query()
	if q.Get("state") != "client-state" || q.Get("iss") != e.iss || q.Get("code") == "" {
		t.Fatalf("client redirect: %v", back)
	}
	r := f.redeem(q.Get("code"))
	if r.status != http.StatusOK {
		t.Fatalf("token: %d %s", r.status, r.body)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("token Cache-Control %q", cc)
	}
	tok := decodeJSON(t, r.body)
	at, _ := tok["access_token"].(string)
	claims := jwtClaims(t, at)
	if claims["iss"] != e.idp.Issuer() || claims["aud"] != testResource || claims["client_id"] != "mcp-client" {
		t.Errorf("access token claims %v", claims)
	}
	if tok["scope"] != "tools:read openid offline_access" || tok["token_type"] != "Bearer" {
		t.Errorf("token answer %v", tok)
	}
	rt, _ := tok["refresh_token"].(string)
	if rt == "" {
		t.Fatal("no refresh token")
	}
	r = f.br.postForm(e.iss+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {f.clientID}})
	if r.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	if ref := decodeJSON(t, r.body); ref["access_token"] == "" || ref["refresh_token"] == rt {
		t.Errorf("refresh answer %v", ref)
	}
	// The second authorization in the same browser skips the consent page.
	f2 := e.newFlow(f.clientID, redirect)
	f2.br = f.br
	if r := f2.authorize(); r.status != http.StatusFound || !strings.HasPrefix(r.location.String(), e.idp.Issuer()) {
		t.Errorf("approved client: want a redirect to the IdP, got %d %s", r.status, r.body)
	}
	logs := e.logs.String()
	for _, secret := range []string{q.Get("code"), at, rt, f.verifier} {
		if strings.Contains(logs, secret) {
			t.Errorf("log holds a secret: %s", logs)
		}
	}
	for _, ev := range []string{`"event":"register"`, `"event":"authorize"`, `"event":"consent"`, `"event":"callback"`, `"event":"token"`, `"event":"refresh"`} {
		if !strings.Contains(logs, ev) {
			t.Errorf("no %s decision in the log", ev)
		}
	}
}
