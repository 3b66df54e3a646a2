package policy

// DecodeForTest is decode, for the tests of package policy_test.
var DecodeForTest = decode

// CacheStatsForTest returns the number of decisions p's cache holds, its hits and its misses (zeros when
// the cache is off).
func CacheStatsForTest(p *Policy) (size int, hits, misses uint64) {
	if p.cache == nil {
		return 0, 0, 0
	}
	return p.cache.len(), p.cache.hits.Load(), p.cache.misses.Load()
}
