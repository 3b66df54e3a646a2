package bridge

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
)

// cimdServer serves a Client ID Metadata Document at /client.json on 127.0.0.1.
type cimdServer struct {
	srv   *httptest.Server
	hits  atomic.Int32
	serve atomic.Pointer[http.HandlerFunc]
}

func newCIMDServer(t *testing.T) *cimdServer {
	c := &cimdServer{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.hits.Add(1)
		(*c.serve.Load())(w, r)
	}))
	t.Cleanup(c.srv.Close)
	c.set(c.document(nil, ""))
	return c
}

func (c *cimdServer) id() string { return c.srv.URL + "/client.json" }

func (c *cimdServer) set(h http.HandlerFunc) { c.serve.Store(&h) }

// document serves a valid document changed by change, with the Cache-Control header cc.
func (c *cimdServer) document(change func(map[string]any), cc string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		doc := map[string]any{"client_id": c.id(), "client_name": "CIMD client", "redirect_uris": []string{"http://127.0.0.1/callback"},
			"grant_types": []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "none"}
		if change != nil {
			change(doc)
		}
		if cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(doc)
	}
}

// TestFullFlowCIMD runs a client identified by its metadata document through the whole flow.
func TestFullFlowCIMD(t *testing.T) {
	e := newEnv(t, envOptions{})
	doc := newCIMDServer(t)
	f := e.newFlow(doc.id(), "http://127.0.0.1:40001/callback")
	page := f.authorize()
	if !strings.Contains(page.body, "CIMD client") || !strings.Contains(page.body, doc.id()) {
		t.Errorf("consent page does not name the CIMD client: %s", page.body)
	}
	cb := f.toCallback(f.consent(page, "allow"))
	r := f.br.get(cb.String())
	r = f.redeem(r.location.Query().Get("code"))
	if r.status != http.StatusOK {
		t.Fatalf("token: %d %s", r.status, r.body)
	}
	if !strings.Contains(e.logs.String(), `"client":"`+doc.id()+`"`) {
		t.Errorf("log does not name the client by its URL")
	}
	// A redirect the document does not list is refused on a page.
	f2 := e.newFlow(doc.id(), "http://127.0.0.1:40001/other")
	if r := f2.authorize(); r.status != http.StatusBadRequest || r.location != nil {
		t.Errorf("unlisted redirect: %d %v", r.status, r.location)
	}
}

func testFetcher(cfg config.CIMD) *cimdFetcher {
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 16384
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = config.Duration(2 * time.Second)
	}
	return newCIMDFetcher(cfg)
}

// TestCIMDAddressRefusals: documents on addresses that are not public are never fetched, whether the client id
// names the address or a host name resolves to it.
func TestCIMDAddressRefusals(t *testing.T) {
	f := testFetcher(config.CIMD{})
	f.lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "rebind.test":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		case "mapped.test":
			return []netip.Addr{netip.MustParseAddr("::ffff:10.1.2.3")}, nil
		case "nat64.test":
			return []netip.Addr{netip.MustParseAddr("64:ff9b::a00:1")}, nil
		}
		return nil, fmt.Errorf("no such host %s", host)
	}
	for _, id := range []string{
		"https://10.0.0.1/client.json",
		"https://169.254.169.254/latest/meta-data",
		"https://[::1]/client.json",
		"https://127.0.0.1:1/client.json",
		"https://192.168.1.1/client.json",
		"https://100.64.0.1/client.json",
		"https://[fd00::1]/client.json",
		"https://[fe80::1]/client.json",
		"https://0.0.0.0/client.json",
		"https://rebind.test/client.json",
		"https://mapped.test/client.json",
		"https://nat64.test/client.json",
	} {
		t.Run(id, func(t *testing.T) {
			_, err := f.get(t.Context(), id)
			if !errors.Is(err, errPrivateAddress) {
				t.Fatalf("get = %v, want errPrivateAddress", err)
			}
		})
	}
	// The dial-time check stands on its own too.
	if err := f.control("tcp4", "10.0.0.1:443", nil); !errors.Is(err, errPrivateAddress) {
		t.Errorf("control = %v", err)
	}
	if err := f.allowed(netip.MustParseAddr("8.8.8.8")); err != nil {
		t.Errorf("public address refused: %v", err)
	}
}

func TestCIMDURLRefusals(t *testing.T) {
	f := testFetcher(config.CIMD{AllowHTTPLoopback: true})
	strict := testFetcher(config.CIMD{})
	tests := []struct {
		name string
		f    *cimdFetcher
		id   string
	}{
		{"http to a remote host", f, "http://app.example/client.json"},
		{"http to loopback when not allowed", strict, "http://127.0.0.1:1/client.json"},
		{"no path", f, "https://app.example"},
		{"root path", f, "https://app.example/"},
		{"fragment", f, "https://app.example/c.json#x"},
		{"user info", f, "https://u:p@app.example/c.json"},
		{"dot segment", f, "https://app.example/a/../c.json"},
		{"too long", f, "https://app.example/" + strings.Repeat("a", 2100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.f.checkURL(tt.id); !errors.Is(err, errCIMD) {
				t.Fatalf("checkURL(%q) = %v, want a refusal", tt.id, err)
			}
		})
	}
}

// TestCIMDDocumentRefusals: what is served at the URL must be a small JSON client metadata object, served at
// once, naming itself.
func TestCIMDDocumentRefusals(t *testing.T) {
	doc := newCIMDServer(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	tests := []struct {
		name string
		h    http.HandlerFunc
		want string
	}{
		{"client_id mismatch", doc.document(func(m map[string]any) { m["client_id"] = "https://other.example/client.json" }, ""), "not the URL"},
		{"no redirect_uris", doc.document(func(m map[string]any) { delete(m, "redirect_uris") }, ""), "redirect_uris"},
		{"confidential client", doc.document(func(m map[string]any) { m["token_endpoint_auth_method"] = "private_key_jwt" }, ""), "public clients only"},
		{"oversized with length", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"client_name":"` + strings.Repeat("a", 20000) + `"}`))
		}, "larger than"},
		{"oversized streamed", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			for range 40 {
				w.Write([]byte(strings.Repeat(" ", 1000)))
				w.(http.Flusher).Flush()
			}
		}, "larger than"},
		{"slow", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, "not fetched within"},
		{"slow body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"client_id":`))
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, "not fetched within"},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data", http.StatusFound)
		}, "status 302"},
		{"not JSON", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html>"))
		}, "not JSON"},
		{"JSON array", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte("[]"))
		}, "not a JSON client metadata object"},
		{"not found", http.NotFound, "status 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := testFetcher(config.CIMD{AllowPrivateNetworks: true, AllowHTTPLoopback: true, Timeout: config.Duration(300 * time.Millisecond)})
			doc.set(tt.h)
			start := time.Now()
			_, err := f.get(t.Context(), doc.id())
			if !errors.Is(err, errCIMD) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("get = %v, want %q", err, tt.want)
			}
			if time.Since(start) > 3*time.Second {
				t.Errorf("took %v: the time bound did not hold", time.Since(start))
			}
		})
	}
}

func TestCIMDCache(t *testing.T) {
	doc := newCIMDServer(t)
	now := time.Unix(1_800_000_000, 0)
	f := testFetcher(config.CIMD{AllowPrivateNetworks: true, AllowHTTPLoopback: true})
	f.now = func() time.Time { return now }
	get := func() {
		t.Helper()
		if _, err := f.get(t.Context(), doc.id()); err != nil {
			t.Fatal(err)
		}
	}
	doc.set(doc.document(nil, "max-age=120"))
	get()
	get()
	if n := doc.hits.Load(); n != 1 {
		t.Errorf("fetched %d times within max-age, want 1", n)
	}
	now = now.Add(121 * time.Second)
	get()
	if n := doc.hits.Load(); n != 2 {
		t.Errorf("fetched %d times after max-age, want 2", n)
	}
	doc.set(doc.document(nil, "no-store"))
	now = now.Add(time.Hour)
	get()
	get()
	if n := doc.hits.Load(); n != 4 {
		t.Errorf("no-store: fetched %d times, want 4", n)
	}
	for cc, want := range map[string]time.Duration{"": cimdDefaultTTL, "max-age=1": cimdMinTTL, "max-age=999999": cimdMaxTTL, "public, max-age=600": 10 * time.Minute, "no-cache": 0} {
		if got := cacheTTL(cc); got != want {
			t.Errorf("cacheTTL(%q) = %v, want %v", cc, got, want)
		}
	}
}

// TestAuthorizeCIMDResolvedPrivate: at the authorization endpoint, a client id whose host resolves to a
// loopback address is refused on a page, never fetched.
func TestAuthorizeCIMDResolvedPrivate(t *testing.T) {
	doc := newCIMDServer(t)
	_, port, _ := strings.Cut(strings.TrimPrefix(doc.srv.URL, "http://"), ":")
	e := newEnv(t, envOptions{cimdYAML: "{allow_http_loopback: true, timeout: 2s}", bridgeOpts: []Option{WithCIMDResolver(
		func(context.Context, string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		})}})
	id := "https://client.example:" + port + "/client.json"
	r := e.newFlow(id, "http://127.0.0.1:40001/callback").authorize()
	if r.status != http.StatusBadRequest || r.location != nil || !strings.Contains(r.body, "not public") {
		t.Fatalf("%d %v %s", r.status, r.location, r.body)
	}
	if doc.hits.Load() != 0 {
		t.Error("the document was fetched")
	}
}

// TestCIMDOverTLS: an https document is fetched with the configured roots, and refused with a certificate
// they do not vouch for.
func TestCIMDOverTLS(t *testing.T) {
	var id string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"client_id": id, "client_name": "TLS client", "redirect_uris": []string{"http://127.0.0.1/cb"}})
	}))
	t.Cleanup(srv.Close)
	id = srv.URL + "/client.json"
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	for _, tt := range []struct {
		name string
		opts []Option
		ok   bool
	}{
		{"trusted root", []Option{WithCIMDRootCAs(pool)}, true},
		{"system roots", nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{cimdYAML: "{allow_private_networks: true, timeout: 2s}", bridgeOpts: tt.opts})
			c, err := e.b.cimd.get(t.Context(), id)
			if tt.ok && (err != nil || c.name != "TLS client") {
				t.Fatalf("get = %+v, %v", c, err)
			}
			if !tt.ok && !errors.Is(err, errCIMD) {
				t.Fatalf("get = %v, want a refusal", err)
			}
		})
	}
}

// TestCIMDSharedFetch: concurrent requests for one new document share one fetch, and one that gives up
// does not end it for the others.
func TestCIMDSharedFetch(t *testing.T) {
	doc := newCIMDServer(t)
	slow := doc.document(nil, "")
	doc.set(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		slow(w, r)
	})
	f := testFetcher(config.CIMD{AllowPrivateNetworks: true, AllowHTTPLoopback: true})
	impatient, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := f.get(impatient, doc.id()); !errors.Is(err, errCIMD) {
		t.Fatalf("cancelled request: %v", err)
	}
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 8 {
		wg.Go(func() {
			if _, err := f.get(t.Context(), doc.id()); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 || doc.hits.Load() > 2 {
		t.Errorf("%d failed, %d fetches for 9 requests", failed.Load(), doc.hits.Load())
	}
}
