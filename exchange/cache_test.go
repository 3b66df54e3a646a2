package exchange

import (
	"context"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
)

func key(tok, params string) cacheKey {
	return cacheKey{subject: sha256.Sum256([]byte(tok)), params: params}
}

func entryUntil(v string, fresh time.Time) *entry {
	return &entry{headers: []authz.Header{{Name: "authorization", Value: "Bearer " + v}}, fresh: fresh}
}

func TestCacheKeyedExactly(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := newCache(16)
	base := key("tok", "aud\x00res\x00scope")
	c.put(base, entryUntil("a", now.Add(time.Minute)), now)
	tests := []struct {
		name string
		k    cacheKey
		hit  bool
	}{
		{"same token and parameters", key("tok", "aud\x00res\x00scope"), true},
		{"other token", key("tok2", "aud\x00res\x00scope"), false},
		{"other scope", key("tok", "aud\x00res\x00scope2"), false},
		{"other audience", key("tok", "aud2\x00res\x00scope"), false},
		{"other resource", key("tok", "aud\x00res2\x00scope"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := c.get(tc.k, now); ok != tc.hit {
				t.Fatalf("hit = %v, want %v", ok, tc.hit)
			}
		})
	}
}

func TestCacheExpiry(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := newCache(16)
	k := key("tok", "p")
	c.put(k, entryUntil("a", now.Add(time.Minute)), now)
	if _, ok := c.get(k, now.Add(59*time.Second)); !ok {
		t.Fatal("miss before the entry's end")
	}
	if _, ok := c.get(k, now.Add(time.Minute)); ok {
		t.Fatal("hit at the entry's end")
	}
	c.put(key("stale", "p"), entryUntil("b", now), now) // not fresh: not stored
	if c.len() != 1 {
		t.Fatalf("len = %d, want 1 (a stale entry was stored)", c.len())
	}
}

func TestCacheBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := newCache(3)
	for i, tok := range []string{"a", "b", "c"} {
		c.put(key(tok, "p"), entryUntil(tok, now.Add(time.Duration(i+1)*time.Minute)), now)
	}
	c.put(key("d", "p"), entryUntil("d", now.Add(time.Hour)), now)
	if c.len() != 3 {
		t.Fatalf("len = %d, want 3", c.len())
	}
	if _, ok := c.get(key("a", "p"), now); ok {
		t.Error("the entry that expires first was kept")
	}
	for _, tok := range []string{"b", "c", "d"} {
		if _, ok := c.get(key(tok, "p"), now); !ok {
			t.Errorf("%s evicted", tok)
		}
	}
	// Later, b and c are stale: one insert drops both.
	later := now.Add(3 * time.Minute)
	c.put(key("e", "p"), entryUntil("e", later.Add(time.Hour)), later)
	if c.len() != 2 {
		t.Fatalf("len = %d, want 2 (stale entries dropped)", c.len())
	}
	off := newCache(0)
	off.put(key("a", "p"), entryUntil("a", now.Add(time.Hour)), now)
	if off.len() != 0 {
		t.Fatal("a cache of size 0 kept an entry")
	}
}

// TestCacheSingleFlight checks that concurrent misses of one key make one exchange, and that every
// caller gets its result.
func TestCacheSingleFlight(t *testing.T) {
	now := func() time.Time { return time.Unix(1_800_000_000, 0) }
	c := newCache(16)
	var calls atomic.Int32
	release := make(chan struct{})
	k := key("tok", "p")
	var wg sync.WaitGroup
	results := make([]string, 20)
	for i := range results {
		wg.Go(func() {
			e, err, _ := c.do(context.Background(), k, now, func() (*entry, *authz.Error) {
				calls.Add(1)
				<-release
				return entryUntil("x", now().Add(time.Minute)), nil
			})
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = e.headers[0].Value
		})
	}
	time.Sleep(50 * time.Millisecond) // let the goroutines queue on the flight
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d exchanges, want 1", n)
	}
	for i, r := range results {
		if r != "Bearer x" {
			t.Fatalf("caller %d got %q", i, r)
		}
	}
	if _, ok := c.get(k, now()); !ok {
		t.Fatal("result not cached")
	}
}

// TestCacheFailureNotCached checks that a failed exchange is shared with the waiters but not remembered.
func TestCacheFailureNotCached(t *testing.T) {
	now := func() time.Time { return time.Unix(1_800_000_000, 0) }
	c := newCache(16)
	k := key("tok", "p")
	_, err, _ := c.do(context.Background(), k, now, func() (*entry, *authz.Error) { return nil, errUnavailable("down") })
	if err == nil || !err.Unavailable {
		t.Fatalf("err = %v", err)
	}
	if c.len() != 0 {
		t.Fatal("a failure was cached")
	}
}

// TestCacheWaiterContext checks that a waiter whose request ends stops waiting with a 503.
func TestCacheWaiterContext(t *testing.T) {
	now := func() time.Time { return time.Unix(1_800_000_000, 0) }
	c := newCache(16)
	k := key("tok", "p")
	release, started := make(chan struct{}), make(chan struct{})
	go c.do(context.Background(), k, now, func() (*entry, *authz.Error) {
		close(started)
		<-release
		return entryUntil("x", now().Add(time.Minute)), nil
	})
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err, shared := c.do(ctx, k, now, func() (*entry, *authz.Error) { t.Error("second exchange"); return nil, nil })
	close(release)
	if err == nil || err.Status != 503 || !shared {
		t.Fatalf("err = %v, shared = %v", err, shared)
	}
}
