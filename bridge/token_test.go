package bridge

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestTokenRefusals(t *testing.T) {
	e := newEnv(t, envOptions{})
	redirect := "http://127.0.0.1:5555/cb"
	id := e.register(redirect)
	otherID := e.register(redirect)
	other, _ := NewSealer([][]byte{testKey(9)}, e.clock.now)
	tests := []struct {
		name   string
		change func(f *flow, form url.Values)
		status int
		code   string
	}{
		{"wrong code_verifier", func(f *flow, form url.Values) { form.Set("code_verifier", strings.Repeat("a", 43)) }, 400, "invalid_grant"},
		{"no code_verifier", func(f *flow, form url.Values) { form.Del("code_verifier") }, 400, "invalid_grant"},
		{"another client's code", func(f *flow, form url.Values) { form.Set("client_id", otherID) }, 400, "invalid_grant"},
		{"another redirect_uri", func(f *flow, form url.Values) { form.Set("redirect_uri", "http://127.0.0.1:5555/other") }, 400, "invalid_grant"},
		{"expired code", func(f *flow, form url.Values) {
			e.clock.add(codeTTL + time.Second)
			t.Cleanup(func() { e.clock.add(-codeTTL - time.Second) })
		}, 400, "invalid_grant"},
		{"code sealed by another key", func(f *flow, form url.Values) {
			var g codeGrant
			e.b.sealer.Open(PurposeCode, form.Get("code"), &g)
			forged, _ := other.Seal(PurposeCode, g, e.clock.now().Add(time.Minute))
			form.Set("code", forged)
		}, 400, "invalid_grant"},
		{"state presented as a code", func(f *flow, form url.Values) {
			var g codeGrant
			e.b.sealer.Open(PurposeCode, form.Get("code"), &g)
			asState, _ := e.b.sealer.Seal(PurposeState, g, e.clock.now().Add(time.Minute))
			form.Set("code", asState)
		}, 400, "invalid_grant"},
		{"code of another bridge", func(f *flow, form url.Values) {
			var g codeGrant
			e.b.sealer.Open(PurposeCode, form.Get("code"), &g)
			g.Bridge = "other"
			moved, _ := e.b.sealer.Seal(PurposeCode, g, e.clock.now().Add(time.Minute))
			form.Set("code", moved)
		}, 400, "invalid_grant"},
		{"no client_id", func(f *flow, form url.Values) { form.Del("client_id") }, 401, "invalid_client"},
		{"client secret", func(f *flow, form url.Values) { form.Set("client_secret", "s") }, 401, "invalid_client"},
		{"unsupported grant", func(f *flow, form url.Values) { form.Set("grant_type", "password") }, 400, "unsupported_grant_type"},
		{"no grant", func(f *flow, form url.Values) { form.Del("grant_type") }, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.newFlow(id, redirect)
			form := url.Values{"grant_type": {"authorization_code"}, "code": {f.code().Query().Get("code")},
				"redirect_uri": {redirect}, "client_id": {id}, "code_verifier": {f.verifier}}
			tt.change(f, form)
			r := f.br.postForm(e.iss+"/token", form)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if m := decodeJSON(t, r.body); m["error"] != tt.code || r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("answer %v %v, want %s", m, r.header, tt.code)
			}
		})
	}
}

// TestCodeReplay: a code is redeemed once. On the replica that redeemed it the replay cache refuses it; on
// another replica (same keys, no shared memory) the IdP refuses its own code's second use.
func TestCodeReplay(t *testing.T) {
	e := newEnv(t, envOptions{})
	redirect := "http://127.0.0.1:5555/cb"
	f := e.newFlow(e.register(redirect), redirect)
	code := f.code().Query().Get("code")
	if r := f.redeem(code); r.status != http.StatusOK {
		t.Fatalf("first redemption: %d %s", r.status, r.body)
	}
	r := f.redeem(code)
	if m := decodeJSON(t, r.body); r.status != http.StatusBadRequest || m["error"] != "invalid_grant" || m["error_description"] != "the code was already used" {
		t.Errorf("replay on the same replica: %d %v", r.status, m)
	}
	replica, err := New(e.cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), WithClock(e.clock.now))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	replica.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(e.iss)
	r = f.br.postForm(srv.URL+u.Path+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {redirect}, "client_id": {f.clientID}, "code_verifier": {f.verifier}})
	if m := decodeJSON(t, r.body); r.status != http.StatusBadRequest || m["error"] != "invalid_grant" || !strings.Contains(m["error_description"].(string), "identity provider") {
		t.Errorf("replay on another replica: %d %v", r.status, m)
	}
	// The other replica redeems a fresh code: it serves any step.
	f2 := e.newFlow(f.clientID, redirect)
	r = f2.br.postForm(srv.URL+u.Path+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {f2.code().Query().Get("code")},
		"redirect_uri": {redirect}, "client_id": {f.clientID}, "code_verifier": {f2.verifier}})
	if r.status != http.StatusOK {
		t.Errorf("fresh code on another replica: %d %s", r.status, r.body)
	}
}

func TestRefreshRefusals(t *testing.T) {
	e := newEnv(t, envOptions{})
	redirect := "http://127.0.0.1:5555/cb"
	id := e.register(redirect)
	otherID := e.register(redirect)
	f := e.newFlow(id, redirect)
	tok := decodeJSON(t, f.redeem(f.code().Query().Get("code")).body)
	rt, _ := tok["refresh_token"].(string)
	var g refreshGrant
	if err := e.b.sealer.Open(PurposeRefresh, rt, &g); err != nil {
		t.Fatal(err)
	}
	g.Bridge = "other"
	moved, _ := e.b.sealer.Seal(PurposeRefresh, g, time.Time{})
	tests := []struct {
		name string
		form url.Values
		code string
	}{
		{"refresh token of another bridge", url.Values{"refresh_token": {moved}, "client_id": {id}}, "invalid_grant"},
		{"another client's refresh token", url.Values{"refresh_token": {rt}, "client_id": {otherID}}, "invalid_grant"},
		{"the IdP's refresh token unsealed", url.Values{"refresh_token": {g.IdPToken}, "client_id": {id}}, "invalid_grant"},
		{"scope beyond the grant", url.Values{"refresh_token": {rt}, "client_id": {id}, "scope": {"tools:admin"}}, "invalid_scope"},
		{"unknown resource", url.Values{"refresh_token": {rt}, "client_id": {id}, "resource": {"https://other.example/mcp"}}, "invalid_target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.form.Set("grant_type", "refresh_token")
			r := f.br.postForm(e.iss+"/token", tt.form)
			if m := decodeJSON(t, r.body); r.status != http.StatusBadRequest || m["error"] != tt.code {
				t.Errorf("%d %v, want %s", r.status, m, tt.code)
			}
		})
	}
}

// TestTokenIdPErrors: the IdP's refusals reach the client as RFC 6749 JSON errors; an IdP that is down is
// temporarily_unavailable.
func TestTokenIdPErrors(t *testing.T) {
	e := newEnv(t, envOptions{})
	redirect := "http://127.0.0.1:5555/cb"
	id := e.register(redirect)
	f := e.newFlow(id, redirect)
	code := f.code().Query().Get("code")
	e.idp.SetDown(true)
	r := f.redeem(code)
	if m := decodeJSON(t, r.body); r.status != http.StatusServiceUnavailable || m["error"] != "temporarily_unavailable" {
		t.Errorf("IdP down: %d %v", r.status, m)
	}
	e.idp.SetDown(false)
	if !strings.Contains(e.logs.String(), `"idp_error":"temporarily_unavailable"`) {
		t.Errorf("IdP error not logged: %s", e.logs.String())
	}
	e.idpSrv.Close()
	f2 := e.newFlow(id, redirect)
	var g codeGrant
	g.Bridge, g.Client, g.RedirectURI, g.Challenge = "default", digest(id), redirect, f2.params.Get("code_challenge")
	sealed, _ := e.b.sealer.Seal(PurposeCode, g, e.clock.now().Add(time.Minute))
	r = f2.redeem(sealed)
	if m := decodeJSON(t, r.body); r.status != http.StatusServiceUnavailable || m["error"] != "temporarily_unavailable" {
		t.Errorf("IdP unreachable: %d %v", r.status, m)
	}
}

func TestReplayCacheBounded(t *testing.T) {
	c := newReplayCache(2)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	k := func(b byte) (a [32]byte) { a[0] = b; return }
	if !c.first(k(1), now.Add(time.Second)) || c.first(k(1), now.Add(time.Second)) {
		t.Fatal("replay not caught")
	}
	c.first(k(2), now.Add(time.Minute))
	if c.first(k(3), now.Add(time.Minute)) {
		t.Error("full cache accepted a new code")
	}
	now = now.Add(2 * time.Second) // k(1) expired: room again
	if !c.first(k(3), now.Add(time.Minute)) {
		t.Error("expired entry not evicted")
	}
}

// TestTokenIdPRefusesBridgeClient: the IdP refusing the bridge's own client is the operator's problem: the
// client gets server_error and the log an error line with the IdP's code.
func TestTokenIdPRefusesBridgeClient(t *testing.T) {
	e := newEnv(t, envOptions{idpHandler: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/token") {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				w.Write([]byte(`{"error":"invalid_client","error_description":"client authentication failed"}`))
				return
			}
			h.ServeHTTP(w, r)
		})
	}})
	redirect := "http://127.0.0.1:5555/cb"
	f := e.newFlow(e.register(redirect), redirect)
	r := f.redeem(f.code().Query().Get("code"))
	if m := decodeJSON(t, r.body); r.status != http.StatusBadGateway || m["error"] != "server_error" {
		t.Errorf("%d %v", r.status, m)
	}
	if !strings.Contains(e.logs.String(), `"level":"ERROR","msg":"bridge decision","component":"bridge","event":"token","outcome":"error"`) ||
		!strings.Contains(e.logs.String(), `"idp_error":"invalid_client"`) {
		t.Errorf("log: %s", e.logs.String())
	}
}

// TestReplayCacheConcurrent: of many concurrent redemptions of one code, exactly one passes.
func TestReplayCacheConcurrent(t *testing.T) {
	c := newReplayCache(1024)
	key := [32]byte{7}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if c.first(key, time.Now().Add(time.Minute)) {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d redemptions passed, want 1", wins.Load())
	}
}

// TestRefreshLogsClient: a refresh's decision line names the client the refresh token was issued to, as the
// other decisions of its flow do.
func TestRefreshLogsClient(t *testing.T) {
	e := newEnv(t, envOptions{})
	redirect := "http://127.0.0.1:5555/cb"
	id := e.register(redirect)
	f := e.newFlow(id, redirect)
	tok := decodeJSON(t, f.redeem(f.code().Query().Get("code")).body)
	rt, _ := tok["refresh_token"].(string)
	r := f.br.postForm(e.iss+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {id}})
	if r.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	var line string
	for l := range strings.SplitSeq(e.logs.String(), "\n") {
		if strings.Contains(l, `"event":"refresh"`) {
			line = l
		}
	}
	if line == "" || !strings.Contains(line, `"client":"`) {
		t.Fatalf("refresh decision without the client: %q", line)
	}
}

// TestTokenRedirectURIOptionalWhenOmitted checks RFC 6749 section 4.1.3: a client that named no
// redirect_uri at the authorization endpoint (its only registered one was used) may leave it out of the
// token request; if it names one, it must still be that one; a client that named one must repeat it.
func TestTokenRedirectURIOptionalWhenOmitted(t *testing.T) {
	e := newEnv(t, envOptions{})
	redirect := "http://127.0.0.1:5555/cb"
	id := e.register(redirect)
	redeem := func(f *flow, redirectURI string, send bool) response {
		code := f.code().Query().Get("code")
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {f.clientID}, "code_verifier": {f.verifier}}
		if send {
			form.Set("redirect_uri", redirectURI)
		}
		return f.br.postForm(e.iss+"/token", form)
	}
	tests := []struct {
		name        string
		omitted     bool // at the authorization endpoint
		send        bool // at the token endpoint
		redirectURI string
		status      int
	}{
		{"omitted both times", true, false, "", http.StatusOK},
		{"omitted, then the same", true, true, redirect, http.StatusOK},
		{"omitted, then another", true, true, "http://127.0.0.1:5555/other", http.StatusBadRequest},
		{"named, then omitted", false, false, "", http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := e.newFlow(id, redirect)
			if tc.omitted {
				f.params.Del("redirect_uri")
			}
			if r := redeem(f, tc.redirectURI, tc.send); r.status != tc.status {
				t.Errorf("%d %s, want %d", r.status, r.body, tc.status)
			}
		})
	}
}
