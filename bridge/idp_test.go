package bridge

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
)

func TestIDPDiscovery(t *testing.T) {
	var doc atomic.Pointer[map[string]any]
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		d := doc.Load()
		if d == nil {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(*d)
	}))
	t.Cleanup(srv.Close)
	good := map[string]any{"issuer": srv.URL, "authorization_endpoint": srv.URL + "/authorize", "token_endpoint": srv.URL + "/token",
		"authorization_response_iss_parameter_supported": true}
	now := time.Unix(1_800_000_000, 0)
	d := newIDPDiscovery(config.Issuer{DiscoveryURL: srv.URL + "/.well-known/openid-configuration", Issuer: srv.URL, RefreshInterval: config.Duration(time.Hour)},
		srv.Client(), func() time.Time { return now })

	if _, err := d.get(t.Context()); err == nil {
		t.Fatal("IdP down: no error")
	}
	doc.Store(&good)
	if _, err := d.get(t.Context()); err == nil {
		t.Fatal("a failure is retried at once")
	}
	now = now.Add(idpRetryAfter)
	m, err := d.get(t.Context())
	if err != nil || !m.IssParameterSupported || m.TokenEndpoint != srv.URL+"/token" {
		t.Fatalf("get = %+v, %v", m, err)
	}
	n := hits.Load()
	d.get(t.Context())
	if hits.Load() != n {
		t.Error("fetched again within the refresh interval")
	}
	// A failed refetch keeps the document held.
	doc.Store(nil)
	now = now.Add(2 * time.Hour)
	if m2, err := d.get(t.Context()); err != nil || m2 != m {
		t.Errorf("failed refetch: %v %v", m2, err)
	}

	for name, bad := range map[string]map[string]any{
		"another issuer":           {"issuer": "https://evil.example", "authorization_endpoint": srv.URL + "/a", "token_endpoint": srv.URL + "/t"},
		"no token endpoint":        {"issuer": srv.URL, "authorization_endpoint": srv.URL + "/a"},
		"plain http to a far host": {"issuer": srv.URL, "authorization_endpoint": "http://idp.example/a", "token_endpoint": srv.URL + "/t"},
	} {
		t.Run(name, func(t *testing.T) {
			doc.Store(&bad)
			d := newIDPDiscovery(config.Issuer{DiscoveryURL: srv.URL, Issuer: srv.URL, RefreshInterval: config.Duration(time.Hour)}, srv.Client(), time.Now)
			if _, err := d.get(t.Context()); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestIDPUnavailable: without the IdP's discovery document the client gets temporarily_unavailable.
func TestIDPUnavailable(t *testing.T) {
	e := newEnv(t, envOptions{})
	redirect := "http://127.0.0.1:5555/cb"
	f := e.newFlow(e.register(redirect), redirect)
	e.idp.SetDown(true)
	r := f.authorize()
	if r.status != http.StatusFound || r.location.Query().Get("error") != "temporarily_unavailable" {
		t.Fatalf("%d %v", r.status, r.location)
	}
	if !strings.Contains(e.logs.String(), `"outcome":"error"`) {
		t.Error("not logged as an error")
	}
}
