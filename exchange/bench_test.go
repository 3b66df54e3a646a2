package exchange

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"testing"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/config"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// benchToken is a client token of a typical size (about 800 bytes).
var benchToken = subjectToken + fmt.Sprintf("%0750d", 0)

// BenchmarkCredentialHit is the cost an allow pays for token exchange once the user's token is exchanged:
// the SHA-256 of the token (an identity from the authorizer's token cache memoizes it, a plain one as here
// does not: this is the cost with the token cache off), the cache lookup, and the hit counted on a real
// meter.
func BenchmarkCredentialHit(b *testing.B) {
	as := newFakeAS(&testing.T{})
	defer as.srv.Close()
	e := benchExchanger(b, as)
	g := benchGrant(b, as)
	if _, err := e.Credential(context.Background(), g); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.Credential(context.Background(), g); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCredentialMiss is the cost of an exchange: every iteration is a new token, so a cache miss
// and one token exchange against an httptest IdP on 127.0.0.1 (HTTP keep-alive, form encoding, JSON
// decoding of the answer, the cache insert).
func BenchmarkCredentialMiss(b *testing.B) {
	as := newFakeAS(&testing.T{})
	defer as.srv.Close()
	as.token = func(w http.ResponseWriter, _ url.Values, _, _ string) {
		answer(w, http.StatusOK, map[string]any{"access_token": "exchanged", "token_type": "Bearer", "expires_in": 300})
	}
	e := benchExchanger(b, as)
	grants := make([]authz.Grant, 0, 1024)
	for i := range cap(grants) {
		g := benchGrant(b, as)
		g.Token = fmt.Sprintf("%s%08d", benchToken, i)
		g.Identity = &authz.Identity{Subject: "alice", Issuer: as.srv.URL}
		grants = append(grants, g)
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if i%len(grants) == 0 { // past the 1024 tokens: start again with an empty cache
			b.StopTimer()
			e.cache = newCache(4096)
			b.StartTimer()
		}
		if _, err := e.Credential(context.Background(), grants[i%len(grants)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func benchExchanger(b *testing.B, as *fakeAS) *Exchanger {
	b.Helper()
	secret := b.TempDir() + "/secret"
	if err := writeBenchFile(secret); err != nil {
		b.Fatal(err)
	}
	cfg := config.Config{
		Resources: []config.Resource{{URL: resourceURL, TokenExchange: &config.TokenExchange{Audience: "https://api.example.com", Scope: "read",
			ClientID: "mcp-authz", ClientSecretFile: secret, RequestedTokenType: config.TokenTypeAccessToken, Timeout: config.Duration(5e9)}}},
		Issuers:            []config.Issuer{{Issuer: as.srv.URL, DiscoveryURL: as.srv.URL + "/.well-known/openid-configuration"}},
		TokenExchangeCache: config.TokenExchangeCache{MaxEntries: 4096},
	}
	e, err := New(cfg, Options{Meter: sdkmetric.NewMeterProvider().Meter("bench")})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

func benchGrant(b *testing.B, as *fakeAS) authz.Grant {
	b.Helper()
	return authz.Grant{Resource: resourceURL, Token: benchToken, Identity: &authz.Identity{Subject: "alice", Issuer: as.srv.URL}}
}

// BenchmarkCacheHit is the part of a hit left when the token's hash is memoized (a token in the authorizer's
// token cache): the cache lookup and the metric.
func BenchmarkCacheHit(b *testing.B) {
	as := newFakeAS(&testing.T{})
	defer as.srv.Close()
	e := benchExchanger(b, as)
	g := benchGrant(b, as)
	if _, err := e.Credential(context.Background(), g); err != nil {
		b.Fatal(err)
	}
	k := cacheKey{subject: subjectHash(g), params: e.blocks[resourceURL].params}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		en, ok := e.cache.get(k, e.now())
		if !ok {
			b.Fatal("miss")
		}
		e.metrics.lookup(ctx, true)
		_ = en.headers
	}
}

func writeBenchFile(path string) error { return os.WriteFile(path, []byte("s3cret"), 0o600) }
