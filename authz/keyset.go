package authz

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
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
//
// At most one fetch runs at a time. A request that needs a fetch (an unknown `kid`) starts one or joins the
// one in flight, and waits for it only as long as its own context allows; the fetch itself does not end with
// that request (others may be waiting for it) but with its own timeout.
type KeySet struct {
	issuer       string
	discoveryURL string
	cfg          config.Issuer // the endpoints its discovery document names are checked against it
	client       *http.Client
	log          *slog.Logger
	every        time.Duration
	minInterval  time.Duration
	timeout      time.Duration // bounds one fetch (discovery and JWKS)
	observe      FetchObserver
	tel          *Telemetry // spans of fetches; nil: none

	current atomic.Pointer[keySnapshot]
	loaded  atomic.Int64 // unix nanoseconds of the last successful fetch, for Age

	mu        sync.Mutex // guards lastFetch and inflight
	lastFetch time.Time  // start of the last fetch, for the minimum refresh interval
	inflight  *fetchCall // the fetch running now; nil when none

	// Owned by the running fetch (at most one runs at a time, see inflight).
	jwksURI    string    // from the last successful discovery; "" before the first
	discovered time.Time // when jwksURI was last confirmed by discovery; zero forces discovery at the next fetch
}

// fetchCall is one fetch that requests and the background refresh wait for; err is set before done closes.
type fetchCall struct {
	done chan struct{}
	err  error
}

// keySnapshot is one installed key set, never changed once installed.
type keySnapshot struct {
	all     []SigningKey            // in document order
	byKID   map[string][]SigningKey // keys with a kid, by kid, in document order
	fetched time.Time               // the set's version: strictly increasing from one snapshot to the next
	digest  [sha256.Size]byte       // of the JWKS document the keys came from; zero when not from a document
}

// FetchObserver is told the outcome of every key-set fetch: keys installed and keys skipped as unusable
// (both zero on a failed fetch, except skipped when every key was). Telemetry.ObserveFetch is one.
type FetchObserver func(issuer string, err error, keys, skipped int)

// maxDocumentBytes bounds discovery and JWKS documents.
const maxDocumentBytes = 1 << 20

// DefaultFetchTimeout bounds one key-set fetch (discovery and JWKS together) unless WithFetchTimeout says
// otherwise.
const DefaultFetchTimeout = 10 * time.Second

// KeySetOption changes a KeySet built by NewKeySet.
type KeySetOption func(*KeySet)

// WithFetchObserver tells f, instead of the Telemetry's metrics, the outcome of every fetch.
func WithFetchObserver(f FetchObserver) KeySetOption { return func(k *KeySet) { k.observe = f } }

// WithFetchTimeout bounds each fetch (discovery and JWKS together) by d instead of DefaultFetchTimeout.
func WithFetchTimeout(d time.Duration) KeySetOption { return func(k *KeySet) { k.timeout = d } }

// NewKeySet returns the key set of one configured issuer. Nothing is fetched until Run or Keys. Fetches are
// reported to tel (nil: not at all): a span per fetch (a child of the Check that triggered it on an unknown
// `kid`, a root span per background refresh) and the fetch metrics. It warns about a discovery URL in plain
// http to a host that is not a loopback one.
func NewKeySet(is config.Issuer, client *http.Client, log *slog.Logger, tel *Telemetry, opts ...KeySetOption) *KeySet {
	k := &KeySet{
		issuer:       is.Issuer,
		discoveryURL: is.DiscoveryURL,
		cfg:          is,
		client:       client,
		log:          log.With("issuer", is.Issuer),
		every:        time.Duration(is.RefreshInterval),
		minInterval:  time.Duration(is.MinRefreshInterval),
		timeout:      DefaultFetchTimeout,
		tel:          tel,
		observe:      tel.ObserveFetch, // a nil *Telemetry observes nothing
	}
	for _, o := range opts {
		o(k)
	}
	k.warnInsecure("discovery_url", k.discoveryURL)
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

// Age is the time since the keys were last fetched; zero when they never were.
func (k *KeySet) Age(now time.Time) time.Duration {
	if n := k.loaded.Load(); n != 0 {
		return now.Sub(time.Unix(0, n))
	}
	return 0
}

// Version identifies the snapshot in use; it changes whenever other keys are installed, so a token verified
// under an older snapshot is verified afresh. A fetch that brings the very same JWKS document keeps the
// version: the same keys give the same answers, and the token caches stay warm across refreshes.
func (k *KeySet) Version() time.Time {
	if s := k.current.Load(); s != nil {
		return s.fetched
	}
	return time.Time{}
}

var errNoKeys = errors.New("signing keys not loaded")

// SigningKey is one key of an issuer's key set: the JWK as published (its kid, kty, alg and use say which
// tokens it may verify) and its public key, converted once when the key set is installed so that a
// signature check does not convert it again.
type SigningKey struct {
	JWK jwk.Key
	// Public is the JWK's public key (*rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey), or the JWK
	// itself when it has no raw form; jwx's verifiers take either.
	Public any
	// rsa is an RSA key made ready for RS256/RS384/RS512 verification (newRSAKey); nil for other keys and
	// for the RSA keys left to crypto/rsa.
	rsa *rsaKey
}

// Keys returns the keys matching kid ("" matches every key); the slice is shared and must not be changed.
// On a miss it refetches the key set, at most once per minimum refresh interval, so that a key rotated in at
// the IdP is found; it waits for that fetch only until ctx ends, and then returns an error.
func (k *KeySet) Keys(ctx context.Context, kid string) ([]SigningKey, error) {
	snap := k.current.Load()
	if snap != nil {
		if keys := snap.match(kid); len(keys) > 0 {
			return keys, nil
		}
	}
	k.mu.Lock()
	if s := k.current.Load(); s != snap && s != nil { // another fetch installed keys meanwhile
		if keys := s.match(kid); len(keys) > 0 {
			k.mu.Unlock()
			return keys, nil
		}
	}
	call := k.inflight
	if call == nil {
		if time.Since(k.lastFetch) < k.minInterval {
			k.mu.Unlock()
			if k.current.Load() == nil {
				return nil, errNoKeys
			}
			return nil, nil
		}
		// Detached from the request: other requests may join this fetch after this one has given up.
		call = k.startFetchLocked(context.WithoutCancel(ctx))
	}
	k.mu.Unlock()
	select {
	case <-call.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: gave up waiting for the key set fetch: %w", errNoKeys, ctx.Err())
	}
	s := k.current.Load()
	if s == nil {
		return nil, fmt.Errorf("%w: %w", errNoKeys, call.err)
	}
	return s.match(kid), nil
}

// match returns the keys of the snapshot with that kid, or all of them for "". Several keys may share a kid
// (an IdP that reuses one while rotating): all are returned, in document order, and the verification tries
// each, so the answer does not depend on which one came first. They are all the issuer's keys, so offering
// each is no wider than offering one.
func (s *keySnapshot) match(kid string) []SigningKey {
	if kid == "" {
		return s.all
	}
	return s.byKID[kid]
}

func newSnapshot(keys []jwk.Key, fetched time.Time) *keySnapshot {
	s := &keySnapshot{all: make([]SigningKey, len(keys)), byKID: make(map[string][]SigningKey, len(keys)), fetched: fetched}
	for i, key := range keys {
		s.all[i] = SigningKey{JWK: key, Public: key}
		var public any
		if err := key.Raw(&public); err == nil {
			s.all[i].Public = public
		}
		if pub, ok := s.all[i].Public.(*rsa.PublicKey); ok {
			s.all[i].rsa = newRSAKey(pub)
		}
		if kid := key.KeyID(); kid != "" {
			s.byKID[kid] = append(s.byKID[kid], s.all[i])
		}
	}
	return s
}

// install makes keys, parsed from a JWKS document whose SHA-256 is digest, the snapshot in use, with a
// version later than the one it replaces; when the document is the one already in use, the snapshot and its
// version stay. Only the running fetch (and tests, before any fetch, with a zero digest) call it.
func (k *KeySet) install(keys []jwk.Key, digest [sha256.Size]byte) {
	now := time.Now()
	defer k.loaded.Store(now.UnixNano())
	prev := k.current.Load()
	if prev != nil && digest != ([sha256.Size]byte{}) && digest == prev.digest {
		return
	}
	if prev != nil && !now.After(prev.fetched) {
		now = prev.fetched.Add(time.Nanosecond)
	}
	s := newSnapshot(keys, now)
	s.digest = digest
	k.current.Store(s)
}

// refresh runs a background fetch, or waits for the one in flight. Unlike one started by a request, it
// ends with ctx (the service stopping).
func (k *KeySet) refresh(ctx context.Context) (err error) {
	ctx, span := k.tel.startFetch(ctx, spanRefresh, k.issuer, true)
	defer func() { endFetch(span, err, 0) }()
	k.mu.Lock()
	call := k.inflight
	if call == nil {
		call = k.startFetchLocked(ctx)
	}
	k.mu.Unlock()
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// startFetchLocked starts a fetch bounded by the fetch timeout and records it as in flight. k.mu is held.
func (k *KeySet) startFetchLocked(ctx context.Context) *fetchCall {
	call := &fetchCall{done: make(chan struct{})}
	k.inflight = call
	k.lastFetch = time.Now()
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	go func() {
		defer cancel()
		err := k.fetch(ctx)
		k.mu.Lock()
		k.inflight = nil
		k.mu.Unlock()
		call.err = err
		close(call.done)
	}()
	return call
}

// fetch runs discovery when due, then fetches the JWKS and installs its usable keys. Only one fetch runs at a
// time (startFetchLocked). When the JWKS of a jwks_uri found by an earlier discovery fails, discovery runs
// again at once and, if it names another jwks_uri, that one is fetched: the IdP has moved its keys.
func (k *KeySet) fetch(ctx context.Context) (err error) {
	keys, skipped := 0, 0
	ctx, span := k.tel.startFetch(ctx, spanFetch, k.issuer, false)
	defer func() {
		endFetch(span, err, keys)
		if k.observe != nil {
			k.observe(k.issuer, err, keys, skipped)
		}
	}()
	uri, checked, err := k.discover(ctx)
	if err != nil {
		return err
	}
	parsed, digest, skipped, err := k.fetchJWKS(ctx, uri)
	if err != nil && !checked && ctx.Err() == nil {
		k.discovered = time.Time{}
		if next, _, derr := k.discover(ctx); derr == nil && next != uri {
			parsed, digest, skipped, err = k.fetchJWKS(ctx, next)
		}
	}
	if err != nil {
		k.discovered = time.Time{} // the next fetch asks discovery first
		return err
	}
	keys = len(parsed)
	k.install(parsed, digest)
	k.log.Debug("key set loaded", "keys", keys, "skipped", skipped)
	return nil
}

// fetchJWKS fetches and parses the key set at uri; digest is the SHA-256 of the document.
func (k *KeySet) fetchJWKS(ctx context.Context, uri string) (keys []jwk.Key, digest [sha256.Size]byte, skipped int, err error) {
	body, err := k.get(ctx, uri)
	if err != nil {
		return nil, digest, 0, fmt.Errorf("jwks: %w", err)
	}
	keys, skipped, err = parseKeySet(body, k.log)
	if err != nil {
		return nil, digest, skipped, fmt.Errorf("jwks: %s: %w", uri, err)
	}
	return keys, sha256.Sum256(body), skipped, nil
}

// discover returns the jwks_uri to fetch, and whether discovery was asked in this call. It asks discovery
// before the first fetch, once the last discovery is a refresh interval old, and after a failed fetch; so an
// IdP that moves its jwks_uri is followed at the latest one refresh interval later, and at once when the old
// one stops serving keys. Between those the known jwks_uri is used, so a fetch for an unknown `kid` costs one
// request. When discovery fails but a jwks_uri is known, that one is used (an earlier discovery named it).
func (k *KeySet) discover(ctx context.Context) (uri string, checked bool, err error) {
	if k.jwksURI != "" && time.Since(k.discovered) < k.every {
		return k.jwksURI, false, nil
	}
	uri, err = k.discoverOnce(ctx)
	if err != nil {
		if k.jwksURI == "" || ctx.Err() != nil {
			return "", true, err
		}
		k.log.Warn("discovery failed, using the jwks_uri found earlier", "jwks_uri", k.jwksURI, "error", err.Error())
		return k.jwksURI, true, nil
	}
	if uri != k.jwksURI {
		if k.jwksURI != "" {
			k.log.Info("jwks_uri changed", "from", k.jwksURI, "to", uri)
		}
		k.warnInsecure("jwks_uri", uri)
		k.jwksURI = uri
	}
	k.discovered = time.Now()
	return uri, true, nil
}

// discoverOnce fetches the discovery document and returns its jwks_uri, refusing a document of another issuer
// or a jwks_uri that is not an absolute http(s) URL.
func (k *KeySet) discoverOnce(ctx context.Context) (string, error) {
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := k.getJSON(ctx, k.discoveryURL, &doc); err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	if doc.Issuer != k.issuer {
		return "", fmt.Errorf("discovery: document issuer %q is not the configured issuer %q", doc.Issuer, k.issuer)
	}
	if doc.JWKSURI == "" {
		return "", errors.New("discovery: document has no jwks_uri")
	}
	if err := k.cfg.CheckEndpoint(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("discovery: jwks_uri %q %v", truncate(doc.JWKSURI), err)
	}
	return doc.JWKSURI, nil
}

// warnInsecure logs a warning when u is plain http to a host that is not a loopback one (allowed only with
// allow_insecure_http): keys fetched that way can be replaced by anyone on the path.
func (k *KeySet) warnInsecure(what, u string) {
	if config.InsecureHTTP(u) {
		k.log.Warn("signing keys are fetched over plain http from a host that is not loopback: anyone on the network path can replace them", what, u)
	}
}

// maxLoggedBytes bounds the kid, kty and error text of a skipped key in the log.
const maxLoggedBytes = 128

// parseKeySet parses a JWKS key by key, so that one key this service cannot use (an unknown `kty`, such as
// a newer algorithm family; a malformed member; private or symmetric key material, which a public key set
// never holds) costs that key only. Each skipped key is logged by index, kid and kty with the reason, never
// its material. It fails when the document is not a key set or no usable key is left.
func parseKeySet(body []byte, log *slog.Logger) (keys []jwk.Key, skipped int, err error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, 0, fmt.Errorf("decode: %w", err)
	}
	for i, raw := range doc.Keys {
		key, err := parseKey(raw)
		if err != nil {
			skipped++
			var hint struct {
				KID any `json:"kid"`
				Kty any `json:"kty"`
			}
			_ = json.Unmarshal(raw, &hint)
			log.Warn("jwks: key skipped", "index", i, "kid", logValue(hint.KID), "kty", logValue(hint.Kty), "reason", truncate(err.Error()))
			continue
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, skipped, fmt.Errorf("no usable key (%d in the document)", len(doc.Keys))
	}
	return keys, skipped, nil
}

// parseKey parses one JWK and refuses what must not verify a signature here.
func parseKey(raw json.RawMessage) (jwk.Key, error) {
	key, err := jwk.ParseKey(raw)
	if err != nil {
		return nil, err
	}
	if err := key.Validate(); err != nil { // e.g. an EC curve this build does not know, a missing member
		return nil, err
	}
	switch key.(type) {
	case jwk.RSAPrivateKey, jwk.ECDSAPrivateKey, jwk.OKPPrivateKey:
		return nil, errors.New("private key material in a public key set")
	case jwk.SymmetricKey:
		return nil, errors.New("symmetric key in a public key set")
	}
	if u := key.KeyUsage(); u != "" && u != string(jwk.ForSignature) {
		return nil, fmt.Errorf("key for use %q, not sig", u) // an encryption key never verifies a token
	}
	return key, nil
}

// logValue renders an untrusted JSON member for the log: strings cut to maxLoggedBytes, other types by name.
func logValue(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return truncate(v)
	default:
		return fmt.Sprintf("(%T)", v)
	}
}

func truncate(s string) string {
	if len(s) > maxLoggedBytes {
		return s[:maxLoggedBytes] + "…"
	}
	return s
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
