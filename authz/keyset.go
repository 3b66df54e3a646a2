package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/mcp-authz/mcp-authz/config"
)

// KeySet holds one issuer's signing keys: found through its discovery document, fetched from its
// `jwks_uri`, refreshed in the background and on an unknown `kid` (rate-limited). Lookups read an immutable
// snapshot and take no lock.
type KeySet struct {
	issuer       string
	discoveryURL string
	client       *http.Client
	log          *slog.Logger
	every        time.Duration
	minInterval  time.Duration
	observe      FetchObserver
	tel          *Telemetry // spans of fetches; nil: none

	current atomic.Pointer[keySnapshot]

	mu        sync.Mutex // serializes fetches; guards jwksURI and lastFetch
	jwksURI   string
	lastFetch time.Time
}

type keySnapshot struct {
	set     jwk.Set
	fetched time.Time
}

// FetchObserver is told the outcome of every key-set fetch (for metrics); it may be nil.
type FetchObserver func(issuer string, err error, keys int)

// maxDocumentBytes bounds discovery and JWKS documents.
const maxDocumentBytes = 1 << 20

// KeySetOption changes a KeySet built by NewKeySet.
type KeySetOption func(*KeySet)

// WithKeySetTelemetry traces fetches with t: a span per fetch (a child of the Check that triggered it on
// an unknown `kid`), and a root span per background refresh.
func WithKeySetTelemetry(t *Telemetry) KeySetOption { return func(k *KeySet) { k.tel = t } }

// NewKeySet returns the key set of one configured issuer. Nothing is fetched until Run or Lookup.
func NewKeySet(is config.Issuer, client *http.Client, log *slog.Logger, observe FetchObserver, opts ...KeySetOption) *KeySet {
	k := &KeySet{
		issuer:       is.Issuer,
		discoveryURL: is.DiscoveryURL,
		client:       client,
		log:          log.With("issuer", is.Issuer),
		every:        time.Duration(is.RefreshInterval),
		minInterval:  time.Duration(is.MinRefreshInterval),
		observe:      observe,
	}
	for _, o := range opts {
		o(k)
	}
	return k
}

// Run loads the keys, retrying with backoff until the first success, then refreshes them every refresh
// interval until ctx ends. A failed refresh keeps the keys already held.
func (k *KeySet) Run(ctx context.Context) {
	backoff := 250 * time.Millisecond
	for {
		err := k.refresh(ctx)
		wait := k.every
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			k.log.Warn("key set fetch failed", "error", err.Error())
			if k.current.Load() == nil {
				wait = backoff + rand.N(backoff/2)
				backoff = min(2*backoff, 30*time.Second)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Ready reports whether keys have been loaded at least once.
func (k *KeySet) Ready() bool { return k.current.Load() != nil }

// Age is the time since the keys in use were fetched; zero when none were.
func (k *KeySet) Age(now time.Time) time.Duration {
	if s := k.current.Load(); s != nil {
		return now.Sub(s.fetched)
	}
	return 0
}

// Version identifies the snapshot in use; it changes whenever new keys are installed.
func (k *KeySet) Version() time.Time {
	if s := k.current.Load(); s != nil {
		return s.fetched
	}
	return time.Time{}
}

var errNoKeys = errors.New("signing keys not loaded")

// Keys returns the keys matching kid ("" matches every key). On a miss it refetches the key set, at most
// once per minimum refresh interval, so that a key rotated in at the IdP is found.
func (k *KeySet) Keys(ctx context.Context, kid string) ([]jwk.Key, error) {
	snap := k.current.Load()
	if snap != nil {
		if keys := match(snap.set, kid); len(keys) > 0 {
			return keys, nil
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if s := k.current.Load(); s != snap && s != nil { // another caller refreshed meanwhile
		if keys := match(s.set, kid); len(keys) > 0 {
			return keys, nil
		}
	}
	if time.Since(k.lastFetch) < k.minInterval {
		if k.current.Load() == nil {
			return nil, errNoKeys
		}
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := k.fetchLocked(ctx)
	s := k.current.Load()
	if s == nil {
		return nil, fmt.Errorf("%w: %v", errNoKeys, err)
	}
	return match(s.set, kid), nil
}

func match(set jwk.Set, kid string) []jwk.Key {
	if kid != "" {
		if key, ok := set.LookupKeyID(kid); ok {
			return []jwk.Key{key}
		}
		return nil
	}
	keys := make([]jwk.Key, 0, set.Len())
	for i := 0; i < set.Len(); i++ {
		key, _ := set.Key(i)
		keys = append(keys, key)
	}
	return keys
}

func (k *KeySet) refresh(ctx context.Context) (err error) {
	ctx, span := k.tel.startFetch(ctx, spanRefresh, k.issuer, true)
	defer func() { endFetch(span, err, 0) }()
	k.mu.Lock()
	defer k.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return k.fetchLocked(ctx)
}

// fetchLocked runs discovery if still needed, then fetches the JWKS and installs it. k.mu is held.
func (k *KeySet) fetchLocked(ctx context.Context) (err error) {
	k.lastFetch = time.Now()
	keys := 0
	ctx, span := k.tel.startFetch(ctx, spanFetch, k.issuer, false)
	defer func() {
		endFetch(span, err, keys)
		if k.observe != nil {
			k.observe(k.issuer, err, keys)
		}
	}()
	if k.jwksURI == "" {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := k.getJSON(ctx, k.discoveryURL, &doc); err != nil {
			return fmt.Errorf("discovery: %w", err)
		}
		if doc.Issuer != k.issuer {
			return fmt.Errorf("discovery: document issuer %q is not the configured issuer %q", doc.Issuer, k.issuer)
		}
		if doc.JWKSURI == "" {
			return errors.New("discovery: document has no jwks_uri")
		}
		k.jwksURI = doc.JWKSURI
	}
	body, err := k.get(ctx, k.jwksURI)
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return fmt.Errorf("jwks: parse %s: %w", k.jwksURI, err)
	}
	if set.Len() == 0 {
		return fmt.Errorf("jwks: %s holds no keys", k.jwksURI)
	}
	keys = set.Len()
	k.current.Store(&keySnapshot{set: set, fetched: time.Now()})
	k.log.Debug("key set loaded", "keys", keys)
	return nil
}

func (k *KeySet) getJSON(ctx context.Context, url string, v any) error {
	body, err := k.get(ctx, url)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode %s: %w", url, err)
	}
	return nil
}

func (k *KeySet) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if len(body) > maxDocumentBytes {
		return nil, fmt.Errorf("GET %s: document larger than %d bytes", url, maxDocumentBytes)
	}
	return body, nil
}
