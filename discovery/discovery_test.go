package discovery

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
)

// TestDocument checks the fetch schedule (first use, retry spacing after a failure, refresh interval, a failed
// refetch keeping the document) and the documents refused: another issuer's, one without an endpoint the
// caller needs, one naming a plain http endpoint on another host.
func TestDocument(t *testing.T) {
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
	d := New(config.Issuer{DiscoveryURL: srv.URL + "/.well-known/openid-configuration", Issuer: srv.URL, RefreshInterval: config.Duration(time.Hour)},
		srv.Client(), func() time.Time { return now }, AuthorizationEndpoint, TokenEndpoint)

	if _, err := d.Get(t.Context()); err == nil {
		t.Fatal("IdP down: no error")
	}
	doc.Store(&good)
	if _, err := d.Get(t.Context()); err == nil {
		t.Fatal("a failure is retried at once")
	}
	now = now.Add(RetryAfter)
	m, err := d.Get(t.Context())
	if err != nil || !m.IssParameterSupported || m.TokenEndpoint != srv.URL+"/token" {
		t.Fatalf("get = %+v, %v", m, err)
	}
	n := hits.Load()
	d.Get(t.Context())
	if hits.Load() != n {
		t.Error("fetched again within the refresh interval")
	}
	// A failed refetch keeps the document held.
	doc.Store(nil)
	now = now.Add(2 * time.Hour)
	if m2, err := d.Get(t.Context()); err != nil || m2 != m {
		t.Errorf("failed refetch: %v %v", m2, err)
	}

	for name, bad := range map[string]map[string]any{
		"another issuer":           {"issuer": "https://evil.example", "authorization_endpoint": srv.URL + "/a", "token_endpoint": srv.URL + "/t"},
		"no token endpoint":        {"issuer": srv.URL, "authorization_endpoint": srv.URL + "/a"},
		"plain http to a far host": {"issuer": srv.URL, "authorization_endpoint": "http://idp.example/a", "token_endpoint": srv.URL + "/t"},
	} {
		t.Run(name, func(t *testing.T) {
			doc.Store(&bad)
			d := New(config.Issuer{DiscoveryURL: srv.URL, Issuer: srv.URL, RefreshInterval: config.Duration(time.Hour)}, srv.Client(), time.Now, AuthorizationEndpoint, TokenEndpoint)
			if _, err := d.Get(t.Context()); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestDocumentNeeds checks that only the endpoints a caller names must be usable, and that a caller whose
// context has ended still gets the document fetched (for the callers after it).
func TestDocumentNeeds(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": srv.URL, "token_endpoint": srv.URL + "/token"})
	}))
	t.Cleanup(srv.Close)
	is := config.Issuer{DiscoveryURL: srv.URL, Issuer: srv.URL, RefreshInterval: config.Duration(time.Hour)}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if m, err := New(is, srv.Client(), nil, TokenEndpoint).Get(ctx); err != nil || m.TokenEndpoint != srv.URL+"/token" {
		t.Errorf("token endpoint only, caller gone: %+v, %v", m, err)
	}
	if _, err := New(is, srv.Client(), nil, TokenEndpoint, AuthorizationEndpoint).Get(t.Context()); err == nil || !strings.Contains(err.Error(), "no usable authorization_endpoint") {
		t.Errorf("authorization endpoint needed: %v", err)
	}
}
