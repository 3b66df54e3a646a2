package authz

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// fifoModel is the eviction of a plain FIFO cache of size entries (oldest out first, a request changes
// nothing): the reference the token cache's policy is compared with.
type fifoModel struct {
	held  map[uint64]bool
	order []uint64
	next  int
	n     int
}

func newFIFOModel(size int) *fifoModel {
	return &fifoModel{held: make(map[uint64]bool, size), order: make([]uint64, size)}
}

// request reports whether h was held, and inserts it if not.
func (f *fifoModel) request(h uint64) bool {
	if f.held[h] {
		return true
	}
	if f.n == len(f.order) {
		delete(f.held, f.order[f.next])
	} else {
		f.n++
	}
	f.order[f.next] = h
	f.held[h] = true
	f.next = (f.next + 1) % len(f.order)
	return false
}

// policyCache drives a tokenCache as the Verifier does: a lookup, and an insert of a verified token on a miss.
type policyCache struct {
	c    *tokenCache
	seed maphash.Seed
	now  time.Time
	keys map[uint64]tokenKey
}

func newPolicyCache(size int) *policyCache {
	return &policyCache{c: newTokenCache(size), seed: maphash.MakeSeed(), now: time.Now(), keys: map[uint64]tokenKey{}}
}

// key is the cache key of token number n (its raw token is built once).
func (p *policyCache) key(n uint64) tokenKey {
	k, ok := p.keys[n]
	if !ok {
		raw := fmt.Sprintf("token-%d", n)
		k = tokenKey{hash: maphash.String(p.seed, raw), raw: raw}
		p.keys[n] = k
	}
	return k
}

// request reports whether token n was held, and inserts it if not.
func (p *policyCache) request(n uint64) bool {
	k := p.key(n)
	if p.c.lookup(k) != nil {
		return true
	}
	p.c.insert(k, &cachedToken{raw: k.raw, issuer: &trustedIssuer{}, version: p.now, id: Identity{Expiry: p.now.Add(time.Hour)}})
	return false
}

// TestTokenCacheSurvivesScan checks that tokens in steady use stay cached when a wave of one-time tokens
// (a scan, many new callers) passes, where a FIFO cache of the same size evicts them: the hot tokens are
// requested a few times, then scan one-time tokens arrive (with a round of the hot tokens after every
// every one-time tokens, 0: none), then each hot token once more; every hot request after the first rounds
// must hit.
func TestTokenCacheSurvivesScan(t *testing.T) {
	tests := []struct {
		size, hot, scan, every int
		fifoHits               int // hot requests after the first rounds that a FIFO cache would answer
	}{
		{size: 64, hot: 16, scan: 48, fifoHits: 16},
		{size: 64, hot: 16, scan: 64, fifoHits: 0},
		{size: 64, hot: 16, scan: 1000, fifoHits: 0},
		{size: 64, hot: 40, scan: 1000, fifoHits: 0},
		{size: 64, hot: 16, scan: 1000, every: 100, fifoHits: 16}, // only the last round, right after the one before
		{size: 4096, hot: 1000, scan: 20000, fifoHits: 0},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("size %d, %d hot, scan of %d, hot round every %d", tc.size, tc.hot, tc.scan, tc.every), func(t *testing.T) {
			cache, fifo := newPolicyCache(tc.size), newFIFOModel(tc.size)
			request := func(n uint64) (cached, fifoHeld bool) { return cache.request(n), fifo.request(cache.key(n).hash) }
			for range 3 {
				for h := range tc.hot {
					request(uint64(h))
				}
			}
			var requests, hits, fifoHits int
			hotRound := func() {
				for h := range tc.hot {
					c, f := request(uint64(h))
					requests++
					if c {
						hits++
					}
					if f {
						fifoHits++
					}
				}
			}
			for s := range tc.scan {
				request(uint64(1_000_000 + s))
				if tc.every > 0 && (s+1)%tc.every == 0 {
					hotRound()
				}
			}
			hotRound()
			if hits != requests {
				t.Errorf("%d of %d hot requests hit, want all", hits, requests)
			}
			if fifoHits != tc.fifoHits {
				t.Errorf("FIFO model kept %d hot tokens, want %d", fifoHits, tc.fifoHits)
			}
			if n := cache.c.len(); n > tc.size {
				t.Errorf("%d entries, size %d", n, tc.size)
			}
			checkQueues(t, cache.c)
		})
	}
}

// checkQueues fails unless the queues of c hold exactly its entries, linked both ways.
func checkQueues(t *testing.T, c *tokenCache) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := 0
	for _, q := range []*tokenFIFO{&c.small, &c.main} {
		n := 0
		var prev *cachedToken
		for e := q.head; e != nil; e = e.next {
			if e.prev != prev || e.queue != q || c.entries[e.hash] != e {
				t.Fatalf("entry %d of a queue is not linked to it or not in the map", n)
			}
			prev = e
			n++
		}
		if q.tail != prev || q.n != n {
			t.Fatalf("queue of %d entries counts %d", n, q.n)
		}
		seen += n
	}
	if seen != len(c.entries) || seen > c.size {
		t.Fatalf("queues hold %d entries, map %d, size %d", seen, len(c.entries), c.size)
	}
}

// TestTokenCacheConcurrentPolicy looks up, inserts and removes entries from several goroutines (run with
// -race), then checks that the queues and the map agree and the size holds.
func TestTokenCacheConcurrentPolicy(t *testing.T) {
	for _, size := range []int{1, 2, 10, 100} {
		t.Run(fmt.Sprintf("size %d", size), func(t *testing.T) {
			c := newTokenCache(size)
			seed, now := maphash.MakeSeed(), time.Now()
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(g), 1))
					for range 2000 {
						raw := fmt.Sprintf("token-%d", r.IntN(3*size+3))
						k := tokenKey{hash: maphash.String(seed, raw), raw: raw}
						switch e := c.lookup(k); {
						case e == nil:
							c.insert(k, &cachedToken{raw: raw, issuer: &trustedIssuer{}, version: now, id: Identity{Expiry: now.Add(time.Hour)}})
						case r.IntN(4) == 0:
							c.remove(k, e)
						}
					}
				})
			}
			wg.Wait()
			checkQueues(t, c)
		})
	}
}
