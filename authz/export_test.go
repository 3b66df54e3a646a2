package authz

// CachedTokens is the number of tokens in v's cache, for the tests of package authz_test.
func (v *Verifier) CachedTokens() int {
	if v.cache == nil {
		return 0
	}
	return v.cache.len()
}

// RejectedTokens is the number of refused tokens v remembers.
func (v *Verifier) RejectedTokens() int {
	if v.rejects == nil {
		return 0
	}
	return v.rejects.len()
}

// CacheHitsForTest is how many times v's cache of verified tokens answered.
func (v *Verifier) CacheHitsForTest() uint64 {
	if v.cache == nil {
		return 0
	}
	return v.cache.stats.hits.Load()
}
