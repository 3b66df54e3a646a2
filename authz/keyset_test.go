package authz_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/test/idp"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// fakeIdP is an issuer on 127.0.0.1 whose discovery document and JWKS endpoints a test programs: the
// discovery document names the jwks_uri set last (default URL+"/jwks"), and each path answers with its
// handler (default 404). It counts the requests to each path.
type fakeIdP struct {
	URL    string
	minter *idp.Provider // mints tokens with iss URL
	srv    *httptest.Server
	stop   chan struct{} // closed before the server closes: handlers that hang return

	mu       sync.Mutex
	jwksURI  string
	discover http.HandlerFunc // replaces the discovery document when set
	routes   map[string]http.HandlerFunc
	hits     map[string]int
}

func startFakeIdP(t *testing.T) *fakeIdP {
	t.Helper()
	f := &fakeIdP{stop: make(chan struct{}), routes: map[string]http.HandlerFunc{}, hits: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	f.jwksURI = f.URL + "/jwks"
	var err error
	if f.minter, err = idp.New(f.URL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(f.stop); f.srv.Close() })
	return f
}

func (f *fakeIdP) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.hits[r.URL.Path]++
	h, disc, uri := f.routes[r.URL.Path], f.discover, f.jwksURI
	f.mu.Unlock()
	switch {
	case r.URL.Path == "/.well-known/openid-configuration" && disc != nil:
		disc(w, r)
	case r.URL.Path == "/.well-known/openid-configuration":
		json.NewEncoder(w).Encode(map[string]string{"issuer": f.URL, "jwks_uri": uri})
	case h != nil:
		h(w, r)
	default:
		http.NotFound(w, r)
	}
}

// handle makes path answer with h; nil makes it 404.
func (f *fakeIdP) handle(path string, h http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[path] = h
}

// setJWKSURI makes the discovery document name uri.
func (f *fakeIdP) setJWKSURI(uri string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jwksURI = uri
}

// setDiscovery makes the discovery endpoint answer with h (nil: the default document).
func (f *fakeIdP) setDiscovery(h http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.discover = h
}

func (f *fakeIdP) hitCount(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[path]
}

// issuer is the configuration of f's issuer, RS256 and ES256 allowed.
func (f *fakeIdP) issuer(minRefresh, refresh time.Duration) config.Issuer {
	return config.Issuer{
		DiscoveryURL: f.URL + "/.well-known/openid-configuration", Issuer: f.URL,
		Algorithms:      []string{"RS256", "ES256"},
		RefreshInterval: config.Duration(refresh), MinRefreshInterval: config.Duration(minRefresh),
	}
}

// mint signs a token for keysResource with key (its kid in the header).
func (f *fakeIdP) mint(t testing.TB, key jwk.Key, opts ...idp.MintOption) string {
	t.Helper()
	alg := jwa.RS256
	if key.KeyType() == jwa.EC {
		alg = jwa.ES256
	}
	tok, err := f.minter.Mint(map[string]any{"sub": "alice", "aud": keysResource, "client_id": "mcp-client"}, append([]idp.MintOption{idp.WithKey(alg, key)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

const keysResource = "https://mcp.example.com/mcp"

// serveJWKS answers with a JWKS whose members are the given keys (their public parts) or raw JSON members.
func serveJWKS(t testing.TB, members ...any) http.HandlerFunc {
	t.Helper()
	body := jwksBody(t, members...)
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(body)
	}
}

func jwksBody(t testing.TB, members ...any) []byte {
	t.Helper()
	var raw []json.RawMessage
	for _, m := range members {
		switch m := m.(type) {
		case jwk.Key:
			pub, err := m.PublicKey()
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(pub)
			if err != nil {
				t.Fatal(err)
			}
			raw = append(raw, b)
		case string:
			raw = append(raw, json.RawMessage(m))
		default:
			t.Fatalf("jwksBody: %T", m)
		}
	}
	b, err := json.Marshal(map[string]any{"keys": raw})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fetchLog records what a key set's FetchObserver is told.
type fetchLog struct {
	mu      sync.Mutex
	fetches int
	errs    []error
	keys    int // of the last fetch
	skipped int // of the last fetch
}

func (l *fetchLog) observe(_ string, err error, keys, skipped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fetches++
	if err != nil {
		l.errs = append(l.errs, err)
	}
	l.keys, l.skipped = keys, skipped
}

func (l *fetchLog) last() (fetches, keys, skipped int, errs []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fetches, l.keys, l.skipped, append([]error(nil), l.errs...)
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// keysEnv is a key set of a fakeIdP and a verifier (without the token cache) on it.
type keysEnv struct {
	idp      *fakeIdP
	keySet   *authz.KeySet
	verifier *authz.Verifier
	fetches  *fetchLog
	log      *syncBuffer
}

// newKeysEnv builds the key set and verifier of f's issuer; nothing is fetched yet.
func newKeysEnv(t testing.TB, f *fakeIdP, is config.Issuer, client *http.Client, opts ...authz.KeySetOption) *keysEnv {
	t.Helper()
	e := &keysEnv{idp: f, fetches: &fetchLog{}, log: &syncBuffer{}}
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	e.keySet = authz.NewKeySet(is, client, slog.New(slog.NewTextHandler(e.log, nil)), nil, append(opts, authz.WithFetchObserver(e.fetches.observe))...)
	var err error
	e.verifier, err = authz.NewVerifier([]config.Issuer{is}, map[string]*authz.KeySet{is.Issuer: e.keySet}, time.Minute, time.Now, authz.WithTokenCache(-1))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// verify returns the error description of verifying tok ("" when valid), with "503: " before it when the
// failure is the key set's unavailability.
func (e *keysEnv) verify(ctx context.Context, tok string) string {
	_, err := e.verifier.Verify(ctx, tok, []string{keysResource})
	var verr *authz.Error
	errors.As(err, &verr)
	switch {
	case verr == nil:
		return ""
	case verr.Unavailable:
		return "503: " + verr.Description
	default:
		return verr.Description
	}
}

// ecKey is a new ES256 private key with kid.
func ecKey(t testing.TB, kid string) jwk.Key {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return keyOf(t, raw, kid, jwa.ES256)
}

// keyOf is raw as a jwk.Key with kid and alg.
func keyOf(t testing.TB, raw any, kid string, alg jwa.SignatureAlgorithm) jwk.Key {
	t.Helper()
	k, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	k.Set(jwk.KeyIDKey, kid)
	k.Set(jwk.AlgorithmKey, alg)
	return k
}

// privateJSON is the JWK of key with its private part: what a public key set must never hold.
func privateJSON(t testing.TB, key jwk.Key) string {
	t.Helper()
	b, err := json.Marshal(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// encJSON is the public JWK of key marked for encryption (use enc), which never verifies a signature.
func encJSON(t testing.TB, key jwk.Key) string {
	t.Helper()
	pub, err := key.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	pub.Set(jwk.KeyUsageKey, jwk.ForEncryption)
	b, err := json.Marshal(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestKeySetSkipsUnusableKeys checks that a key set with one key this service cannot use still loads, at
// start-up and on rotation: the usable keys verify, the unusable one is skipped with a warning naming its kid
// and kty (never its material) and counted; only a set with no usable key fails.
func TestKeySetSkipsUnusableKeys(t *testing.T) {
	good := rsaKey(t, "good")
	leaked := rsaKey(t, "leaked")
	tests := []struct {
		name   string
		bad    string // the unusable JWKS member
		logs   string // what the warning must hold
		secret string // what it must not hold ("" : nothing to check)
	}{
		{"unknown kty (post-quantum)", `{"kty":"AKP","alg":"ML-DSA-65","kid":"pq-1","pub":"c2VjcmV0LXB1Yg"}`, `kid=pq-1 kty=AKP`, "c2VjcmV0LXB1Yg"},
		{"RSA without its exponent", `{"kty":"RSA","kid":"no-e","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}`, `kid=no-e kty=RSA`, "0vx7agoebGcQ"},
		{"EC on an unknown curve", `{"kty":"EC","kid":"odd-curve","crv":"P-192","x":"AAAA","y":"AAAA"}`, `kid=odd-curve kty=EC`, ""},
		{"bad base64 in a member", `{"kty":"OKP","kid":"bad-b64","crv":"Ed25519","x":"!!not base64!!"}`, `kid=bad-b64 kty=OKP`, "!!not base64!!"},
		{"private key published", privateJSON(t, leaked), `kid=leaked kty=RSA`, ""},
		{"symmetric key", `{"kty":"oct","kid":"hmac","k":"c3VwZXItc2VjcmV0LWhtYWMta2V5"}`, `kid=hmac kty=oct`, "c3VwZXItc2VjcmV0LWhtYWMta2V5"},
		{"encryption key", encJSON(t, rsaKey(t, "enc-1")), `kid=enc-1 kty=RSA`, ""},
		{"not an object", `42`, `kid="" kty=""`, ""},
		{"kid of another type", `{"kty":"AKP","kid":{"x":"y"}}`, `kid="(map[string]interface {})" kty=AKP`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakeIdP(t)
			f.handle("/jwks", serveJWKS(t, tc.bad, good))
			e := newKeysEnv(t, f, f.issuer(time.Millisecond, time.Hour), nil)
			if got := e.verify(context.Background(), f.mint(t, good)); got != "" {
				t.Fatalf("token of the usable key refused: %s", got)
			}
			_, keys, skipped, errs := e.fetches.last()
			if keys != 1 || skipped != 1 || len(errs) != 0 {
				t.Errorf("observer told keys %d, skipped %d, errors %v; want 1, 1, none", keys, skipped, errs)
			}
			logs := e.log.String()
			if !strings.Contains(logs, "jwks: key skipped") || !strings.Contains(logs, tc.logs) {
				t.Errorf("no warning naming %s in\n%s", tc.logs, logs)
			}
			if tc.secret != "" && strings.Contains(logs, tc.secret) {
				t.Errorf("the log holds key material %q:\n%s", tc.secret, logs)
			}
			if strings.Contains(logs, `"d"`) || strings.Contains(logs, " d=") {
				t.Errorf("the log holds a private exponent:\n%s", logs)
			}
			if tc.name == "private key published" && e.verify(context.Background(), f.mint(t, leaked)) == "" {
				t.Error("a token signed by the published private key was accepted")
			}
		})
	}
}

// TestKeySetRotationWithUnusableKey checks that a rotation whose JWKS also holds an unusable key is installed.
func TestKeySetRotationWithUnusableKey(t *testing.T) {
	old, next := rsaKey(t, "old"), ecKey(t, "next")
	f := startFakeIdP(t)
	f.handle("/jwks", serveJWKS(t, old))
	e := newKeysEnv(t, f, f.issuer(time.Millisecond, time.Hour), nil)
	if got := e.verify(context.Background(), f.mint(t, old)); got != "" {
		t.Fatalf("before rotation: %s", got)
	}
	f.handle("/jwks", serveJWKS(t, `{"kty":"AKP","alg":"ML-DSA-44","kid":"pq","pub":"AAAA"}`, next))
	time.Sleep(2 * time.Millisecond) // past min_refresh_interval
	if got := e.verify(context.Background(), f.mint(t, next)); got != "" {
		t.Fatalf("token of the rotated-in key: %q, want valid", got)
	}
	if got := e.verify(context.Background(), f.mint(t, old)); got != "unknown signing key" {
		t.Errorf("token of the rotated-out key: %q, want unknown signing key", got)
	}
}

// TestKeySetDuplicateKID checks keys that share a kid: both stay, and a token signed by either verifies,
// whichever comes first in the document; a key of nobody's under that kid is refused.
func TestKeySetDuplicateKID(t *testing.T) {
	a, b := rsaKey(t, "dup"), rsaKey(t, "dup")
	foreign := rsaKey(t, "dup")
	for _, order := range [][]any{{a, b}, {b, a}} {
		f := startFakeIdP(t)
		f.handle("/jwks", serveJWKS(t, order...))
		e := newKeysEnv(t, f, f.issuer(time.Hour, time.Hour), nil)
		if _, err := e.keySet.Keys(context.Background(), ""); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			key  jwk.Key
			want string
		}{{"first key", a, ""}, {"second key", b, ""}, {"foreign key", foreign, "signature verification failed"}} {
			if got := e.verify(context.Background(), f.mint(t, tc.key)); got != tc.want {
				t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
			}
		}
	}
}

// TestKeysSkippedMetric checks that skipped keys are counted per issuer (mcp_authz_jwks_keys_skipped_total).
func TestKeysSkippedMetric(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	tel, err := authz.NewTelemetry(authz.TelemetryConfig{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	if err != nil {
		t.Fatal(err)
	}
	f := startFakeIdP(t)
	f.handle("/jwks", serveJWKS(t, `{"kty":"AKP","kid":"pq"}`, `{"kty":"oct","k":"AAAA"}`, rsaKey(t, "good")))
	is := f.issuer(time.Hour, time.Hour)
	ks := authz.NewKeySet(is, &http.Client{Timeout: 5 * time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)), tel)
	if _, err := ks.Keys(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "mcp_authz.jwks.keys_skipped" {
				continue
			}
			sum := m.Data.(metricdata.Sum[int64])
			for _, dp := range sum.DataPoints {
				if v, _ := dp.Attributes.Value(attribute.Key("issuer")); v.AsString() == f.URL && dp.Value == 2 {
					return
				}
			}
			t.Fatalf("keys_skipped data points %+v, want 2 for %s", sum.DataPoints, f.URL)
		}
	}
	t.Fatal("no mcp_authz.jwks.keys_skipped metric")
}

// TestKeySetFetchFailures checks each way a discovery or JWKS fetch fails. At start-up the key set stays
// unloaded and tokens get 503. Once keys are loaded, a failed JWKS refetch keeps them and says so to the
// observer; a failed rediscovery falls back to the jwks_uri found before, so a rotated-in key is still found.
func TestKeySetFetchFailures(t *testing.T) {
	good, rotated := rsaKey(t, "good"), rsaKey(t, "rotated")
	tests := []struct {
		name      string
		discovery bool   // the fault is in discovery
		err       string // what the start-up error says
		fault     func(f *fakeIdP)
	}{
		{"discovery 404", true, "discovery: GET", func(f *fakeIdP) { f.setDiscovery(http.NotFound) }},
		{"discovery not JSON", true, "discovery: decode", func(f *fakeIdP) {
			f.setDiscovery(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "<html>") })
		}},
		{"discovery of another issuer", true, "is not the configured issuer", func(f *fakeIdP) {
			f.setDiscovery(func(w http.ResponseWriter, _ *http.Request) {
				json.NewEncoder(w).Encode(map[string]string{"issuer": "https://evil.example.com", "jwks_uri": f.URL + "/jwks"})
			})
		}},
		{"discovery without jwks_uri", true, "document has no jwks_uri", func(f *fakeIdP) {
			f.setDiscovery(func(w http.ResponseWriter, _ *http.Request) {
				json.NewEncoder(w).Encode(map[string]string{"issuer": f.URL})
			})
		}},
		{"discovery larger than 1 MiB", true, "document larger than", func(f *fakeIdP) {
			f.setDiscovery(func(w http.ResponseWriter, _ *http.Request) {
				fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q,"pad":"%s"}`, f.URL, f.URL+"/jwks", strings.Repeat("x", 1<<20))
			})
		}},
		{"discovery with a member of the wrong type", true, "discovery: decode", func(f *fakeIdP) {
			f.setDiscovery(func(w http.ResponseWriter, _ *http.Request) {
				fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q,"issuer":7}`, f.URL, f.URL+"/jwks")
			})
		}},
		{"jwks_uri not a URL", true, "not an absolute http(s) URL", func(f *fakeIdP) { f.setJWKSURI("http://[::1") }},
		{"jwks_uri relative", true, "not an absolute http(s) URL", func(f *fakeIdP) { f.setJWKSURI("/jwks") }},
		{"jwks_uri of another scheme", true, "not an absolute http(s) URL", func(f *fakeIdP) { f.setJWKSURI("file:///etc/passwd") }},
		{"jwks 500", false, "status 500", func(f *fakeIdP) {
			f.handle("/jwks", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
		}},
		{"jwks 503 with a key set", false, "status 503", func(f *fakeIdP) {
			body := jwksBody(t, good, rotated)
			f.handle("/jwks", func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusServiceUnavailable)
				w.Write(body)
			})
		}},
		{"jwks cut short", false, "unexpected EOF", func(f *fakeIdP) {
			body := jwksBody(t, good, rotated)
			f.handle("/jwks", func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Length", fmt.Sprint(len(body)+100))
				w.Write(body)
			})
		}},
		{"jwks with a keys member of the wrong type", false, "cannot unmarshal number", func(f *fakeIdP) {
			body := jwksBody(t, good, rotated)
			f.handle("/jwks", func(w http.ResponseWriter, _ *http.Request) {
				fmt.Fprintf(w, `%s,"keys":7}`, body[:len(body)-1])
			})
		}},
		{"jwks one byte over 1 MiB", false, "document larger than", func(f *fakeIdP) {
			body := jwksBody(t, good, rotated)
			padded := append(append(append([]byte{}, body[:len(body)-1]...), bytes.Repeat([]byte(" "), 1<<20+1-len(body))...), '}')
			f.handle("/jwks", func(w http.ResponseWriter, _ *http.Request) { w.Write(padded) })
		}},
		{"jwks connection dropped", false, "jwks: Get", func(f *fakeIdP) {
			f.handle("/jwks", func(w http.ResponseWriter, _ *http.Request) {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					conn.Close()
				}
			})
		}},
		{"jwks not JSON", false, "decode", func(f *fakeIdP) {
			f.handle("/jwks", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `{"keys":[`) })
		}},
		{"jwks without keys", false, "no usable key (0 in the document)", func(f *fakeIdP) {
			f.handle("/jwks", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `{"keys":[]}`) })
		}},
		{"jwks not a key set", false, "no usable key (0 in the document)", func(f *fakeIdP) {
			f.handle("/jwks", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `{"kty":"RSA"}`) })
		}},
		{"jwks with unusable keys only", false, "no usable key (1 in the document)", func(f *fakeIdP) { f.handle("/jwks", serveJWKS(t, `{"kty":"AKP","kid":"pq"}`)) }},
		{"jwks larger than 1 MiB", false, "document larger than", func(f *fakeIdP) {
			keys := jwksBody(t, good, rotated)
			f.handle("/jwks", func(w http.ResponseWriter, _ *http.Request) {
				fmt.Fprintf(w, `{"pad":"%s",%s`, strings.Repeat("x", 1<<20), keys[1:])
			})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name+" at start-up", func(t *testing.T) {
			f := startFakeIdP(t)
			f.handle("/jwks", serveJWKS(t, good))
			tc.fault(f)
			e := newKeysEnv(t, f, f.issuer(time.Hour, time.Hour), nil)
			if _, err := e.keySet.Keys(context.Background(), ""); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Keys: %v, want an error saying %q", err, tc.err)
			}
			if e.keySet.Ready() {
				t.Error("key set ready")
			}
			if got := e.verify(context.Background(), f.mint(t, good)); got != "503: signing keys of "+f.URL+" unavailable" {
				t.Errorf("token: %q, want 503", got)
			}
			if _, _, _, errs := e.fetches.last(); len(errs) == 0 {
				t.Error("observer told of no failure")
			}
		})
		t.Run(tc.name+" once loaded", func(t *testing.T) {
			f := startFakeIdP(t)
			f.handle("/jwks", serveJWKS(t, good))
			refresh := time.Hour
			if tc.discovery {
				refresh = time.Millisecond // every fetch asks discovery again
			}
			e := newKeysEnv(t, f, f.issuer(time.Millisecond, refresh), nil)
			if _, err := e.keySet.Keys(context.Background(), ""); err != nil {
				t.Fatal(err)
			}
			version := e.keySet.Version()
			tc.fault(f)
			time.Sleep(2 * time.Millisecond)
			if tc.discovery {
				f.handle("/jwks", serveJWKS(t, good, rotated))
				if got := e.verify(context.Background(), f.mint(t, rotated)); got != "" {
					t.Errorf("token of a key rotated in while discovery fails: %q, want valid", got)
				}
				if logs := e.log.String(); !strings.Contains(logs, "discovery failed, using the jwks_uri found earlier") {
					t.Errorf("no warning of the failed discovery in\n%s", logs)
				}
				return
			}
			if got := e.verify(context.Background(), f.mint(t, rotated)); got != "unknown signing key" {
				t.Errorf("token of an unknown kid: %q, want unknown signing key", got)
			}
			if fetches, _, _, errs := e.fetches.last(); fetches != 2 || len(errs) != 1 {
				t.Errorf("observer told of %d fetches, failures %v; want 2, one failure", fetches, errs)
			}
			if !e.keySet.Version().Equal(version) {
				t.Error("key set replaced by a failed fetch")
			}
			if got := e.verify(context.Background(), f.mint(t, good)); got != "" {
				t.Errorf("token of the held key: %q, want valid", got)
			}
		})
	}
}

// TestUnknownKIDRateLimited checks that tokens with unknown kids refetch the key set at most once per minimum
// refresh interval.
func TestUnknownKIDRateLimited(t *testing.T) {
	good := rsaKey(t, "good")
	f := startFakeIdP(t)
	f.handle("/jwks", serveJWKS(t, good))
	e := newKeysEnv(t, f, f.issuer(time.Hour, time.Hour), nil)
	if _, err := e.keySet.Keys(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if got := e.verify(context.Background(), f.mint(t, good, idp.WithKID(fmt.Sprint("unknown-", i)))); got != "unknown signing key" {
			t.Fatalf("unknown kid: %q", got)
		}
	}
	if n := f.hitCount("/jwks"); n != 1 {
		t.Errorf("%d JWKS fetches, want 1 (the start-up one)", n)
	}
}

// hang is a handler that sends nothing until the client goes away or the test ends.
func hang(f *fakeIdP) http.HandlerFunc {
	return func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-f.stop:
		}
	}
}

// waitGoroutines waits up to limit for the number of goroutines to fall to at most want, and returns it.
func waitGoroutines(want int, limit time.Duration) int {
	deadline := time.Now().Add(limit)
	for {
		n := runtime.NumGoroutine()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKeysWaitEndsWithContext checks that requests waiting for a refetch (unknown kid) while the JWKS hangs
// give up at their own deadline, that they share one fetch, that the fetch ends at its own timeout, not with
// the request that started it, and that no goroutine is left behind.
func TestKeysWaitEndsWithContext(t *testing.T) {
	known, rotated := rsaKey(t, "known"), rsaKey(t, "rotated")
	f := startFakeIdP(t)
	f.handle("/jwks", serveJWKS(t, known))
	transport := &http.Transport{DisableKeepAlives: true}
	defer transport.CloseIdleConnections()
	const fetchTimeout = 3 * time.Second // longer than the deadline plus the slack below: a wait that ignores the deadline shows
	e := newKeysEnv(t, f, f.issuer(time.Millisecond, time.Hour), &http.Client{Transport: transport}, authz.WithFetchTimeout(fetchTimeout))
	if _, err := e.keySet.Keys(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	knownTok, rotatedTok := f.mint(t, known), f.mint(t, rotated)
	before := runtime.NumGoroutine()
	f.handle("/jwks", hang(f))
	fetchesBefore := f.hitCount("/jwks")

	const callers, deadline = 40, 200 * time.Millisecond
	type result struct {
		got     string
		elapsed time.Duration
	}
	results := make(chan result, callers)
	var wg sync.WaitGroup
	for i := range callers {
		tok := rotatedTok
		if i%4 == 0 {
			tok = knownTok
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			got := e.verify(ctx, tok)
			results <- result{got, time.Since(start)}
		})
	}
	wg.Wait()
	close(results)
	unavailable := "503: signing keys of " + f.URL + " unavailable"
	for r := range results {
		if r.elapsed > deadline+1500*time.Millisecond {
			t.Errorf("a Verify took %v with a %v deadline", r.elapsed, deadline)
		}
		if r.got != "" && r.got != unavailable {
			t.Errorf("Verify: %q, want valid (known kid) or %q", r.got, unavailable)
		}
	}
	if n := f.hitCount("/jwks") - fetchesBefore; n != 1 {
		t.Errorf("%d JWKS fetches for %d waiting requests, want 1", n, callers)
	}
	// The fetch ends at its own timeout although the server still hangs, and takes its goroutines along.
	if n := waitGoroutines(before, fetchTimeout+5*time.Second); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after the fetch timed out, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
	if _, _, _, errs := e.fetches.last(); len(errs) != 1 || !errors.Is(errs[0], context.DeadlineExceeded) {
		t.Errorf("fetch failures %v, want one deadline exceeded", errs)
	}
}

// TestRunStopsWithContext checks that Run returns once its context ends, also while it waits for a fetch
// that a request started (which ends only at its own timeout).
func TestRunStopsWithContext(t *testing.T) {
	known := rsaKey(t, "known")
	f := startFakeIdP(t)
	f.handle("/jwks", serveJWKS(t, known))
	e := newKeysEnv(t, f, f.issuer(time.Millisecond, time.Hour), nil, authz.WithFetchTimeout(5*time.Second))
	if _, err := e.keySet.Keys(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	f.handle("/jwks", hang(f))
	time.Sleep(2 * time.Millisecond)
	reqCtx, reqCancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer reqCancel()
	if got := e.verify(reqCtx, f.mint(t, rsaKey(t, "rotated"))); !strings.HasPrefix(got, "503: ") {
		t.Fatalf("while the fetch hangs: %q, want 503", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.keySet.Run(ctx); close(done) }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Run still waiting for the fetch 2 s after its context ended")
	}
}

// TestKeysFetchOutlivesItsRequest checks that a refetch started by a request whose deadline passes goes on
// and installs the keys, so the next request finds the rotated-in key without another fetch.
func TestKeysFetchOutlivesItsRequest(t *testing.T) {
	known, rotated := rsaKey(t, "known"), rsaKey(t, "rotated")
	f := startFakeIdP(t)
	f.handle("/jwks", serveJWKS(t, known))
	e := newKeysEnv(t, f, f.issuer(time.Millisecond, time.Hour), nil)
	if _, err := e.keySet.Keys(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	version := e.keySet.Version()
	next := serveJWKS(t, known, rotated)
	f.handle("/jwks", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(400 * time.Millisecond):
			next(w, r)
		case <-r.Context().Done():
		}
	})
	tok := f.mint(t, rotated)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if got := e.verify(ctx, tok); !strings.HasPrefix(got, "503: ") {
		t.Fatalf("while the fetch runs: %q, want 503", got)
	}
	for end := time.Now().Add(5 * time.Second); e.keySet.Version().Equal(version) && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	if e.keySet.Version().Equal(version) {
		t.Fatal("the fetch started by the expired request installed nothing")
	}
	if got := e.verify(context.Background(), tok); got != "" {
		t.Errorf("after the fetch: %q, want valid", got)
	}
	if n := f.hitCount("/jwks"); n != 2 {
		t.Errorf("%d JWKS fetches, want 2 (start-up and the one rotation)", n)
	}
}

// TestRediscovery checks that a moved jwks_uri is followed: at once when the old one stops serving keys, and
// at the next background refresh when it still serves the old ones.
func TestRediscovery(t *testing.T) {
	old, next := rsaKey(t, "old"), rsaKey(t, "next")
	t.Run("old jwks_uri answers 404", func(t *testing.T) {
		f := startFakeIdP(t)
		f.handle("/jwks", serveJWKS(t, old))
		e := newKeysEnv(t, f, f.issuer(time.Millisecond, time.Hour), nil)
		if got := e.verify(context.Background(), f.mint(t, old)); got != "" {
			t.Fatalf("before the move: %s", got)
		}
		f.handle("/keys/v2", serveJWKS(t, next))
		f.setJWKSURI(f.URL + "/keys/v2")
		f.handle("/jwks", nil)
		time.Sleep(2 * time.Millisecond)
		if got := e.verify(context.Background(), f.mint(t, next)); got != "" {
			t.Errorf("token of the key at the new jwks_uri: %q, want valid", got)
		}
		if got := e.verify(context.Background(), f.mint(t, old)); got != "unknown signing key" {
			t.Errorf("token of the key gone with the old jwks_uri: %q, want unknown signing key", got)
		}
	})
	t.Run("old jwks_uri still serves the old keys", func(t *testing.T) {
		f := startFakeIdP(t)
		f.handle("/jwks", serveJWKS(t, old))
		e := newKeysEnv(t, f, f.issuer(time.Hour, 100*time.Millisecond), nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { e.keySet.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		for end := time.Now().Add(5 * time.Second); !e.keySet.Ready() && time.Now().Before(end); {
			time.Sleep(10 * time.Millisecond)
		}
		f.handle("/keys/v2", serveJWKS(t, next))
		f.setJWKSURI(f.URL + "/keys/v2")
		tok := f.mint(t, next)
		got := "not tried"
		for end := time.Now().Add(5 * time.Second); got != "" && time.Now().Before(end); {
			time.Sleep(20 * time.Millisecond)
			got = e.verify(context.Background(), tok)
		}
		if got != "" {
			t.Fatalf("token of the key at the new jwks_uri: %q, want valid", got)
		}
		if f.hitCount("/.well-known/openid-configuration") < 2 {
			t.Error("discovery asked only once")
		}
		if got := e.verify(context.Background(), f.mint(t, old)); got != "unknown signing key" {
			t.Errorf("token of the old key: %q, want unknown signing key", got)
		}
	})
}

// TestPlainHTTPWarning checks the start-up warning for keys fetched over plain http from a host that is not
// loopback, for the discovery URL and for the jwks_uri it names. The jwks_uri's host is not resolved: the
// client dials the test server whatever the address.
func TestPlainHTTPWarning(t *testing.T) {
	good := rsaKey(t, "good")
	const warning = "signing keys are fetched over plain http"
	tests := []struct {
		name      string
		discovery string // "" : the fake IdP's own (loopback)
		jwksURI   string // "" : the fake IdP's own
		want      string // a field the warning names; "" : no warning
	}{
		{"all loopback", "", "", ""},
		{"discovery on a remote host", "http://idp.example.test/.well-known/openid-configuration", "", "discovery_url=http://idp.example.test/"},
		{"discovery over https", "https://idp.example.test/.well-known/openid-configuration", "", ""},
		{"jwks_uri on a remote host", "", "http://keys.example.test/jwks", "jwks_uri=http://keys.example.test/jwks"},
		{"jwks_uri on localhost", "", "http://localhost/jwks", ""},
		{"jwks_uri on ::1", "", "http://[::1]/jwks", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakeIdP(t)
			f.handle("/jwks", serveJWKS(t, good))
			if tc.jwksURI != "" {
				f.setJWKSURI(tc.jwksURI)
			}
			is := f.issuer(time.Hour, time.Hour)
			is.AllowInsecureHTTP = true // the warning is what stays of the refusal when it is allowed
			fetch := tc.discovery == ""
			if !fetch {
				is.DiscoveryURL = tc.discovery
			}
			addr := f.srv.Listener.Addr().String()
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, network, addr)
				},
			}}
			e := newKeysEnv(t, f, is, client)
			if fetch {
				if _, err := e.keySet.Keys(context.Background(), ""); err != nil {
					t.Fatal(err)
				}
			}
			logs := e.log.String()
			switch {
			case tc.want == "" && strings.Contains(logs, warning):
				t.Errorf("warning for loopback or https:\n%s", logs)
			case tc.want != "" && (!strings.Contains(logs, warning) || !strings.Contains(logs, tc.want)):
				t.Errorf("no warning naming %s in\n%s", tc.want, logs)
			}
		})
	}
}

// TestPlainHTTPRefused: without allow_insecure_http, a discovery document naming a jwks_uri in plain http to
// a host that is not loopback, or an https discovery naming an http jwks_uri (a downgrade), is refused.
func TestPlainHTTPRefused(t *testing.T) {
	good := rsaKey(t, "good")
	for _, uri := range []string{"http://keys.example.test/jwks", "http://10.0.0.7/jwks"} {
		f := startFakeIdP(t)
		f.handle("/jwks", serveJWKS(t, good))
		f.setJWKSURI(uri)
		addr := f.srv.Listener.Addr().String()
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		}}
		e := newKeysEnv(t, f, f.issuer(time.Hour, time.Hour), client)
		if _, err := e.keySet.Keys(context.Background(), ""); err == nil || !strings.Contains(e.log.String(), "plain http") && !strings.Contains(err.Error(), "plain http") {
			t.Errorf("%s: keys loaded (%v); want the jwks_uri refused as plain http", uri, err)
		}
	}
}
