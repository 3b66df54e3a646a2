package authz

import (
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/open-policy-agent/opa/v1/ast"
)

// DefaultTokenCacheSize is how many verified tokens a Verifier remembers unless WithTokenCache says otherwise:
// a few thousand callers active at once. An entry holds about 5 KiB for a typical 1 KiB token (its parsed
// claims twice, as Go values and as the policy input), so a full cache is about 20 MiB.
const DefaultTokenCacheSize = 4096

// VerifierOption changes how NewVerifier builds a Verifier.
type VerifierOption func(*Verifier)

// DefaultRejectCacheSize is how many refused tokens (expired, bad signature) a Verifier remembers
// (tokenCache.reject).
const DefaultRejectCacheSize = 1024

// WithTokenCache sets how many verified tokens the Verifier remembers (and, at most DefaultRejectCacheSize
// of them, how many refused ones); 0 turns both caches off, so every token is verified afresh.
func WithTokenCache(size int) VerifierOption {
	return func(v *Verifier) {
		v.cache, v.rejects = nil, nil
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
//   - The cache holds at most size entries; the oldest entry is evicted first (FIFO).
//
// A Verifier keeps a second, smaller tokenCache of refused tokens (reject): expired ones, and those whose
// signature did not verify. A client or an attacker sending the same token again is refused without
// parsing it or checking a signature, with the answer of a fresh verification (refuse): expired while it
// is (the clock may go back), bad signature until the issuer's key set changes. No other failure is
// remembered: those may turn (an unknown kid, nbf, the audience of another resource).
type tokenCache struct {
	mu      sync.RWMutex
	entries map[uint64]*cachedToken
	order   []uint64 // ring of hashes in insertion order; order[next] is evicted next
	used    []bool   // used[i]: order[i] holds a key
	next    int
}

// cachedToken is one verified token.
type cachedToken struct {
	raw     string // the compact token
	issuer  *trustedIssuer
	version time.Time // issuer key set version the signature was checked under (at the latest)
	token   jwt.Token // the parsed token, for its time-based claims and audience
	id      Identity  // what the fresh verification returned
	slot    int       // index in order
	// rejected is the refusal of a token refused as expired or with a bad signature (claims holds its
	// unverified claims, to tell whether it has expired); nil for a verified token.
	rejected *Error
	claims   map[string]any
	// validFrom and validUntil bound the clock (truncated to the second) for which validate accepts the token:
	// from max(iat, nbf) minus the leeway (zero: no bound) to exp plus the leeway, exclusive.
	validFrom, validUntil time.Time
}

func newTokenCache(size int) *tokenCache {
	return &tokenCache{
		entries: make(map[uint64]*cachedToken, size),
		order:   make([]uint64, size),
		used:    make([]bool, size),
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
	c.mu.RLock()
	entry := c.entries[key.hash]
	c.mu.RUnlock()
	if entry == nil || entry.raw != key.raw {
		return nil, nil, false
	}
	if entry.rejected != nil {
		return c.refuse(v, key, entry)
	}
	if !entry.issuer.keys.Version().Equal(entry.version) {
		c.remove(key, entry)
		return nil, nil, false
	}
	if !v.now().Before(entry.id.Expiry) {
		c.remove(key, entry)
		return nil, nil, false
	}
	if now := v.now().Truncate(time.Second); entry.validFrom.After(now) || !now.Before(entry.validUntil) {
		if e := v.validate(entry.token); e != nil { // outside the window: the very answer of a fresh verification
			return nil, e, true
		}
	}
	if e := entry.issuer.checkAudience(entry.token.Audience(), entry.id.ClientID, audiences); e != nil {
		return nil, e, true
	}
	copied := entry.id // callers get their own Identity; Claims and Scopes are shared and read-only
	return &copied, nil, true
}

// add remembers a token that passed verification at time now under the key set version `version` of
// issuer t. A token already at or past its exp (accepted within the leeway) is not remembered.
func (c *tokenCache) add(key tokenKey, t *trustedIssuer, version time.Time, tok jwt.Token, id *Identity, now time.Time, leeway time.Duration) {
	if c == nil || version.IsZero() || !now.Before(id.Expiry) {
		return
	}
	entry := &cachedToken{raw: key.raw, issuer: t, version: version, token: tok, id: *id}
	entry.validFrom, entry.validUntil = validityWindow(tok, leeway)
	if token, err := tokenValue(id); err == nil { // on an error, requests build it (and fail) as without the cache
		entry.id.policyToken = ast.NewTerm(token)
	}
	entry.id.memo = new(sync.Map)
	c.insert(key, entry)
}

// refuse answers for a remembered refusal what a fresh verification answers now: FetchKeys refuses a token
// that is surely expired before any signature check, and a bad signature stands while the key set has not
// changed. Otherwise (the key set changed, or the clock went back before the exp of a token refused as
// expired) the entry is dropped and the token verified afresh.
func (c *tokenCache) refuse(v *Verifier, key tokenKey, entry *cachedToken) (*Identity, *Error, bool) {
	if v.surelyExpired(entry.claims) {
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
	c.insert(key, &cachedToken{raw: key.raw, issuer: t, version: version, rejected: e, claims: claims})
}

// insert stores entry under key, evicting the oldest entry when the cache is full.
func (c *tokenCache) insert(key tokenKey, entry *cachedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[key.hash]; ok { // verified twice concurrently (or a hash shared): keep the slot, take the newer entry
		entry.slot = old.slot
		c.entries[key.hash] = entry
		return
	}
	if c.used[c.next] {
		if victim := c.entries[c.order[c.next]]; victim != nil && victim.slot == c.next {
			delete(c.entries, c.order[c.next])
		}
	}
	entry.slot = c.next
	c.order[c.next], c.used[c.next] = key.hash, true
	c.entries[key.hash] = entry
	c.next = (c.next + 1) % len(c.order)
}

// validityWindow is the range of clock readings, truncated to the second, for which Verifier.validate
// accepts tok: jwt.Validate refuses iat or nbf after now plus the leeway and exp at or before now minus the
// leeway, all truncated to the second, and ignores a zero claim.
func validityWindow(tok jwt.Token, leeway time.Duration) (from, until time.Time) {
	for _, t := range []time.Time{tok.IssuedAt(), tok.NotBefore()} {
		if !t.IsZero() && t.Unix() != 0 {
			if lo := t.Truncate(time.Second).Add(-leeway); lo.After(from) {
				from = lo
			}
		}
	}
	if exp := tok.Expiration(); !exp.IsZero() && exp.Unix() != 0 {
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
	}
}

// len is the number of entries.
func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
