package bridge

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// toIdP runs authorize and consent and returns the state the bridge sent to the IdP.
func (f *flow) toIdP() url.Values {
	f.e.t.Helper()
	r := f.consent(f.authorize(), "allow")
	if r.status != http.StatusFound {
		f.e.t.Fatalf("consent: %d %s", r.status, r.body)
	}
	return r.location.Query()
}

func TestCallbackRefusals(t *testing.T) {
	e := newEnv(t, envOptions{})
	redirect := "http://127.0.0.1:5555/cb"
	id := e.register(redirect)
	other, _ := NewSealer([][]byte{testKey(9)}, e.clock.now)
	idpIss := e.idp.Issuer()
	tests := []struct {
		name   string
		query  func(f *flow, state string) url.Values
		status int    // a page; 0: a redirect to the client
		code   string // the redirected error
	}{
		{"another browser's state", func(f *flow, state string) url.Values {
			f.br = newBrowser(t)
			f.br.get(e.iss + "/authorize?" + f.params.Encode()) // this browser has a binding of its own
			return url.Values{"state": {state}, "code": {"c"}, "iss": {idpIss}}
		}, http.StatusForbidden, ""},
		{"no binding cookie", func(f *flow, state string) url.Values {
			f.br = newBrowser(t)
			return url.Values{"state": {state}, "code": {"c"}, "iss": {idpIss}}
		}, http.StatusForbidden, ""},
		{"expired state", func(f *flow, state string) url.Values {
			e.clock.add(stateTTL + time.Second)
			t.Cleanup(func() { e.clock.add(-stateTTL - time.Second) })
			return url.Values{"state": {state}, "code": {"c"}, "iss": {idpIss}}
		}, http.StatusBadRequest, ""},
		{"state sealed by another key", func(f *flow, state string) url.Values {
			var tx txn
			if err := e.b.sealer.Open(PurposeState, state, &tx); err != nil {
				t.Fatal(err)
			}
			forged, _ := other.Seal(PurposeState, tx, e.clock.now().Add(time.Minute))
			return url.Values{"state": {forged}, "code": {"c"}, "iss": {idpIss}}
		}, http.StatusBadRequest, ""},
		{"consent transaction presented as state", func(f *flow, state string) url.Values {
			var tx txn
			e.b.sealer.Open(PurposeState, state, &tx)
			asConsent, _ := e.b.sealer.Seal(PurposeConsent, tx, e.clock.now().Add(time.Minute))
			return url.Values{"state": {asConsent}, "code": {"c"}, "iss": {idpIss}}
		}, http.StatusBadRequest, ""},
		{"state of another bridge", func(f *flow, state string) url.Values {
			var tx txn
			e.b.sealer.Open(PurposeState, state, &tx)
			tx.Bridge = "other"
			moved, _ := e.b.sealer.Seal(PurposeState, tx, e.clock.now().Add(time.Minute))
			return url.Values{"state": {moved}, "code": {"c"}, "iss": {idpIss}}
		}, http.StatusBadRequest, ""},
		{"no state", func(*flow, string) url.Values { return url.Values{"code": {"c"}, "iss": {idpIss}} }, http.StatusBadRequest, ""},
		{"iss of another IdP", func(_ *flow, state string) url.Values {
			return url.Values{"state": {state}, "code": {"c"}, "iss": {"https://evil.example"}}
		}, 0, "server_error"},
		{"iss missing though advertised", func(_ *flow, state string) url.Values {
			return url.Values{"state": {state}, "code": {"c"}}
		}, 0, "server_error"},
		{"two iss", func(_ *flow, state string) url.Values {
			return url.Values{"state": {state}, "code": {"c"}, "iss": {idpIss, idpIss}}
		}, 0, "server_error"},
		{"IdP error relayed", func(_ *flow, state string) url.Values {
			return url.Values{"state": {state}, "error": {"access_denied"}, "error_description": {"user said no"}, "iss": {idpIss}}
		}, 0, "access_denied"},
		{"unknown IdP error", func(_ *flow, state string) url.Values {
			return url.Values{"state": {state}, "error": {"weird<b>"}, "iss": {idpIss}}
		}, 0, "server_error"},
		{"no code", func(_ *flow, state string) url.Values { return url.Values{"state": {state}, "iss": {idpIss}} }, 0, "server_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := e.newFlow(id, redirect)
			state := f.toIdP().Get("state")
			r := f.br.get(e.iss + "/callback?" + tt.query(f, state).Encode())
			if tt.status != 0 {
				if r.status != tt.status || r.location != nil {
					t.Fatalf("status %d location %v, want a %d page", r.status, r.location, tt.status)
				}
				return
			}
			if r.status != http.StatusFound || !strings.HasPrefix(r.location.String(), redirect) {
				t.Fatalf("want a redirect to the client, got %d %v", r.status, r.location)
			}
			q := r.location.Query()
			if q.Get("error") != tt.code || q.Get("state") != "client-state" || q.Get("iss") != e.iss || q.Get("code") != "" {
				t.Errorf("redirect %v, want error %s", r.location, tt.code)
			}
		})
	}
}

// TestCallbackIssMismatchFromIdP: the IdP's answer itself carries another issuer (a mix-up).
func TestCallbackIssMismatchFromIdP(t *testing.T) {
	e := newEnv(t, envOptions{idpHandler: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(locationRewriter{w, func(u *url.URL) {
				q := u.Query()
				q.Set("iss", "https://attacker.example")
				u.RawQuery = q.Encode()
			}}, r)
		})
	}})
	redirect := "http://127.0.0.1:5555/cb"
	f := e.newFlow(e.register(redirect), redirect)
	cb := f.toCallback(f.consent(f.authorize(), "allow"))
	r := f.br.get(cb.String())
	if r.status != http.StatusFound || r.location.Query().Get("error") != "server_error" || r.location.Query().Get("code") != "" {
		t.Fatalf("mix-up not refused: %d %v", r.status, r.location)
	}
}

// locationRewriter changes the Location header of a redirect before it is written.
type locationRewriter struct {
	http.ResponseWriter
	change func(*url.URL)
}

func (w locationRewriter) WriteHeader(status int) {
	if l := w.Header().Get("Location"); l != "" {
		if u, err := url.Parse(l); err == nil {
			w.change(u)
			w.Header().Set("Location", u.String())
		}
	}
	w.ResponseWriter.WriteHeader(status)
}
