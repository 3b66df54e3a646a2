package authz

import (
	"fmt"
	"hash/maphash"
	"testing"
	"time"
)

// TestTokenCacheBounded checks that the cache never holds more than its size and, with no token requested
// twice, evicts the oldest first.
func TestTokenCacheBounded(t *testing.T) {
	now := time.Now()
	tests := []struct {
		size, adds int
	}{
		{1, 5},
		{3, 3},
		{3, 10},
		{16, 100},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("size %d, %d tokens", tc.size, tc.adds), func(t *testing.T) {
			c := newTokenCache(tc.size)
			keys := make([]tokenKey, tc.adds)
			for i := range tc.adds {
				keys[i] = testKey(fmt.Sprintf("token-%d", i))
				c.add(keys[i], &trustedIssuer{}, now, &registered{}, &Identity{Expiry: now.Add(time.Hour)}, now, time.Minute)
				c.add(keys[i], &trustedIssuer{}, now, &registered{}, &Identity{Expiry: now.Add(time.Hour)}, now, time.Minute) // twice: one slot
				if n := c.len(); n > tc.size {
					t.Fatalf("after %d adds: %d entries, size %d", i+1, n, tc.size)
				}
			}
			for i, k := range keys {
				_, held := c.entries[k.hash]
				if want := i >= tc.adds-tc.size; held != want {
					t.Errorf("token %d held = %v, want %v", i, held, want)
				}
			}
		})
	}
}

// TestTokenCacheRefusesUnfitEntries checks that add keeps out what must not be served from the cache.
func TestTokenCacheRefusesUnfitEntries(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name    string
		version time.Time
		expiry  time.Time
	}{
		{"keys never loaded", time.Time{}, now.Add(time.Hour)},
		{"at exp (accepted within the leeway)", now, now},
		{"past exp (accepted within the leeway)", now, now.Add(-time.Second)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTokenCache(4)
			c.add(testKey("t"), &trustedIssuer{}, tc.version, &registered{}, &Identity{Expiry: tc.expiry}, now, time.Minute)
			if c.len() != 0 {
				t.Errorf("entry added")
			}
		})
	}
}

// testKey is the cache key of raw, with a hash of its own.
func testKey(raw string) tokenKey {
	return tokenKey{hash: maphash.String(maphash.MakeSeed(), raw), raw: raw}
}

// TestTokenCacheComparesTokens checks that an entry is served only to the very token it holds, even when
// another token has the same hash.
func TestTokenCacheComparesTokens(t *testing.T) {
	now := time.Now()
	c := newTokenCache(4)
	c.add(tokenKey{hash: 7, raw: "token-a"}, &trustedIssuer{}, now, &registered{}, &Identity{Expiry: now.Add(time.Hour)}, now, time.Minute)
	if c.len() != 1 {
		t.Fatal("token not cached")
	}
	if _, _, ok := c.verify(nil, tokenKey{hash: 7, raw: "token-b"}, []string{"https://mcp.example.com/mcp"}); ok {
		t.Error("a token with the same hash was answered from another token's entry")
	}
}
