package authz

import (
	"math/rand/v2"
	"testing"
	"time"
)

// cacheWorkload is a bounded, seeded stream of token numbers requested; counted tells whether a request
// counts in the hit ratio (the scans' one-time tokens do not).
type cacheWorkload struct {
	name string
	next func(i int) (token uint64, counted bool)
	n    int
}

// zipfUsers requests the tokens of `users` users with Zipf popularity (exponent s), seeded.
func zipfUsers(users uint64, s float64, seed uint64) func() uint64 {
	z := rand.NewZipf(rand.New(rand.NewPCG(seed, seed)), s, 1, users-1)
	return z.Uint64
}

// cacheWorkloads are the traffic shapes the token cache policy is measured on (TestTokenCacheHitRatios).
func cacheWorkloads() []cacheWorkload {
	zipf := zipfUsers(50_000, 1.1, 1)
	zipfScan := zipfUsers(50_000, 1.1, 1)
	scanned := uint64(0)
	return []cacheWorkload{
		{"zipf 1.1 over 50,000 users", func(int) (uint64, bool) { return zipf(), true }, 500_000},
		// every 20,000 requests a scan of 10,000 one-time tokens; only the users' requests count
		{"zipf 1.1 over 50,000 users, scans of 10,000 one-time tokens", func(i int) (uint64, bool) {
			if i%30_000 >= 20_000 {
				scanned++
				return 1<<40 + scanned, false
			}
			return zipfScan(), true
		}, 750_000},
		{"5,000 users in turn (mixed corpus)", func(i int) (uint64, bool) { return uint64(i % 5_000), true }, 100_000},
		{"benchmark corpus (4 users)", func(i int) (uint64, bool) { return uint64(i % 4), true }, 10_000},
	}
}

// TestTokenCacheHitRatios replays each workload through a cache of the default size and through a FIFO
// model of that size, and logs both hit ratios (go test -run HitRatios -v); it fails if the cache hits
// less often than FIFO.
func TestTokenCacheHitRatios(t *testing.T) {
	if testing.Short() {
		t.Skip("replays about a million requests")
	}
	for _, w := range cacheWorkloads() {
		t.Run(w.name, func(t *testing.T) {
			cache, fifo := newPolicyCache(DefaultTokenCacheSize), newFIFOModel(DefaultTokenCacheSize)
			var counted, hits, fifoHits int
			for i := range w.n {
				n, count := w.next(i)
				k := cache.key(n)
				hit, fifoHit := cache.request(n), fifo.request(k.hash)
				if !count {
					delete(cache.keys, n) // one-time: not requested again
					continue
				}
				counted++
				if hit {
					hits++
				}
				if fifoHit {
					fifoHits++
				}
			}
			ratio, fifoRatio := float64(hits)/float64(counted), float64(fifoHits)/float64(counted)
			t.Logf("%s: hit ratio S3-FIFO %.3f, FIFO %.3f (%d requests counted)", w.name, ratio, fifoRatio, counted)
			if hits < fifoHits {
				t.Errorf("hit ratio %.3f below FIFO's %.3f", ratio, fifoRatio)
			}
		})
	}
}

// BenchmarkTokenCache measures the cache's own work on a request (not the verification around it): a hit
// (lookup of a held token), and a miss followed by the insert of the verified token into a full cache
// (lookup, eviction, insert; its one allocation is the entry, which add builds anyway).
func BenchmarkTokenCache(b *testing.B) {
	const size = DefaultTokenCacheSize
	b.Run("hit", func(b *testing.B) {
		p := newPolicyCache(size)
		keys := make([]tokenKey, size)
		for i := range keys {
			keys[i] = p.key(uint64(i))
			p.request(uint64(i))
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if p.c.lookup(keys[i%size]) == nil {
				b.Fatal("miss")
			}
			i++
		}
	})
	b.Run("miss and insert", func(b *testing.B) {
		p := newPolicyCache(size)
		for i := range size {
			p.request(uint64(i))
		}
		keys := make([]tokenKey, 4*size) // built beforehand: the token comes with the request
		for i := range keys {
			keys[i] = p.key(uint64(size + i))
		}
		now, issuer := time.Now(), &trustedIssuer{}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			k := keys[i%len(keys)]
			if p.c.lookup(k) == nil {
				p.c.insert(k, &cachedToken{raw: k.raw, issuer: issuer, version: now}) // the entry add builds

			}
			i++
		}
	})
}
