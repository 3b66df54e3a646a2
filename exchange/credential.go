package exchange

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/discovery"
	"go.opentelemetry.io/otel/metric"
)

// Exchanger is the authz.Credential of token exchange: for a resource configured with token_exchange it
// answers `authorization: Bearer <exchanged token>`, for any other resource nothing. It is safe for
// concurrent use.
type Exchanger struct {
	blocks    map[string]*block // by resource URL
	cache     *cache
	endpoints endpoints
	client    *http.Client
	now       func() time.Time
	log       *slog.Logger
	metrics   *metrics
}

// block is one resource's token_exchange, ready to use.
type block struct {
	resource string
	cfg      *config.TokenExchange
	auth     clientAuth
	actor    *actor // nil: no actor_token
	// params is the part of the cache key this block fixes (cacheKey): every parameter of its requests.
	params string
	// timeout bounds one exchange.
	timeout time.Duration
}

// Options are what an Exchanger needs besides the configuration.
type Options struct {
	// Client sends the requests to the IdP (a copy that never follows redirects); its own Timeout, if any,
	// also applies. Default: a client without a timeout of its own (each exchange is bounded by
	// token_exchange.timeout).
	Client *http.Client
	// Log receives warnings (never a token). Default: discard.
	Log *slog.Logger
	// Meter records the exchanges and cache lookups. Default: none.
	Meter metric.Meter
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// New returns the Exchanger of the resources of cfg that have token_exchange, or nil when none has: its
// secrets and keys are read now, so that a file that cannot be used is a start-up error.
func New(cfg config.Config, o Options) (*Exchanger, error) {
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	// Never follow a redirect: a 307 or 308 would send the client's token and mcp-authz's credentials to
	// wherever it points. A 3xx is then an answer that is not a token response (503).
	c := *o.Client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	o.Client = &c
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m, err := newMetrics(o.Meter)
	if err != nil {
		return nil, err
	}
	e := &Exchanger{
		blocks:    map[string]*block{},
		cache:     newCache(cfg.TokenExchangeCache.MaxEntries),
		endpoints: newEndpoints(cfg.Issuers, o.Client, o.Now),
		client:    o.Client,
		now:       o.Now,
		log:       o.Log,
		metrics:   m,
	}
	for i, r := range cfg.Resources {
		te := r.TokenExchange
		if te == nil {
			continue
		}
		p := fmt.Sprintf("resources[%d].token_exchange", i)
		auth, err := newClientAuth(te)
		if err != nil {
			return nil, fmt.Errorf("%s.%w", p, err)
		}
		b := &block{resource: r.URL, cfg: te, auth: auth, timeout: time.Duration(te.Timeout)}
		actorID := ""
		if a := te.ActorToken; a != nil {
			if b.actor, err = newActor(a, auth); err != nil {
				return nil, fmt.Errorf("%s.actor_token.%w", p, err)
			}
			actorID = b.actor.id
		}
		// Resources whose blocks ask for the same token share exchanged tokens; any difference separates them.
		b.params = strings.Join([]string{te.Issuer, te.TokenEndpoint, te.ClientID, te.Audience, te.Resource,
			te.Scope, te.RequestedTokenType, actorID}, "\x00")
		e.blocks[r.URL] = b
	}
	if len(e.blocks) == 0 {
		return nil, nil
	}
	return e, nil
}

// subjectHashKey is the Identity.Memo key of the SHA-256 of the client's token.
type subjectHashKey struct{}

// slotKey is the Identity.Memo key of a block's slot; a pointer, so that the lookup allocates nothing.
type slotKey struct{ b *block }

// slot holds, in the token cache's entry of a client token (Identity.Memo), the entry of its last exchange
// for one block: a request whose token is cached finds its exchanged token there without a lock, a hash or
// an allocation. The slots are bounded by the token cache and emptied with it; the cache (cache.go) still
// serves tokens verified afresh (token cache off) and makes one exchange per key at a time.
type slot struct {
	cur atomic.Pointer[entry]
}

func newSlot() any { return new(slot) }

// Credential implements authz.Credential.
func (e *Exchanger) Credential(ctx context.Context, g authz.Grant) ([]authz.Header, *authz.Error) {
	b := e.blocks[g.Resource]
	if b == nil {
		return nil, nil
	}
	now := e.now()
	var sl *slot
	if g.Identity != nil {
		v, ok := g.Identity.Memoized(slotKey{b})
		if !ok {
			v = g.Identity.Memo(slotKey{b}, newSlot)
		}
		sl = v.(*slot)
		if en := sl.cur.Load(); en != nil && now.Before(en.fresh) {
			e.metrics.lookup(ctx, true)
			return en.headers, nil
		}
	}
	k := cacheKey{subject: subjectHash(g), params: b.params}
	if en, ok := e.cache.get(k, now); ok {
		e.metrics.lookup(ctx, true)
		if sl != nil {
			sl.cur.Store(en)
		}
		return en.headers, nil
	}
	e.metrics.lookup(ctx, false)
	en, err, _ := e.cache.do(ctx, k, e.now, func() (*entry, *authz.Error) {
		// The exchange serves every request waiting for this key: it runs to its own deadline even if the
		// request that started it goes away.
		xctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.timeout)
		defer cancel()
		en, err := e.exchange(xctx, b, g)
		e.metrics.exchanged(ctx, err)
		if err != nil {
			e.log.Warn("token exchange failed", "resource", b.resource, "status", err.Status, "error", err.Description)
		}
		return en, err
	})
	if err != nil {
		return nil, err
	}
	if sl != nil && e.cache.size > 0 && now.Before(en.fresh) { // kept only where the cache would keep it
		sl.cur.Store(en)
	}
	return en.headers, nil
}

// subjectHash is the SHA-256 of the client's token, computed once per token while the token cache holds it.
func subjectHash(g authz.Grant) [sha256.Size]byte {
	if g.Identity == nil {
		return sha256.Sum256([]byte(g.Token))
	}
	if v, ok := g.Identity.Memoized(subjectHashKey{}); ok {
		return v.([sha256.Size]byte)
	}
	return g.Identity.Memo(subjectHashKey{}, func() any { return sha256.Sum256([]byte(g.Token)) }).([sha256.Size]byte)
}

// exchange makes one token exchange for g at b's token endpoint.
func (e *Exchanger) exchange(ctx context.Context, b *block, g authz.Grant) (*entry, *authz.Error) {
	endpoint, issuer := b.cfg.TokenEndpoint, b.cfg.Issuer
	switch {
	case issuer == "" && g.Identity != nil:
		issuer = g.Identity.Issuer
	case g.Identity != nil && g.Identity.Issuer != issuer:
		// Another trusted IdP's token: it is not sent to this IdP, nor are mcp-authz's credentials used for it.
		return nil, &authz.Error{Status: http.StatusForbidden, Description: quote("token exchange is configured at " + issuer + ", not at the token's issuer " + g.Identity.Issuer)}
	}
	if endpoint == "" {
		var err error
		if endpoint, err = e.endpoints.tokenEndpoint(ctx, issuer); err != nil {
			return nil, errUnavailable("token exchange failed: " + err.Error())
		}
	}
	now := e.now()
	form := url.Values{
		"grant_type":           {grantTokenExchange},
		"subject_token":        {g.Token},
		"subject_token_type":   {config.TokenTypeAccessToken},
		"requested_token_type": {b.cfg.RequestedTokenType},
	}
	if b.cfg.Audience != "" {
		form.Set("audience", b.cfg.Audience)
	}
	if b.cfg.Resource != "" {
		form.Set("resource", b.cfg.Resource)
	}
	if b.cfg.Scope != "" {
		form.Set("scope", b.cfg.Scope)
	}
	if b.actor != nil {
		tok, err := b.actor.token(ctx, e.client, endpoint, issuer, now)
		if err != nil {
			return nil, err
		}
		form.Set("actor_token", tok)
		form.Set("actor_token_type", b.actor.tokenType)
	}
	is, err := post(ctx, e.client, tokenRequest{endpoint: endpoint, issuer: issuer, form: form, auth: b.auth}, now, "token exchange")
	if err != nil {
		return nil, err
	}
	en := &entry{headers: []authz.Header{{Name: "authorization", Value: "Bearer " + is.token}}, fresh: freshUntil(now, is.expiry)}
	if g.Identity != nil && !g.Identity.Expiry.IsZero() && g.Identity.Expiry.Before(en.fresh) {
		en.fresh = g.Identity.Expiry // the client's token is refused from then on anyway
	}
	return en, nil
}

// maxSkew is how long before its expiry an exchanged token stops being handed out, at most: the upstream
// and the API behind it must still accept it when they get it. A short-lived token keeps a tenth of its
// lifetime as margin instead.
const maxSkew = 30 * time.Second

// freshUntil is when a token issued at now that expires at expiry stops being handed out; now (not cached)
// when its expiry is unknown or already too close.
func freshUntil(now, expiry time.Time) time.Time {
	if expiry.IsZero() || !expiry.After(now) {
		return now
	}
	skew := min(maxSkew, expiry.Sub(now)/10)
	return expiry.Add(-skew)
}

// endpoints finds the token endpoint of each configured issuer through its discovery document
// (discovery.Document: kept, refreshed, failures retried at most every discovery.RetryAfter). It is asked
// only when a token is exchanged, never on a cache hit.
type endpoints map[string]*discovery.Document // by issuer

func newEndpoints(issuers []config.Issuer, client *http.Client, now func() time.Time) endpoints {
	p := endpoints{}
	for _, is := range issuers {
		p[is.Issuer] = discovery.New(is, client, now, discovery.TokenEndpoint)
	}
	return p
}

// tokenEndpoint returns issuer's token_endpoint.
func (p endpoints) tokenEndpoint(ctx context.Context, issuer string) (string, error) {
	d, ok := p[issuer]
	if !ok {
		return "", fmt.Errorf("issuer %q is not configured", issuer)
	}
	m, err := d.Get(ctx)
	if err != nil {
		return "", err
	}
	return m.TokenEndpoint, nil
}
