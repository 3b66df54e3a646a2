package authz

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/test/idp"
)

// maxCachedTokenBytes bounds the heap one cached token holds (measured: about 3.5 KiB for the token of
// TestTokenCacheMemory). An entry keeps the compact token, the Identity with its claims as Go values, the
// policy input's token member and the registered claims; not the library's parsed token.
const maxCachedTokenBytes = 6 << 10

// TestTokenCacheMemory fills a token cache with verified tokens as the load benchmark's users send them
// (RS256, about 0.9 KiB: subject, audience, client, two scopes, email, two groups, a department) and reads the
// heap they hold from runtime.MemStats.
func TestTokenCacheMemory(t *testing.T) {
	const issuer, resource, n = "https://idp.example.com", "https://mcp.example.com/mcp", 1000
	p, err := idp.New(issuer)
	if err != nil {
		t.Fatal(err)
	}
	is := config.Issuer{Issuer: issuer, DiscoveryURL: issuer + config.OIDCDiscoverySuffix, Algorithms: config.DefaultAlgorithms, MinRefreshInterval: config.Duration(time.Hour)}
	ks := NewKeySet(is, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	installSet(ks, p.PublicJWKS())
	v, err := NewVerifier([]config.Issuer{is}, map[string]*KeySet{issuer: ks}, time.Minute, time.Now, WithTokenCache(n))
	if err != nil {
		t.Fatal(err)
	}
	tokens := make([]string, n)
	size := 0
	for i := range tokens {
		sub := fmt.Sprintf("user-%06d", i)
		tokens[i], err = p.Mint(map[string]any{"sub": sub, "aud": resource, "client_id": "mcp-client", "scope": "tools:read tools:call",
			"email": sub + "@example.com", "groups": []string{"developers", "mcp-users"}, "department": "engineering"})
		if err != nil {
			t.Fatal(err)
		}
		size += len(tokens[i])
	}
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	for _, tok := range tokens {
		// A copy, as a request's token is: the cache keeps the only reference to it.
		if _, err := v.Verify(context.Background(), strings.Clone(tok), []string{resource}); err != nil {
			t.Fatal(err)
		}
	}
	after := heap()
	if v.CachedTokens() != n {
		t.Fatalf("%d tokens cached, want %d", v.CachedTokens(), n)
	}
	per := (int64(after) - int64(before)) / n
	t.Logf("%d cached tokens of %d bytes on average: %d bytes of heap each", n, size/n, per)
	if per > maxCachedTokenBytes {
		t.Errorf("a cached token holds %d bytes of heap, more than %d", per, maxCachedTokenBytes)
	}
	runtime.KeepAlive(tokens)
	runtime.KeepAlive(v)
}
