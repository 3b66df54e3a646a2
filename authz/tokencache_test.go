package authz_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/test/idp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

const (
	cacheResource = "https://mcp.example.com/mcp"
	leeway        = 60 * time.Second
)

// keyServer is an issuer's discovery document and JWKS on 127.0.0.1, with keys the test swaps.
type keyServer struct {
	url  string
	mu   sync.Mutex
	keys []jwk.Key // public keys served
}

func startKeyServer(t *testing.T) *keyServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ks := &keyServer{url: "http://" + l.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": ks.url, "jwks_uri": ks.url + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		ks.mu.Lock()
		set := jwk.NewSet()
		for _, k := range ks.keys {
			set.AddKey(k)
		}
		ks.mu.Unlock()
		json.NewEncoder(w).Encode(set)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return ks
}

// serve makes the JWKS hold the public parts of keys.
func (ks *keyServer) serve(t *testing.T, keys ...jwk.Key) {
	t.Helper()
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.keys = nil
	for _, k := range keys {
		pub, err := k.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		ks.keys = append(ks.keys, pub)
	}
}

// rsaKey is a new RS256 private key with kid.
func rsaKey(t *testing.T, kid string) jwk.Key {
	t.Helper()
	raw, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return keyOf(t, raw, kid, jwa.RS256)
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// cacheFixture is an issuer with its key set, and two verifiers on the same clock and keys: one with the
// token cache, one verifying every token afresh (the reference).
type cacheFixture struct {
	keys          *keyServer
	minter        *idp.Provider // mints for the key server's issuer
	issuer        config.Issuer
	keySet        *authz.KeySet
	cached, fresh *authz.Verifier
	clock         *clock
	foreign       jwk.Key // a key a test signs with and may publish later
}

func newCacheFixture(t *testing.T, signing ...jwk.Key) *cacheFixture {
	t.Helper()
	f := &cacheFixture{keys: startKeyServer(t), clock: &clock{t: time.Now().Truncate(time.Second)}}
	f.keys.serve(t, signing...)
	var err error
	if f.minter, err = idp.New(f.keys.url); err != nil {
		t.Fatal(err)
	}
	is := config.Issuer{
		DiscoveryURL: f.keys.url + "/.well-known/openid-configuration", Issuer: f.keys.url,
		RequiredType: "at+jwt", Algorithms: []string{"RS256"},
		RefreshInterval: config.Duration(time.Hour), MinRefreshInterval: config.Duration(time.Millisecond),
	}
	f.issuer = is
	f.keySet = authz.NewKeySet(is, &http.Client{Timeout: 5 * time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if _, err := f.keySet.Keys(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	keys := map[string]*authz.KeySet{is.Issuer: f.keySet}
	if f.cached, err = authz.NewVerifier([]config.Issuer{is}, keys, leeway, f.clock.Now); err != nil {
		t.Fatal(err)
	}
	if f.fresh, err = authz.NewVerifier([]config.Issuer{is}, keys, leeway, f.clock.Now, authz.WithTokenCache(-1)); err != nil {
		t.Fatal(err)
	}
	return f
}

// mint signs claims (plus iss, the resource as aud, iat now and exp in ten minutes unless given) with key.
func (f *cacheFixture) mint(t *testing.T, key jwk.Key, claims map[string]any) string {
	t.Helper()
	now := f.clock.Now()
	c := map[string]any{"sub": "alice", "aud": cacheResource, "client_id": "mcp-client", "scope": "tools:call",
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "jti": "same-jti"}
	for k, v := range claims {
		c[k] = v
	}
	tok, err := f.minter.Mint(c, idp.WithKey(jwa.RS256, key))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// refreshKeys makes the key set fetch the JWKS again (as a refresh or an unknown kid does).
func (f *cacheFixture) refreshKeys(t *testing.T) {
	t.Helper()
	start := time.Now()
	time.Sleep(2 * time.Millisecond) // past min_refresh_interval
	f.keySet.Keys(context.Background(), "a-kid-nobody-has")
	if f.keySet.Age(time.Now()) > time.Since(start) {
		t.Fatal("key set not refreshed")
	}
}

// assertSameAsFresh verifies tok with both verifiers and fails unless they agree, returning the error
// description ("" on success).
func (f *cacheFixture) assertSameAsFresh(t *testing.T, tok, audience string) string {
	t.Helper()
	gotID, gotErr := f.cached.Verify(context.Background(), tok, []string{audience})
	wantID, wantErr := f.fresh.Verify(context.Background(), tok, []string{audience})
	if !reflect.DeepEqual(gotErr, wantErr) {
		t.Fatalf("cached verifier error %v, fresh verification error %v", gotErr, wantErr)
	}
	if !sameIdentity(gotID, wantID) {
		t.Fatalf("cached verifier identity %+v, fresh verification %+v", gotID, wantID)
	}
	var e *authz.Error
	if errors.As(gotErr, &e) {
		return e.Description
	}
	return ""
}

// TestTokenCacheTimeValidity checks that a cached token gets, at every instant, the answer of a fresh
// verification: refused once expired (past the leeway), and refused while the clock is before its nbf or
// iat minus the leeway even though it is in the cache; at whole and at fractional seconds around each bound.
func TestTokenCacheTimeValidity(t *testing.T) {
	key := rsaKey(t, "k1")
	f := newCacheFixture(t, key)
	t0 := f.clock.Now() // a whole second
	exp := t0.Add(10 * time.Minute)
	nbf := t0.Add(2 * time.Minute)
	issuedNow := f.mint(t, key, map[string]any{"nbf": t0.Unix()})
	notBeforeLater := f.mint(t, key, map[string]any{"nbf": nbf.Unix()}) // iat t0, nbf two minutes later
	half := 500 * time.Millisecond
	tests := []struct {
		name   string
		token  string
		warmAt time.Time // when it is verified, and cached
		at     time.Time
		want   string // error description, "" for a valid token
	}{
		{"just verified", issuedNow, t0, t0, ""},
		{"one second before exp", issuedNow, t0, exp.Add(-time.Second), ""},
		{"at exp, within the leeway", issuedNow, t0, exp, ""},
		{"past exp, within the leeway", issuedNow, t0, exp.Add(leeway - time.Second), ""},
		{"half a second before exp plus the leeway", issuedNow, t0, exp.Add(leeway - half), ""},
		{"expired past the leeway", issuedNow, t0, exp.Add(leeway), "token expired"},
		{"expired past the leeway and half a second", issuedNow, t0, exp.Add(leeway + half), "token expired"},
		{"an hour after exp", issuedNow, t0, exp.Add(time.Hour), "token expired"},
		{"clock back before nbf, within the leeway", issuedNow, t0, t0.Add(-leeway + time.Second), ""},
		{"clock back to iat minus the leeway plus half a second", issuedNow, t0, t0.Add(-leeway + half), ""},
		{"clock back to iat minus the leeway minus half a second", issuedNow, t0, t0.Add(-leeway - half), "token issued in the future"},
		{"clock back before nbf and iat, past the leeway", issuedNow, t0, t0.Add(-leeway - time.Second), "token issued in the future"},
		{"later nbf: valid", notBeforeLater, nbf, nbf.Add(time.Minute), ""},
		{"later nbf: clock back within the leeway", notBeforeLater, nbf, nbf.Add(-leeway + half), ""},
		{"later nbf: clock back past the leeway", notBeforeLater, nbf, nbf.Add(-leeway - half), "token not yet valid"},
		{"later nbf: clock back before iat too", notBeforeLater, nbf, t0.Add(-leeway - time.Second), "token issued in the future"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.clock.Set(tc.warmAt)
			if d := f.assertSameAsFresh(t, tc.token, cacheResource); d != "" {
				t.Fatalf("valid token refused: %s", d)
			}
			if n := f.cached.CachedTokens(); n < 1 {
				t.Fatalf("token not cached")
			}
			f.clock.Set(tc.at)
			if got := f.assertSameAsFresh(t, tc.token, cacheResource); got != tc.want {
				t.Errorf("at %v from t0: %q, want %q", tc.at.Sub(t0), got, tc.want)
			}
		})
	}
}

// TestTokenCacheKeyRotation checks that a token verified under an old key set is verified again once the
// key set changes: refused when its key was removed, accepted when its key is still published.
func TestTokenCacheKeyRotation(t *testing.T) {
	tests := []struct {
		name  string
		after func(old, next jwk.Key) []jwk.Key // the JWKS after rotation
		want  string
	}{
		{"old key removed", func(old, next jwk.Key) []jwk.Key { return []jwk.Key{next} }, "unknown signing key"},
		{"old key replaced under the same kid", func(old, next jwk.Key) []jwk.Key { return []jwk.Key{rsaKey(t, "old")} }, "signature verification failed"},
		{"old key still published", func(old, next jwk.Key) []jwk.Key { return []jwk.Key{old, next} }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old, next := rsaKey(t, "old"), rsaKey(t, "next")
			f := newCacheFixture(t, old)
			tok := f.mint(t, old, nil)
			if d := f.assertSameAsFresh(t, tok, cacheResource); d != "" {
				t.Fatalf("valid token refused: %s", d)
			}
			if f.cached.CachedTokens() != 1 {
				t.Fatal("token not cached")
			}
			f.keys.serve(t, tc.after(old, next)...)
			f.refreshKeys(t)
			if got := f.assertSameAsFresh(t, tok, cacheResource); got != tc.want {
				t.Errorf("after rotation: %q, want %q", got, tc.want)
			}
		})
	}
}

// TestTokenCacheDistinctTokens checks that a token is never answered from the cache entry of another token
// with the same claims, nor for another resource.
func TestTokenCacheDistinctTokens(t *testing.T) {
	trusted, second := rsaKey(t, "k1"), rsaKey(t, "k2")
	f := newCacheFixture(t, trusted, second)
	foreign := rsaKey(t, "k1") // an attacker's key under a trusted kid
	valid := f.mint(t, trusted, nil)
	if d := f.assertSameAsFresh(t, valid, cacheResource); d != "" {
		t.Fatalf("valid token refused: %s", d)
	}
	tests := []struct {
		name     string
		token    string
		audience string
		want     string
	}{
		{"same claims, signature altered", tamperSignature(valid), cacheResource, "signature verification failed"},
		{"same claims, signed by a foreign key with the trusted kid", f.mint(t, foreign, nil), cacheResource, "signature verification failed"},
		{"same claims, signed by the other trusted key", f.mint(t, second, nil), cacheResource, ""},
		{"same token, another resource", valid, "https://other.example.com/mcp", "token audience does not include this resource"},
		{"same token again", valid, cacheResource, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := f.assertSameAsFresh(t, tc.token, tc.audience); got != tc.want {
				t.Errorf("%q, want %q", got, tc.want)
			}
		})
	}
}

// tamperSignature changes one character of the signature, keeping header and payload.
func tamperSignature(tok string) string {
	b := []byte(tok)
	i := len(b) - 5
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// sameIdentity compares what an Identity says (its exported fields); the token cache also keeps a prebuilt
// policy input with the identities it returns.
func sameIdentity(a, b *authz.Identity) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Subject == b.Subject && a.Issuer == b.Issuer && a.ClientID == b.ClientID && a.Email == b.Email &&
		reflect.DeepEqual(a.Scopes, b.Scopes) && reflect.DeepEqual(a.Claims, b.Claims) && a.Expiry.Equal(b.Expiry)
}

// TestTokenCacheConcurrent verifies cached tokens from several goroutines while the key set rotates and the
// cache evicts (run with -race): both keys stay published, so every token must stay valid.
func TestTokenCacheConcurrent(t *testing.T) {
	old, next := rsaKey(t, "old"), rsaKey(t, "next")
	f := newCacheFixture(t, old, next)
	keys := map[string]*authz.KeySet{f.keys.url: f.keySet}
	small, err := authz.NewVerifier([]config.Issuer{f.issuer}, keys, leeway, f.clock.Now, authz.WithTokenCache(2)) // evicts
	if err != nil {
		t.Fatal(err)
	}
	tokens := []string{f.mint(t, old, map[string]any{"sub": "a"}), f.mint(t, next, map[string]any{"sub": "b"}), f.mint(t, old, map[string]any{"sub": "c"})}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				tok := tokens[(g+i)%len(tokens)]
				id, verr := small.Verify(context.Background(), tok, []string{cacheResource})
				if verr != nil || id == nil || id.Subject == "" {
					t.Errorf("Verify: %v, %v", id, verr)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			f.refreshKeys(t)
		}
	})
	wg.Wait()
	if n := small.CachedTokens(); n > 2 {
		t.Errorf("%d tokens cached, size 2", n)
	}
}

// TestRejectCache checks the tokens remembered as refused: a bad signature and an expired token are, and
// their answer stays the one of a fresh verification (expired once the token expires, accepted once the key
// set publishes the key that signed it or the clock goes back before exp); failures that may turn are not
// remembered.
func TestRejectCache(t *testing.T) {
	trusted := rsaKey(t, "k1")
	tests := []struct {
		name       string
		token      func(f *cacheFixture) string
		want       string // first answer
		remembered bool
		change     func(t *testing.T, f *cacheFixture) // then, between two more verifications
		after      string
	}{
		{"altered signature, then expired", func(f *cacheFixture) string { return tamperSignature(f.mint(t, trusted, nil)) },
			"signature verification failed", true,
			func(t *testing.T, f *cacheFixture) { f.clock.Add(10*time.Minute + leeway) }, "token expired"},
		{"foreign key under the trusted kid, then published by the issuer", func(f *cacheFixture) string {
			f.foreign = rsaKey(t, "k1")
			return f.mint(t, f.foreign, nil)
		}, "signature verification failed", true,
			func(t *testing.T, f *cacheFixture) { f.keys.serve(t, f.foreign); f.refreshKeys(t) }, ""},
		{"altered signature, keys refreshed unchanged", func(f *cacheFixture) string { return tamperSignature(f.mint(t, trusted, nil)) },
			"signature verification failed", true,
			func(t *testing.T, f *cacheFixture) { f.refreshKeys(t) }, "signature verification failed"},
		{"unknown kid, then published", func(f *cacheFixture) string {
			f.foreign = rsaKey(t, "k2")
			return f.mint(t, f.foreign, nil)
		}, "unknown signing key", false,
			func(t *testing.T, f *cacheFixture) {
				f.keys.serve(t, trusted, f.foreign)
				time.Sleep(2 * time.Millisecond)
			}, ""},
		{"not yet valid, then valid", func(f *cacheFixture) string {
			return f.mint(t, trusted, map[string]any{"nbf": f.clock.Now().Add(5 * time.Minute).Unix()})
		}, "token not yet valid", false,
			func(t *testing.T, f *cacheFixture) { f.clock.Add(5 * time.Minute) }, ""},
		{"expired, then the clock back before its exp", func(f *cacheFixture) string {
			return f.mint(t, trusted, map[string]any{"iat": f.clock.Now().Add(-time.Hour).Unix(), "exp": f.clock.Now().Add(-10 * time.Minute).Unix()})
		}, "token expired", true, func(t *testing.T, f *cacheFixture) { f.clock.Add(-30 * time.Minute) }, ""},
		{"expired, still expired later", func(f *cacheFixture) string {
			return f.mint(t, trusted, map[string]any{"iat": f.clock.Now().Add(-time.Hour).Unix(), "exp": f.clock.Now().Add(-10 * time.Minute).Unix()})
		}, "token expired", true, func(t *testing.T, f *cacheFixture) { f.clock.Add(time.Hour) }, "token expired"},
		{"expired and not from a trusted issuer", func(f *cacheFixture) string {
			return f.mint(t, trusted, map[string]any{"iss": "https://evil.example.com", "exp": f.clock.Now().Add(-time.Hour).Unix()})
		}, "issuer not trusted", false, func(t *testing.T, f *cacheFixture) {}, "issuer not trusted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newCacheFixture(t, trusted)
			tok := tc.token(f)
			if got := f.assertSameAsFresh(t, tok, cacheResource); got != tc.want {
				t.Fatalf("first answer %q, want %q", got, tc.want)
			}
			if n := f.cached.RejectedTokens(); (n == 1) != tc.remembered {
				t.Fatalf("%d tokens remembered as refused; remembered: %v", n, tc.remembered)
			}
			if got := f.assertSameAsFresh(t, tok, cacheResource); got != tc.want {
				t.Fatalf("second answer %q, want %q", got, tc.want)
			}
			tc.change(t, f)
			for range 2 {
				if got := f.assertSameAsFresh(t, tok, cacheResource); got != tc.after {
					t.Fatalf("after the change %q, want %q", got, tc.after)
				}
			}
		})
	}
}

// TestTokenCacheMetrics checks the hit and miss counts of both caches as the metrics report them: a valid
// token misses then hits the verified cache; a token with a bad signature misses it each time, and misses
// then hits the refused cache, which the valid token's first request also looked into.
func TestTokenCacheMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	tel, err := authz.NewTelemetry(authz.TelemetryConfig{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	if err != nil {
		t.Fatal(err)
	}
	key := rsaKey(t, "k1")
	f := newCacheFixture(t, key)
	if err := tel.ObserveTokenCaches(f.cached); err != nil {
		t.Fatal(err)
	}
	valid := f.mint(t, key, nil)
	for _, tok := range []string{valid, valid, tamperSignature(valid), tamperSignature(valid)} {
		f.assertSameAsFresh(t, tok, cacheResource)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range sum.DataPoints {
					if c, ok := dp.Attributes.Value("cache"); ok {
						got[m.Name+" "+c.AsString()] = dp.Value
					}
				}
			}
		}
	}
	want := map[string]int64{
		"mcp_authz.token_cache.hits verified": 1, "mcp_authz.token_cache.misses verified": 3,
		"mcp_authz.token_cache.hits refused": 1, "mcp_authz.token_cache.misses refused": 2,
		"mcp_authz.token_cache.evictions verified": 0, "mcp_authz.token_cache.evictions refused": 0,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("token cache metrics %v, want %v", got, want)
	}
}

// TestRefreshKeepsCacheWarm: a refresh that brings the same JWKS document keeps the key set's version, so
// cached tokens are answered from the cache (no re-verification every refresh interval); a document with
// other keys changes the version, and the cached token is verified afresh (and still valid while its key is
// published).
func TestRefreshKeepsCacheWarm(t *testing.T) {
	key, other := rsaKey(t, "k1"), rsaKey(t, "k2")
	f := newCacheFixture(t, key)
	tok := f.mint(t, key, nil)
	if d := f.assertSameAsFresh(t, tok, cacheResource); d != "" {
		t.Fatalf("valid token refused: %s", d)
	}
	before := f.keySet.Version()
	f.refreshKeys(t)
	if !f.keySet.Version().Equal(before) {
		t.Error("the same JWKS document changed the key set version: the token caches are emptied on every refresh")
	}
	hits := f.cached.CacheHitsForTest()
	if d := f.assertSameAsFresh(t, tok, cacheResource); d != "" {
		t.Fatalf("valid token refused after an unchanged refresh: %s", d)
	}
	if f.cached.CacheHitsForTest() != hits+1 {
		t.Error("the cached token was verified afresh after an unchanged refresh")
	}
	f.keys.serve(t, key, other)
	f.refreshKeys(t)
	if f.keySet.Version().Equal(before) {
		t.Error("a JWKS document with another key kept the key set version")
	}
	if d := f.assertSameAsFresh(t, tok, cacheResource); d != "" {
		t.Fatalf("valid token refused after a rotation that kept its key: %s", d)
	}
}
