package assertion

import (
	"sync/atomic"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
)

// The assertion cache lives in the token cache's entries: Identity.Memo keeps, per verified token, one
// slot per resource with the assertion on, so a request whose token is cached finds its assertion without
// hashing the token, and the cache is bounded by the token cache (one slot per token and resource) and
// emptied with it. A token's first request already shares the memo of the entry it was cached in; with the
// token cache turned off there is no memo, and every request mints its own assertion.

// memo is where slots are kept: an *authz.Identity (Identity.Memo).
type memo interface {
	Memoized(key any) (any, bool)
	Memo(key any, build func() any) any
}

// slotKey is the Memo key of one resource's slot; a pointer, so that the lookup allocates nothing.
type slotKey struct {
	m        *Minter
	resource string
}

// slot holds the last assertion minted for one token and resource.
type slot struct {
	cur atomic.Pointer[mintedAssertion]
}

func newSlot() any { return new(slot) }

// mintedAssertion is one signed assertion and what it was minted under.
type mintedAssertion struct {
	headers   []authz.Header // the assertion's header, shared by every request reusing it: never modified
	signer    *signingKey    // compared by kid (the key's thumbprint): a reload that parses the same key again reuses
	revision  string
	extra     string
	refreshAt time.Time // half its lifetime: from then on a request mints a new one
}

// assertion returns the header of the assertion for g to the resource of key (its slot kept in mem),
// extra being the policy's claims: the cached one while it has more than half its lifetime left and was minted under the same key, policy
// revision and claims, else a new one (stored for the next requests). Two requests that miss at once both
// mint; the last one stays.
func (m *Minter) assertion(key *slotKey, mem memo, g authz.Grant, extra string, now time.Time) ([]authz.Header, error) {
	v, ok := mem.Memoized(key)
	if !ok {
		v = mem.Memo(key, newSlot)
	}
	s := v.(*slot)
	signer := m.keys.signer()
	if c := s.cur.Load(); c != nil && signer != nil && c.signer.kid == signer.kid && c.revision == g.PolicyRevision && c.extra == extra && now.Before(c.refreshAt) {
		return c.headers, nil
	}
	value, exp, err := m.mint(signer, g, extra, now)
	if err != nil {
		return nil, err
	}
	iat := time.Unix(now.Unix(), 0)
	hs := []authz.Header{{Name: m.header, Value: value}}
	s.cur.Store(&mintedAssertion{headers: hs, signer: signer, revision: g.PolicyRevision, extra: extra, refreshAt: iat.Add(exp.Sub(iat) / 2)})
	return hs, nil
}
