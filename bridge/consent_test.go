package bridge

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestConsentPage(t *testing.T) {
	e := newEnv(t, envOptions{})
	redirect := "http://127.0.0.1:5555/cb"
	f := e.newFlow(e.register(redirect), redirect)
	r := f.authorize()
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	for _, want := range []string{`<html lang="en">`, "Test client", "127.0.0.1:5555", "Example tools", testResource, "tools:read",
		`<button id="allow" class="allow" type="submit" name="decision" value="allow">Allow</button>`, `value="deny">Deny</button>`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	if strings.Contains(r.body, "<script") {
		t.Error("consent page has a script")
	}
	h := r.header
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "style-src 'sha256-"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	// The page's style is the one the policy's hash allows.
	style := r.body[strings.Index(r.body, "<style>")+len("<style>") : strings.Index(r.body, "</style>")]
	sum := sha256.Sum256([]byte(style))
	if !strings.Contains(csp, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
		t.Errorf("CSP %q does not allow the page's style", csp)
	}
	if h.Get("X-Frame-Options") != "DENY" || h.Get("Cache-Control") != "no-store" || h.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("headers %v", h)
	}
	var bind *http.Cookie
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == "mcp-authz-bind" {
			bind = c
		}
	}
	if bind == nil || !bind.HttpOnly || bind.SameSite != http.SameSiteLaxMode {
		t.Errorf("binding cookie %+v", bind)
	}
}

func TestConsentRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	redirect := "http://127.0.0.1:5555/cb"
	f := e.newFlow(e.register(redirect), redirect)
	r := f.consent(f.authorize(), "deny")
	if r.status != http.StatusFound || !strings.HasPrefix(r.location.String(), redirect) {
		t.Fatalf("want a redirect to the client, got %d %v", r.status, r.location)
	}
	if q := r.location.Query(); q.Get("error") != "access_denied" || q.Get("state") != "client-state" || q.Get("iss") != e.iss {
		t.Errorf("refusal %v", q)
	}
	// A refusal is not remembered: the next authorization asks again.
	if r := f.authorize(); r.status != http.StatusOK || !strings.Contains(r.body, `name="csrf"`) {
		t.Errorf("after a refusal: %d", r.status)
	}
}

func TestConsentRefusals(t *testing.T) {
	e := newEnv(t, envOptions{})
	redirect := "http://127.0.0.1:5555/cb"
	id := e.register(redirect)
	// Mallory's consent form: valid, for her browser.
	mallory := e.newFlow(id, redirect)
	malloryForm := consentForm(t, mallory.authorize().body)
	// A transaction of Mallory's browser with a CSRF token for this one: only the transaction's own binding
	// tells them apart.
	var malloryTx txn
	if err := e.b.sealer.Open(PurposeConsent, malloryForm.Get("txn"), &malloryTx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(f *flow, form url.Values)
		status int
		want   string
	}{
		{"no CSRF token", func(_ *flow, form url.Values) { form.Del("csrf") }, http.StatusForbidden, "security token"},
		{"wrong CSRF token", func(_ *flow, form url.Values) { form.Set("csrf", malloryForm.Get("csrf")) }, http.StatusForbidden, "security token"},
		{"CSRF token presented as the transaction", func(_ *flow, form url.Values) { form.Set("txn", form.Get("csrf")) }, http.StatusBadRequest, "invalid or expired"},
		{"another browser's form", func(_ *flow, form url.Values) {
			form.Set("txn", malloryForm.Get("txn"))
			form.Set("csrf", malloryForm.Get("csrf"))
		}, http.StatusForbidden, "security token"},
		{"another browser's transaction with this browser's CSRF token", func(f *flow, form url.Values) {
			var tok csrfToken
			e.b.sealer.Open(PurposeCSRF, form.Get("csrf"), &tok)
			csrf, _ := e.b.sealer.Seal(PurposeCSRF, csrfToken{Binding: tok.Binding, Txn: malloryTx.ID}, e.clock.now().Add(time.Minute))
			form.Set("csrf", csrf)
			form.Set("txn", malloryForm.Get("txn"))
		}, http.StatusForbidden, "another browser"},
		{"transaction of another bridge", func(_ *flow, form url.Values) {
			var tx txn
			e.b.sealer.Open(PurposeConsent, form.Get("txn"), &tx)
			tx.Bridge = "other"
			moved, _ := e.b.sealer.Seal(PurposeConsent, tx, e.clock.now().Add(time.Minute))
			form.Set("txn", moved)
		}, http.StatusBadRequest, "invalid or expired"},
		{"no binding cookie", func(f *flow, _ url.Values) { f.br = newBrowser(t) }, http.StatusForbidden, "did not start"},
		{"no decision", func(_ *flow, form url.Values) { form.Del("decision") }, http.StatusBadRequest, "answer is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.newFlow(id, redirect)
			form := consentForm(t, f.authorize().body)
			form.Set("decision", "allow")
			tt.change(f, form)
			r := f.br.postForm(e.iss+"/consent", form)
			if r.status != tt.status || r.location != nil || !strings.Contains(r.body, tt.want) {
				t.Fatalf("status %d location %v, want a %d page saying %q: %s", r.status, r.location, tt.status, tt.want, r.body)
			}
		})
	}
	t.Run("cross-origin POST", func(t *testing.T) {
		f := e.newFlow(id, redirect)
		form := consentForm(t, f.authorize().body)
		form.Set("decision", "allow")
		req, _ := http.NewRequest(http.MethodPost, e.iss+"/consent", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example")
		if r := f.br.do(req); r.status != http.StatusForbidden {
			t.Fatalf("status %d, want 403", r.status)
		}
	})
	// A browser posting from another site under a no-referrer policy: Origin null, but Sec-Fetch-Site says.
	for _, site := range []string{"cross-site", "same-site"} {
		t.Run("Sec-Fetch-Site "+site, func(t *testing.T) {
			f := e.newFlow(id, redirect)
			form := consentForm(t, f.authorize().body)
			form.Set("decision", "allow")
			req, _ := http.NewRequest(http.MethodPost, e.iss+"/consent", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", "null")
			req.Header.Set("Sec-Fetch-Site", site)
			if r := f.br.do(req); r.status != http.StatusForbidden {
				t.Fatalf("status %d, want 403", r.status)
			}
		})
	}
}

// TestConsentRememberedPerResourceAndScopes checks that an approval is remembered for what was approved:
// the same client, resource and scopes go straight to the IdP; more scopes ask again.
func TestConsentRememberedPerResourceAndScopes(t *testing.T) {
	e := newEnv(t, envOptions{})
	redirect := "http://127.0.0.1:5555/cb"
	id := e.register(redirect)
	f := e.newFlow(id, redirect)
	if r := f.consent(f.authorize(), "allow"); r.status != http.StatusFound || !strings.HasPrefix(r.location.String(), e.idp.Issuer()) {
		t.Fatalf("approval: %d %v", r.status, r.location)
	}
	again := e.newFlow(id, redirect)
	again.br = f.br // the same browser
	if r := again.authorize(); r.status != http.StatusFound || !strings.HasPrefix(r.location.String(), e.idp.Issuer()) {
		t.Errorf("same client, resource and scopes: %d %v, want the IdP without asking", r.status, r.location)
	}
	wider := e.newFlow(id, redirect)
	wider.br = f.br
	wider.params.Set("scope", "tools:read tools:call")
	if r := wider.authorize(); r.status != http.StatusOK || !strings.Contains(r.body, "tools:call") {
		t.Errorf("more scopes: %d %v, want the consent page again", r.status, r.location)
	}
}
