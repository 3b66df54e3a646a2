package policy

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
)

// DefaultDecisionCacheSize is the number of decisions a generation keeps when no size is configured.
const DefaultDecisionCacheSize = 4096

// decisionCache holds the decisions of one generation, keyed by the projection of the input onto the
// generation's input paths. A hit compares the stored projection with the new one (ast.Compare), never
// trusting the hash alone. It is bounded: when full, an insert evicts an entry chosen by map iteration
// (random). Safe for concurrent use.
type decisionCache struct {
	paths []ast.Ref
	max   int
	// absent marks a path the input has no value at. It is an empty set, which no JSON input holds, and
	// keys compare it by identity (sameKey); shared, never modified.
	absent *ast.Term

	mu      sync.RWMutex
	buckets map[int][]cacheEntry
	size    int

	hits, misses atomic.Uint64
	// total counts the lookups of every generation of a Live too (nil for a Policy loaded alone).
	total *cacheCounts
}

// cacheCounts are the lookups of decision caches answered from the cache (hits) and evaluated (misses).
type cacheCounts struct {
	hits, misses atomic.Uint64
}

type cacheEntry struct {
	key      ast.Value
	decision Decision
}

func newDecisionCache(paths []ast.Ref, size int, total *cacheCounts) *decisionCache {
	return &decisionCache{paths: paths, max: size, absent: ast.SetTerm(), buckets: make(map[int][]cacheEntry), total: total}
}

// count records a lookup.
func (c *decisionCache) count(hit bool) {
	switch {
	case hit:
		c.hits.Add(1)
		if c.total != nil {
			c.total.hits.Add(1)
		}
	default:
		c.misses.Add(1)
		if c.total != nil {
			c.total.misses.Add(1)
		}
	}
}

// key is the projection of in (as built with reads) onto the cache's paths: an array with, per path, the term in.Lookup finds
// there, or the cache's absent marker when the input has no value there. ok is false when a lookup is not
// known or meets a set: such an input is built and evaluated, never cached. The key shares the input's
// terms (neither is ever modified).
func (c *decisionCache) key(in Input, reads Reads) (key ast.Value, ok bool) {
	elems := make([]*ast.Term, len(c.paths))
	for i, p := range c.paths {
		t, known := in.Lookup(p[1:], reads)
		if !known {
			return nil, false
		}
		if t == nil {
			elems[i] = c.absent
			continue
		}
		if _, isSet := t.Value.(ast.Set); isSet {
			return nil, false
		}
		elems[i] = t
	}
	return ast.NewArray(elems...), true
}

// get returns the decision stored under key, compared in full.
func (c *decisionCache) get(key ast.Value) (Decision, bool) {
	h := key.Hash()
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, e := range c.buckets[h] {
		if c.sameKey(e.key, key) {
			c.count(true)
			return cloneDecision(e.decision), true
		}
	}
	c.count(false)
	return Decision{}, false
}

// put stores d under key, evicting an entry when the cache is full.
func (c *decisionCache) put(key ast.Value, d Decision) {
	h := key.Hash()
	d = cloneDecision(d)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.buckets[h] {
		if c.sameKey(e.key, key) {
			return
		}
	}
	if c.size >= c.max {
		for eh, b := range c.buckets {
			if len(b) <= 1 {
				delete(c.buckets, eh)
			} else {
				c.buckets[eh] = slices.Delete(slices.Clone(b), 0, 1)
			}
			c.size--
			break
		}
	}
	c.buckets[h] = append(c.buckets[h], cacheEntry{key: key, decision: d})
	c.size++
}

// len is the number of decisions held.
func (c *decisionCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.size
}

// sameKey reports whether two keys are the same projection: path by path, both absent, or both present
// with the same value (sameValue).
func (c *decisionCache) sameKey(x, y ast.Value) bool {
	a, b := x.(*ast.Array), y.(*ast.Array)
	if a.Len() != b.Len() {
		return false
	}
	for i := range a.Len() {
		s, t := a.Elem(i), b.Elem(i)
		if s == c.absent || t == c.absent {
			if s != t {
				return false
			}
			continue
		}
		if !sameValue(s.Value, t.Value) {
			return false
		}
	}
	return true
}

// cloneDecision copies d's slice and map so that no caller shares them with the cache.
func cloneDecision(d Decision) Decision {
	d.RequiredScopes = slices.Clone(d.RequiredScopes)
	d.Headers = maps.Clone(d.Headers)
	d.AssertionClaims = maps.Clone(d.AssertionClaims)
	return d
}

// sameValue reports whether x and y are the same JSON value, spelled the same: ast.Compare holds them equal
// and every number is written alike. ast.Compare alone equates 1 and 1.0, which a policy can tell apart
// (sprintf, json.marshal). Sets and non-string object keys, which JSON input never holds, are never the
// same: such a key misses.
func sameValue(x, y ast.Value) bool {
	switch x := x.(type) {
	case ast.Null, ast.Boolean, ast.String:
		return ast.Compare(x, y) == 0
	case ast.Number:
		n, ok := y.(ast.Number)
		return ok && x == n
	case *ast.Array:
		a, ok := y.(*ast.Array)
		if !ok || a.Len() != x.Len() {
			return false
		}
		for i := range x.Len() {
			if !sameValue(x.Elem(i).Value, a.Elem(i).Value) {
				return false
			}
		}
		return true
	case ast.Object:
		o, ok := y.(ast.Object)
		if ok && o == x { // OPA's objects are pointers: the same object, a cached token's claims say
			return true
		}
		if !ok || o.Len() != x.Len() {
			return false
		}
		same := true
		x.Until(func(k, v *ast.Term) bool {
			if _, isStr := k.Value.(ast.String); !isStr {
				same = false
				return true
			}
			w := o.Get(k)
			same = w != nil && sameValue(v.Value, w.Value)
			return !same
		})
		return same
	default:
		return false
	}
}

// CacheStats are the counts of a generation's decision cache.
type CacheStats struct {
	// Decisions is the number of decisions held.
	Decisions int
	// Hits and Misses count the lookups answered from the cache and those evaluated.
	Hits, Misses uint64
}

// CacheStats returns the counts of the generation's decision cache (this generation's lookups only); zeros
// when it is off.
func (p *Policy) CacheStats() CacheStats {
	if p.cache == nil {
		return CacheStats{}
	}
	return CacheStats{Decisions: p.cache.len(), Hits: p.cache.hits.Load(), Misses: p.cache.misses.Load()}
}
