package exchange

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
)

// cacheKey names one exchange exactly: the client's token (by its SHA-256, so that the cache does not
// hold it) and every parameter of the request that shapes the issued token (token endpoint, client,
// audience, resource, scope, requested type, actor), joined in params. Two requests share an exchanged
// token only when all of them are equal.
type cacheKey struct {
	subject [sha256.Size]byte
	params  string
}

// entry is one exchanged token, ready to hand out: its headers slice is shared by every hit and never
// modified.
type entry struct {
	headers []authz.Header
	// fresh is when the entry stops being handed out: shortly before the token expires (skew).
	fresh time.Time
}

// flight is one exchange in progress; the requests that want the same key wait for it.
type flight struct {
	done chan struct{}
	e    *entry
	err  *authz.Error
}

// cache remembers exchanged tokens until shortly before they expire, and makes one exchange per key at a
// time (single flight): a burst of one user's requests costs the IdP one exchange.
//
// It holds at most size entries. When it is full, an insert first drops the entries no longer fresh, then
// the one that expires first. An insert follows an exchange, a network round trip, so its scan of the map
// (size entries at most) is not on the path of a hit, which costs one read lock and a map lookup.
type cache struct {
	mu      sync.RWMutex
	entries map[cacheKey]*entry
	size    int // 0: nothing is kept (the cache is off), single flight still applies

	fmu     sync.Mutex
	flights map[cacheKey]*flight
}

func newCache(size int) *cache {
	return &cache{entries: map[cacheKey]*entry{}, size: max(size, 0), flights: map[cacheKey]*flight{}}
}

// get returns the fresh entry for k at now, if any.
func (c *cache) get(k cacheKey, now time.Time) (*entry, bool) {
	c.mu.RLock()
	e, ok := c.entries[k]
	c.mu.RUnlock()
	if !ok || !now.Before(e.fresh) {
		return nil, false
	}
	return e, true
}

// put stores e under k unless the cache is off or e is not fresh at now.
func (c *cache) put(k cacheKey, e *entry, now time.Time) {
	if c.size == 0 || !now.Before(e.fresh) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.size {
		c.evictLocked(now)
	}
	c.entries[k] = e
}

// evictLocked makes room for one entry: it drops every entry that is no longer fresh, and when none was,
// the one that stops being fresh first.
func (c *cache) evictLocked(now time.Time) {
	var first cacheKey
	var firstAt time.Time
	dropped := false
	for k, e := range c.entries {
		if !now.Before(e.fresh) {
			delete(c.entries, k)
			dropped = true
			continue
		}
		if firstAt.IsZero() || e.fresh.Before(firstAt) {
			first, firstAt = k, e.fresh
		}
	}
	if !dropped && !firstAt.IsZero() {
		delete(c.entries, first)
	}
}

// len is how many entries the cache holds.
func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// do returns the entry for k from the exchange in progress for k, or runs exchange (as the only one for k)
// and caches what it returns. A waiter whose ctx ends stops waiting; the exchange itself runs on.
func (c *cache) do(ctx context.Context, k cacheKey, now func() time.Time, exchange func() (*entry, *authz.Error)) (e *entry, err *authz.Error, shared bool) {
	c.fmu.Lock()
	if f, ok := c.flights[k]; ok {
		c.fmu.Unlock()
		select {
		case <-f.done:
			return f.e, f.err, true
		case <-ctx.Done():
			return nil, errUnavailable("token exchange: " + ctx.Err().Error()), true
		}
	}
	// Another request may have finished the exchange between the caller's miss and now.
	if e, ok := c.get(k, now()); ok {
		c.fmu.Unlock()
		return e, nil, true
	}
	f := &flight{done: make(chan struct{})}
	c.flights[k] = f
	c.fmu.Unlock()
	defer func() {
		if f.err == nil && f.e != nil {
			c.put(k, f.e, now())
		}
		c.fmu.Lock()
		delete(c.flights, k)
		c.fmu.Unlock()
		close(f.done)
	}()
	f.e, f.err = exchange()
	return f.e, f.err, false
}
