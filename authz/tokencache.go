package authz

import (
	"sync"
	"sync/atomic"
	"time"
)

// DefaultTokenCacheSize is how many verified tokens a Verifier remembers unless WithTokenCache says otherwise:
// a few thousand callers active at once. An entry holds about 2.6 KiB of heap for a typical 0.9 KiB token
// (TestTokenCacheMemory): the token, its claims, the registered claims; about 2.8 KiB with the whole
// request path for a token used once, 4.5 KiB for one used again, whose policy input and adapters' memos are
// kept from its second request on (TestCachedTokenMemory in envoy). A full cache is about 11 to 18 MiB.
const DefaultTokenCacheSize = 4096

// VerifierOption changes how NewVerifier builds a Verifier.
type VerifierOption func(*Verifier)

// DefaultRejectCacheSize is how many refused tokens (expired, bad signature) a Verifier remembers
// (tokenCache.reject).
const DefaultRejectCacheSize = 1024

// WithTokenCache sets how many verified tokens the Verifier remembers (and, at most DefaultRejectCacheSize
// of them, how many refused ones): 0 takes DefaultTokenCacheSize, a negative size turns both caches off so
// that every token is verified afresh, as the other cache sizes of the project mean.
func WithTokenCache(size int) VerifierOption {
	return func(v *Verifier) {
		v.cache, v.rejects = nil, nil
		if size == 0 {
			size = DefaultTokenCacheSize
		}
		if size > 0 {
			v.cache, v.rejects = newTokenCache(size), newTokenCache(min(size, DefaultRejectCacheSize))
		}
	}
}

// tokenCache remembers tokens that passed verification, so that the next request with the same token skips
// parsing and the signature check. It fails closed: a hit answers exactly what a fresh verification would,
// or is not used at all.
//
//   - Entries are found by a hash of the whole compact token (header, payload and signature; hash/maphash,
//     seeded at random per process) and hit only when the stored token equals the request's byte for byte:
//     a token that differs in any byte, such as the same claims with another signature, is never served
//     another's entry, whatever the hash.
//   - An entry records the version of its issuer's key set seen before the signing key was looked up; when
//     the key set has changed since (rotation, refresh), the entry is dropped and the token verified afresh.
//   - A hit re-checks the time-based claims (exp, nbf, iat with the leeway) on the current clock: inside the
//     window where a fresh verification accepts them (computed once, to the second, as jwt.Validate does),
//     else with the very code of a fresh verification; and the audience against the resource of this request.
//   - An entry is never used at or after the token's exp, and never kept for a failed verification.
//   - The cache holds at most size entries. Which one goes when it is full is decided by S3-FIFO (Yang et
//     al., SOSP 2023): a new token enters a small queue (a tenth of the cache); one requested again before
//     it reaches the end of that queue moves to the main queue, one that was not leaves the cache and its
//     hash is remembered in a ghost queue, so that it goes straight to the main queue if it comes back soon.
//     The main queue gives each entry requested since it last passed the end another round (CLOCK with a
//     count up to 3). A wave of one-time tokens (a scan, many new callers) thus only churns the small
//     queue, and the tokens in steady use stay; where FIFO would evict them all after size new tokens.
//
// A hit costs the read lock that finds the entry and, until its count is saturated, one compare-and-swap;
// inserting and evicting take the write lock. The policy is written here rather than
// taken from a cache library because the cache needs what those do not give together: an entry is usable
// as soon as verify returns (no asynchronous or probabilistic admission), is dropped only if it is still
// the one that was found (remove), and is compared on the whole token.
//
// A Verifier keeps a second, smaller tokenCache of refused tokens (reject): expired ones, and those whose
// signature did not verify. A client or an attacker sending the same token again is refused without
// parsing it or checking a signature, with the answer of a fresh verification (refuse): expired while it
// is (the clock may go back), bad signature until the issuer's key set changes. No other failure is
// remembered: those may turn (an unknown kid, nbf, the audience of another resource).
type tokenCache struct {
	mu       sync.RWMutex
	entries  map[uint64]*cachedToken
	size     int       // most entries held
	smallCap int       // eviction takes from small while it holds at least this many (a tenth of size)
	small    tokenFIFO // new entries, until eviction reaches them
	main     tokenFIFO // entries requested again while in small, and tokens back from ghost
	ghost    ghostHashes
	stats    cacheStats
}

// cacheStats counts what a tokenCache answered, for the metrics (Telemetry.ObserveTokenCaches).
type cacheStats struct {
	hits, misses, evictions atomic.Uint64
}

// maxFreq caps an entry's request count: the rounds it may stay in the main queue without a request.
const maxFreq = 3

// cachedToken is one verified token.
type cachedToken struct {
	raw     string // the compact token
	issuer  *trustedIssuer
	version time.Time  // issuer key set version the signature was checked under (at the latest)
	claims  registered // the token's time-based claims and audience, checked again on every hit
	id      Identity   // what the fresh verification returned
	// memo and policyToken are what id's (and its copies') pointers of the same names share.
	memo        sync.Map
	policyToken atomic.Pointer[tokenTerm]
	// rejected is the refusal of a token refused as expired or with a bad signature (rejectedClaims holds its
	// unverified claims, to tell whether it has expired); nil for a verified token.
	rejected       *Error
	rejectedClaims map[string]any
	// validFrom and validUntil bound the clock (truncated to the second) for which validate accepts the token:
	// from max(iat, nbf) minus the leeway (zero: no bound) to exp plus the leeway, exclusive.
	validFrom, validUntil time.Time

	hash       uint64
	freq       atomic.Int32 // requests since it entered its queue or last passed the end of main, up to maxFreq
	queue      *tokenFIFO   // the queue it is in, nil once out of the cache; guarded by mu, as are prev and next
	prev, next *cachedToken // toward the newest and the oldest entry of queue
}

func newTokenCache(size int) *tokenCache {
	small := max(1, size/10)
	return &tokenCache{
		entries:  make(map[uint64]*cachedToken, size),
		size:     size,
		smallCap: small,
		ghost:    newGhostHashes(max(1, size-small)),
	}
}

// tokenKey identifies a compact token in the caches: its hash finds the entry, the token itself is compared.
type tokenKey struct {
	hash uint64
	raw  string
}

// verify answers from the cache: ok is false on a miss (the caller verifies afresh), else id and e are what a
// fresh verification of the token for audiences returns now. A nil cache always misses.
func (c *tokenCache) verify(v *Verifier, key tokenKey, audiences []string) (id *Identity, e *Error, ok bool) {
	if c == nil {
		return nil, nil, false
	}
	entry := c.lookup(key)
	if entry == nil {
		c.stats.misses.Add(1)
		return nil, nil, false
	}
	if entry.rejected != nil {
		id, e, ok = c.refuse(v, key, entry)
		c.count(ok)
		return id, e, ok
	}
	if !entry.issuer.keys.Version().Equal(entry.version) || !v.now().Before(entry.id.Expiry) {
		c.remove(key, entry)
		c.stats.misses.Add(1)
		return nil, nil, false
	}
	c.stats.hits.Add(1)
	if now := v.now().Truncate(time.Second); entry.validFrom.After(now) || !now.Before(entry.validUntil) {
		if e := v.validate(&entry.claims); e != nil { // outside the window: the very answer of a fresh verification
			return nil, e, true
		}
	}
	if e := entry.issuer.checkAudience(entry.claims.aud, entry.id.ClientID, audiences); e != nil {
		return nil, e, true
	}
	copied := entry.id // callers get their own Identity; Claims and Scopes are shared and read-only
	copied.repeat = true
	return &copied, nil, true
}

// lookup returns the entry of the very token of key, or nil, and counts the request for eviction.
func (c *tokenCache) lookup(key tokenKey) *cachedToken {
	c.mu.RLock()
	defer c.mu.RUnlock()
	entry := c.entries[key.hash]
	if entry == nil || entry.raw != key.raw {
		return nil
	}
	if f := entry.freq.Load(); f < maxFreq { // under the read lock: eviction, under the write lock, sees counts settled
		entry.freq.CompareAndSwap(f, f+1)
	}
	return entry
}

// count records a lookup that found an entry as a hit when the entry answered, else as a miss.
func (c *tokenCache) count(answered bool) {
	if answered {
		c.stats.hits.Add(1)
	} else {
		c.stats.misses.Add(1)
	}
}

// add remembers a token that passed verification at time now under the key set version `version` of
// issuer t, and returns the Identity to hand out: a copy of the entry's, sharing its memo, so that what
// adapters derive from it for this request serves the token's later requests too; id itself when the token
// is not remembered (no cache, keys never loaded, or a token already at or past its exp, accepted within
// the leeway).
func (c *tokenCache) add(key tokenKey, t *trustedIssuer, version time.Time, claims *registered, id *Identity, now time.Time, leeway time.Duration) *Identity {
	if c == nil || version.IsZero() || !now.Before(id.Expiry) {
		return id
	}
	entry := &cachedToken{raw: key.raw, issuer: t, version: version, claims: *claims, id: *id}
	entry.validFrom, entry.validUntil = validityWindow(claims, leeway)
	entry.id.memo, entry.id.policyToken = &entry.memo, &entry.policyToken
	c.insert(key, entry)
	copied := entry.id
	return &copied
}

// refuse answers for a remembered refusal what a fresh verification answers now: FetchKeys refuses a token
// that is surely expired before any signature check, and a bad signature stands while the key set has not
// changed. Otherwise (the key set changed, or the clock went back before the exp of a token refused as
// expired) the entry is dropped and the token verified afresh.
func (c *tokenCache) refuse(v *Verifier, key tokenKey, entry *cachedToken) (*Identity, *Error, bool) {
	if v.surelyExpired(entry.rejectedClaims) {
		return nil, errInvalidToken("token expired"), true
	}
	if entry.issuer == nil || !entry.issuer.keys.Version().Equal(entry.version) {
		c.remove(key, entry)
		return nil, nil, false
	}
	return nil, entry.rejected, true
}

// reject remembers a refused token with its unverified claims: refused as expired before its signature
// was checked (t nil), or because its signature did not verify under the key set version `version` of
// issuer t.
func (c *tokenCache) reject(key tokenKey, t *trustedIssuer, version time.Time, claims map[string]any, e *Error) {
	if c == nil || t != nil && version.IsZero() {
		return
	}
	c.insert(key, &cachedToken{raw: key.raw, issuer: t, version: version, rejected: e, rejectedClaims: claims})
}

// insert stores entry under key, evicting an entry first when the cache is full.
func (c *tokenCache) insert(key tokenKey, entry *cachedToken) {
	entry.hash = key.hash
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[key.hash]; ok { // verified twice concurrently (or a hash shared): keep its place, take the newer entry
		entry.freq.Store(old.freq.Load())
		old.queue.replace(old, entry)
		c.entries[key.hash] = entry
		return
	}
	for c.small.n+c.main.n >= c.size {
		c.evict()
	}
	if c.ghost.take(key.hash) {
		c.main.push(entry)
	} else {
		c.small.push(entry)
	}
	c.entries[key.hash] = entry
}

// evict removes one entry (c.mu held): from small while it holds its share, else from main.
func (c *tokenCache) evict() {
	for c.small.n >= c.smallCap || c.main.n == 0 && c.small.n > 0 {
		e := c.small.tail
		c.small.unlink(e)
		if e.freq.Load() > 0 { // requested again: promoted, with a count to earn anew in main
			e.freq.Store(0)
			c.main.push(e)
			continue
		}
		c.ghost.add(e.hash)
		c.drop(e)
		return
	}
	for c.main.n > 0 { // ends: every pass lowers a count, and the counts do not rise while mu is held
		e := c.main.tail
		c.main.unlink(e)
		if f := e.freq.Load(); f > 0 {
			e.freq.Store(f - 1)
			c.main.push(e)
			continue
		}
		c.drop(e)
		return
	}
}

// drop deletes an entry taken out of its queue by eviction (c.mu held).
func (c *tokenCache) drop(e *cachedToken) {
	if c.entries[e.hash] == e {
		delete(c.entries, e.hash)
	}
	c.stats.evictions.Add(1)
}

// tokenFIFO is a queue of cache entries, newest at head, linked through the entries themselves so that
// moving or removing one allocates nothing. Its methods are called with the cache's mu held.
type tokenFIFO struct {
	head, tail *cachedToken
	n          int
}

// push puts e at the head (newest end).
func (q *tokenFIFO) push(e *cachedToken) {
	e.queue, e.prev, e.next = q, nil, q.head
	if q.head != nil {
		q.head.prev = e
	} else {
		q.tail = e
	}
	q.head = e
	q.n++
}

// unlink takes e out of q.
func (q *tokenFIFO) unlink(e *cachedToken) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		q.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		q.tail = e.prev
	}
	e.queue, e.prev, e.next = nil, nil, nil
	q.n--
}

// replace puts e in the place of old, which leaves q.
func (q *tokenFIFO) replace(old, e *cachedToken) {
	e.queue, e.prev, e.next = q, old.prev, old.next
	if e.prev != nil {
		e.prev.next = e
	} else {
		q.head = e
	}
	if e.next != nil {
		e.next.prev = e
	} else {
		q.tail = e
	}
	old.queue, old.prev, old.next = nil, nil, nil
}

// ghostHashes remembers the hashes of the last entries evicted from the small queue (as many as the main
// queue holds, oldest forgotten first): a token whose hash is there was requested not long ago, and goes
// straight to the main queue when it is verified again. Only hashes are kept; a hash shared by two tokens
// changes where an entry starts, never what it answers.
type ghostHashes struct {
	seq  map[uint64]uint64 // hash -> sequence number of its latest add
	ring []uint64          // ring[n % len(ring)] is the hash of add number n
	n    uint64            // adds so far
}

func newGhostHashes(size int) ghostHashes {
	return ghostHashes{seq: make(map[uint64]uint64, size), ring: make([]uint64, size)}
}

// add remembers h, forgetting the oldest hash when full.
func (g *ghostHashes) add(h uint64) {
	slot := g.n % uint64(len(g.ring))
	if g.n >= uint64(len(g.ring)) {
		if old := g.ring[slot]; g.seq[old] == g.n-uint64(len(g.ring)) {
			delete(g.seq, old)
		}
	}
	g.ring[slot] = h
	g.seq[h] = g.n
	g.n++
}

// take reports whether h is remembered, and forgets it.
func (g *ghostHashes) take(h uint64) bool {
	if _, ok := g.seq[h]; !ok {
		return false
	}
	delete(g.seq, h)
	return true
}

// validityWindow is the range of clock readings, truncated to the second, for which Verifier.validate
// accepts claims: it refuses iat or nbf after now plus the leeway and exp at or before now minus the
// leeway, all truncated to the second, and ignores a zero claim.
func validityWindow(claims *registered, leeway time.Duration) (from, until time.Time) {
	for _, t := range [...]time.Time{claims.iat, claims.nbf} {
		if set(t) {
			if lo := t.Truncate(time.Second).Add(-leeway); lo.After(from) {
				from = lo
			}
		}
	}
	if exp := claims.exp; set(exp) {
		until = exp.Truncate(time.Second).Add(leeway)
	}
	return from, until
}

// remove drops entry, unless another entry has replaced it meanwhile.
func (c *tokenCache) remove(key tokenKey, entry *cachedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries[key.hash] == entry {
		delete(c.entries, key.hash)
		entry.queue.unlink(entry)
	}
}

// len is the number of entries.
func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
