// Package idp is a small but real OpenID provider for the tests of mcp-authz and for local development.
//
// A Provider serves OpenID Connect discovery and RFC 8414 metadata, a JWKS, the authorization-code flow
// with PKCE (S256 only), rotating refresh tokens, client credentials and RFC 7591 dynamic client
// registration. It has no login page: /authorize approves every valid request as one configured user.
// Tests can also mint arbitrary, even hostile, tokens with [Provider.Mint] and [UnsignedToken], rotate
// keys, count JWKS fetches and take the provider down.
//
// The issuer URL must be known before the provider is created, so wire the listener first:
//
//	srv := httptest.NewUnstartedServer(nil) // listens on 127.0.0.1:0 already
//	p, err := idp.New("http://" + srv.Listener.Addr().String())
//	...
//	srv.Config.Handler = p.Handler()
//	srv.Start()
//	defer srv.Close()
//
// It approves everyone: never expose it beyond a development machine.
package idp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Lifetimes of the artefacts the provider hands out.
const (
	codeTTL    = 60 * time.Second
	refreshTTL = 24 * time.Hour
)

// Shape selects the claim names of the access tokens the provider issues, to mimic a given IdP.
type Shape int

const (
	// ShapeStandard follows RFC 9068: client_id, scope (space-separated string) and aud.
	ShapeStandard Shape = iota
	// ShapeOkta uses cid instead of client_id and scp (array of strings) instead of scope.
	ShapeOkta
	// ShapeCognito uses client_id, scope (string) and token_use "access", and never sets aud.
	ShapeCognito
)

// String returns the name ParseShape accepts.
func (s Shape) String() string {
	switch s {
	case ShapeStandard:
		return "standard"
	case ShapeOkta:
		return "okta"
	case ShapeCognito:
		return "cognito"
	}
	return fmt.Sprintf("Shape(%d)", int(s))
}

// ParseShape maps "standard", "okta" or "cognito" to its Shape.
func ParseShape(name string) (Shape, error) {
	for _, s := range []Shape{ShapeStandard, ShapeOkta, ShapeCognito} {
		if strings.EqualFold(name, s.String()) {
			return s, nil
		}
	}
	return 0, fmt.Errorf("unknown claim shape %q (want standard, okta or cognito)", name)
}

// Client is a statically registered OAuth client. A client without Secret is public (PKCE only,
// token_endpoint_auth_method none); one with a Secret is confidential and may also use client_credentials.
// Public clients may always use loopback redirect URIs (RFC 8252); other redirect URIs must be listed.
type Client struct {
	// ID is the client_id; it must not be empty.
	ID string
	// Secret makes the client confidential (client_secret_basic or client_secret_post).
	Secret string
	// RedirectURIs are the exact redirect URIs the client may use.
	RedirectURIs []string
}

// client is a registered client with the grant types it may use.
type client struct {
	Client
	grantTypes []string // nil allows every grant the client type supports
}

func (c *client) public() bool { return c.Secret == "" }

func (c *client) allowsGrant(grantType string) bool {
	return c.grantTypes == nil || slices.Contains(c.grantTypes, grantType)
}

// user is the resource owner /authorize approves.
type user struct {
	sub    string
	email  string
	groups []string
}

// signingKey is one key of the provider: the private JWK it publishes (public part) and the raw signer.
type signingKey struct {
	jwk jwk.Key
	raw crypto.Signer
	alg jwa.SignatureAlgorithm
}

// Provider is an in-memory OpenID provider. All its methods are safe for concurrent use.
type Provider struct {
	issuer    string
	prefix    string // path of the issuer URL, without trailing slash; endpoints live under it
	scopes    []string
	user      user
	shape     Shape
	accessTTL time.Duration
	now       func() time.Time

	mu          sync.Mutex
	keys        []signingKey // oldest first; the last one signs
	clients     map[string]*client
	codes       map[string]*authCode
	refresh     map[string]*refreshGrant
	down        bool
	jwksFetches int
}

// Option configures a Provider at creation.
type Option func(*Provider)

// WithScopes replaces the scopes the provider advertises and accepts. The default is openid, profile,
// email, offline_access, tools:read, tools:call and tools:admin.
func WithScopes(scopes []string) Option {
	return func(p *Provider) { p.scopes = slices.Clone(scopes) }
}

// WithUser sets the user /authorize approves as. The default is sub "dev-user", email
// "dev-user@example.com", groups ["developers"].
func WithUser(sub, email string, groups []string) Option {
	return func(p *Provider) { p.user = user{sub: sub, email: email, groups: slices.Clone(groups)} }
}

// WithClient registers a static client, replacing any client with the same ID. The defaults, public
// client "mcp-client" and confidential client "demo-service" with secret "demo-secret", stay registered
// unless replaced.
func WithClient(c Client) Option {
	return func(p *Provider) {
		c.RedirectURIs = slices.Clone(c.RedirectURIs)
		p.clients[c.ID] = &client{Client: c}
	}
}

// WithClaimShape selects the claim names of issued access tokens. The default is ShapeStandard.
func WithClaimShape(s Shape) Option {
	return func(p *Provider) { p.shape = s }
}

// WithAccessTokenTTL sets the lifetime of issued access tokens and the default exp of Mint. The default
// is one hour.
func WithAccessTokenTTL(d time.Duration) Option {
	return func(p *Provider) { p.accessTTL = d }
}

// New creates a provider for issuer, an absolute http or https URL without query or fragment, with one
// RSA-2048 signing key. If issuer has a path, the endpoints live under it and the well-known documents
// are served both path-inserted (RFC 8414) and path-appended (OpenID Connect Discovery).
func New(issuer string, opts ...Option) (*Provider, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return nil, fmt.Errorf("parse issuer: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("issuer %q: want an absolute http(s) URL without query or fragment", issuer)
	}
	p := &Provider{
		issuer:    issuer,
		prefix:    strings.TrimSuffix(u.EscapedPath(), "/"),
		scopes:    []string{"openid", "profile", "email", "offline_access", "tools:read", "tools:call", "tools:admin"},
		user:      user{sub: "dev-user", email: "dev-user@example.com", groups: []string{"developers"}},
		accessTTL: time.Hour,
		now:       time.Now,
		clients:   map[string]*client{},
		codes:     map[string]*authCode{},
		refresh:   map[string]*refreshGrant{},
	}
	WithClient(Client{ID: "mcp-client"})(p)
	WithClient(Client{ID: "demo-service", Secret: "demo-secret"})(p)
	for _, opt := range opts {
		opt(p)
	}
	if _, ok := p.clients[""]; ok {
		return nil, fmt.Errorf("client with empty ID")
	}
	if p.accessTTL <= 0 {
		return nil, fmt.Errorf("access token TTL %v: must be positive", p.accessTTL)
	}
	if _, err := p.RotateKey(jwa.RS256.String()); err != nil {
		return nil, fmt.Errorf("create initial key: %w", err)
	}
	return p, nil
}

// Issuer returns the issuer URL exactly as given to New.
func (p *Provider) Issuer() string { return p.issuer }

// RotateKey generates a new key for alg ("RS256", "ES256" or "EdDSA"), makes it the active signing key
// and publishes it in the JWKS next to the previous keys, which stay published. It returns the new kid.
func (p *Provider) RotateKey(alg string) (string, error) {
	k, err := newSigningKey(jwa.SignatureAlgorithm(alg))
	if err != nil {
		return "", fmt.Errorf("rotate key: %w", err)
	}
	p.mu.Lock()
	p.keys = append(p.keys, k)
	p.mu.Unlock()
	return k.jwk.KeyID(), nil
}

func newSigningKey(alg jwa.SignatureAlgorithm) (signingKey, error) {
	var raw crypto.Signer
	var err error
	switch alg {
	case jwa.RS256:
		raw, err = rsa.GenerateKey(rand.Reader, 2048)
	case jwa.ES256:
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jwa.EdDSA:
		_, raw, err = ed25519.GenerateKey(rand.Reader)
	default:
		return signingKey{}, fmt.Errorf("unsupported key algorithm %q (want RS256, ES256 or EdDSA)", alg)
	}
	if err != nil {
		return signingKey{}, fmt.Errorf("generate %s key: %w", alg, err)
	}
	key, err := jwk.FromRaw(raw)
	if err != nil {
		return signingKey{}, fmt.Errorf("wrap %s key as JWK: %w", alg, err)
	}
	if err := jwk.AssignKeyID(key); err != nil {
		return signingKey{}, fmt.Errorf("assign kid: %w", err)
	}
	if err := key.Set(jwk.AlgorithmKey, alg); err != nil {
		return signingKey{}, fmt.Errorf("set alg: %w", err)
	}
	if err := key.Set(jwk.KeyUsageKey, jwk.ForSignature); err != nil {
		return signingKey{}, fmt.Errorf("set use: %w", err)
	}
	return signingKey{jwk: key, raw: raw, alg: alg}, nil
}

// PublicJWKS returns a fresh set holding the public part of every key, oldest first: what /jwks serves.
func (p *Provider) PublicJWKS() jwk.Set {
	p.mu.Lock()
	defer p.mu.Unlock()
	set := jwk.NewSet()
	for _, k := range p.keys {
		pub, err := k.jwk.PublicKey()
		if err != nil {
			// Every key was generated here from a supported type; failing is a programming error.
			panic(fmt.Sprintf("idp: public part of key %s: %v", k.jwk.KeyID(), err))
		}
		if err := set.AddKey(pub); err != nil {
			panic(fmt.Sprintf("idp: add key %s to set: %v", k.jwk.KeyID(), err))
		}
	}
	return set
}

// ActiveKey returns a copy of the private key that currently signs, with its kid, alg and use.
func (p *Provider) ActiveKey() jwk.Key {
	k := p.activeKey()
	c, err := k.jwk.Clone()
	if err != nil {
		panic(fmt.Sprintf("idp: clone key %s: %v", k.jwk.KeyID(), err))
	}
	return c
}

func (p *Provider) activeKey() signingKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[len(p.keys)-1]
}

// signingAlgs lists the algorithms of the published keys, without duplicates.
func (p *Provider) signingAlgs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var algs []string
	for _, k := range p.keys {
		if !slices.Contains(algs, k.alg.String()) {
			algs = append(algs, k.alg.String())
		}
	}
	return algs
}

// SetDown makes every endpoint answer 503 while down is true.
func (p *Provider) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

func (p *Provider) isDown() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down
}

// JWKSFetches returns how many JWKS requests the provider has answered with 200; requests refused while
// down are not counted.
func (p *Provider) JWKSFetches() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.jwksFetches
}
