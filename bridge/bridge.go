// Package bridge is the OAuth bridge: for an identity provider that lets MCP clients neither register
// dynamically nor identify with a Client ID Metadata Document, it is the authorization server the MCP clients
// see. Clients register with it (CIMD or RFC 7591), it asks the user's consent, then runs the
// authorization-code flow with PKCE through to the IdP with one client the operator registered there. The
// access tokens stay the IdP's, verified by mcp-authz as any other.
//
// It keeps no state between requests: what a later step needs (the pending authorization, the code, a DCR
// client's metadata) travels sealed (AES-GCM, purpose-bound, short-lived) in the state, the code or the
// client id, so any replica with the same sealing keys serves any step. docs/bridge.md has the design and its
// threat model.
package bridge

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/discovery"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Lifetimes of what the bridge seals.
const (
	stateTTL   = 10 * time.Minute // an authorization at the IdP, the consent form
	codeTTL    = 60 * time.Second // the code given to the MCP client
	bindingTTL = 24 * time.Hour   // the browser-binding cookie, renewed by every authorization
)

// Bridge serves the bridged issuers' authorization servers. It is safe for concurrent use.
type Bridge struct {
	cfg       config.Bridge
	issuers   []*issuer
	resources []config.Resource
	scopes    []string // every resource's scopes_supported, for the metadata
	sealer    *Sealer
	redirects redirectPolicy
	cimd      *cimdFetcher
	replay    *replayCache
	client    *http.Client // to the IdPs
	log       *slog.Logger
	now       func() time.Time
	cookies   cookieNames
	publicURL *url.URL
	meter     metric.Meter
	decisions metric.Int64Counter // mcp_authz.bridge.decisions{event, outcome, bridge}
}

// issuer is one bridged issuer.
type issuer struct {
	cfg       config.IssuerBridge
	id        string
	iss       string // the bridge's issuer identifier: {public_url}/oauth/{id}
	path      string // its URL path
	secret    string // the IdP client's secret; "" for a public client
	idp       *discovery.Document
	idpIssuer string
}

// Option changes a Bridge built by New.
type Option func(*Bridge)

// WithHTTPClient sends the requests to the IdPs (discovery, token) with c instead of a client with an 8 s
// timeout (within the HTTP listener's 10 s write timeout).
func WithHTTPClient(c *http.Client) Option { return func(b *Bridge) { b.client = c } }

// WithClock tells time with now instead of time.Now.
func WithClock(now func() time.Time) Option { return func(b *Bridge) { b.now = now } }

// WithCIMDResolver resolves the host names of Client ID Metadata Document URLs with lookup instead of the
// system resolver; the addresses it returns are checked as any others.
func WithCIMDResolver(lookup Resolver) Option { return func(b *Bridge) { b.cimd.lookup = lookup } }

// WithCIMDRootCAs verifies the TLS certificates of Client ID Metadata Document hosts with pool instead of
// the system roots (tests with a local https server; a private CA).
func WithCIMDRootCAs(pool *x509.CertPool) Option {
	return func(b *Bridge) { b.cimd.transport.TLSClientConfig.RootCAs = pool }
}

// WithMeter records the bridge's metrics (decisions by event and outcome) with m instead of nowhere.
func WithMeter(m metric.Meter) Option { return func(b *Bridge) { b.meter = m } }

// New builds the bridge of cfg, or returns nil when cfg has no bridge block. It reads the sealing keys and the
// client secrets, but fetches nothing yet.
func New(cfg config.Config, log *slog.Logger, opts ...Option) (*Bridge, error) {
	if cfg.Bridge == nil {
		return nil, nil
	}
	keys, err := LoadKeys(cfg.Bridge.SealingKeys)
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	pu, err := url.Parse(cfg.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("bridge: public_url: %w", err)
	}
	b := &Bridge{
		cfg:       *cfg.Bridge,
		resources: cfg.Resources,
		redirects: newRedirectPolicy(cfg.Bridge.RedirectURIs, cfg.Bridge.LoopbackRedirects()),
		replay:    newReplayCache(1 << 16),
		// Redirects are not followed: a token request carries the client secret and the code.
		client: &http.Client{Timeout: 8 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		log:       log.With("component", "bridge"),
		now:       time.Now,
		publicURL: pu,
		meter:     noop.NewMeterProvider().Meter(""),
	}
	b.cimd = newCIMDFetcher(cfg.Bridge.CIMD)
	b.cookies = newCookieNames(pu)
	for _, o := range opts {
		o(b)
	}
	b.cimd.now = b.now
	if b.decisions, err = b.meter.Int64Counter("mcp_authz.bridge.decisions", metric.WithUnit("{decision}"),
		metric.WithDescription("OAuth bridge decisions, by event (register, authorize, consent, callback, token, refresh) and outcome (allow, deny, error)")); err != nil {
		return nil, fmt.Errorf("bridge: metric mcp_authz.bridge.decisions: %w", err)
	}
	b.replay.now = b.now
	if b.sealer, err = NewSealer(keys, b.now); err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	seen := map[string]bool{}
	for _, r := range cfg.Resources {
		for _, s := range r.ScopesSupported {
			if !seen[s] {
				seen[s] = true
				b.scopes = append(b.scopes, s)
			}
		}
	}
	for _, is := range cfg.Issuers {
		if is.Bridge == nil {
			continue
		}
		iss := config.BridgeIssuer(cfg.PublicURL, is)
		u, _ := url.Parse(iss)
		bi := &issuer{cfg: *is.Bridge, id: is.Bridge.ID, iss: iss, path: u.EscapedPath(), idpIssuer: is.Issuer}
		if f := is.Bridge.ClientSecretFile; f != "" {
			s, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("bridge %s: client secret: %w", bi.id, err)
			}
			bi.secret = strings.TrimSpace(string(s))
		}
		bi.idp = discovery.New(is, b.client, b.now, discovery.AuthorizationEndpoint, discovery.TokenEndpoint)
		b.issuers = append(b.issuers, bi)
	}
	return b, nil
}

// Issuers returns the bridges' issuer identifiers.
func (b *Bridge) Issuers() []string {
	var out []string
	for _, is := range b.issuers {
		out = append(out, is.iss)
	}
	return out
}

// Run logs the bridges' issuer identifiers, then fetches every bridged IdP's discovery document once, so that
// the first user does not wait for it; it returns when done or when ctx ends. A failure is logged; the
// document is fetched again when needed.
func (b *Bridge) Run(ctx context.Context) {
	b.log.Info("OAuth bridge serving", "issuers", b.Issuers())
	for _, is := range b.issuers {
		if _, err := is.idp.Get(ctx); err != nil && ctx.Err() == nil {
			b.log.Warn("bridge: IdP discovery failed; retried on first use", "bridge", is.id, "error", err.Error())
		}
	}
}

// Routes adds the bridges' endpoints to mux: the authorization server metadata at the RFC 8414 and OpenID
// Connect paths, and authorize, consent, callback, token and register under each issuer identifier.
func (b *Bridge) Routes(mux *http.ServeMux) {
	for _, is := range b.issuers {
		meta := b.withCORS(b.metadataHandler(is))
		for _, p := range []string{
			"/.well-known/oauth-authorization-server" + is.path,
			"/.well-known/openid-configuration" + is.path,
			is.path + "/.well-known/openid-configuration",
			is.path + "/.well-known/oauth-authorization-server",
		} {
			mux.Handle("GET "+p, meta)
			mux.Handle("OPTIONS "+p, meta)
		}
		mux.Handle("GET "+is.path+"/authorize", b.handler(is, b.authorize))
		mux.Handle("POST "+is.path+"/consent", b.handler(is, b.consent))
		mux.Handle("GET "+is.path+"/callback", b.handler(is, b.callback))
		mux.Handle("POST "+is.path+"/token", b.withCORS(b.handler(is, b.token)))
		mux.Handle("OPTIONS "+is.path+"/token", b.withCORS(http.NotFoundHandler()))
		mux.Handle("POST "+is.path+"/register", b.withCORS(b.handler(is, b.register)))
		mux.Handle("OPTIONS "+is.path+"/register", b.withCORS(http.NotFoundHandler()))
	}
}

func (b *Bridge) handler(is *issuer, f func(*issuer, http.ResponseWriter, *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f(is, w, r) })
}

// withCORS lets browser-based MCP clients read the metadata and call the token and registration endpoints
// cross-origin; none of them uses cookies, so any origin may. It answers preflight requests itself.
func (b *Bridge) withCORS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, MCP-Protocol-Version")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}
