package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// AssertionType is the `typ` of mcp-authz's identity assertions (package assertion's Type).
const AssertionType = "mcp-identity+jwt"

// IdentityOptions says how to verify mcp-authz's signed identity assertion.
type IdentityOptions struct {
	// JWKSURL is mcp-authz's key set: <public_url>/.well-known/jwks.json.
	JWKSURL string
	// Issuer is the assertion's expected `iss` (mcp-authz's identity_assertion.issuer, default public_url).
	Issuer string
	// Audience is this server's resource URL, as configured in mcp-authz: an assertion minted for
	// another resource is refused.
	Audience string
	// Header carries the assertion. Default x-mcp-identity.
	Header string
	// Client fetches the JWKS. Default a client with a 10s timeout.
	Client *http.Client
}

// IdentityVerifier checks the identity assertion of each request: signature against mcp-authz's JWKS
// (fetched and cached; fetched again, at most every 10s, when an assertion names a key it lacks, as after
// a key rotation), typ, iss, aud, exp and iat (5s of clock skew). It is safe for concurrent use.
type IdentityVerifier struct {
	o     IdentityOptions
	cache *jwk.Cache

	mu          sync.Mutex
	lastRefresh time.Time
}

// NewIdentityVerifier returns a verifier whose key set cache lives until ctx ends. It fetches nothing yet.
func NewIdentityVerifier(ctx context.Context, o IdentityOptions) (*IdentityVerifier, error) {
	if o.JWKSURL == "" || o.Issuer == "" || o.Audience == "" {
		return nil, errors.New("identity verifier: the JWKS URL, the issuer and the audience are required")
	}
	if o.Header == "" {
		o.Header = "x-mcp-identity"
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	c := jwk.NewCache(ctx)
	if err := c.Register(o.JWKSURL, jwk.WithHTTPClient(o.Client), jwk.WithMinRefreshInterval(time.Minute)); err != nil {
		return nil, fmt.Errorf("identity verifier: %w", err)
	}
	return &IdentityVerifier{o: o, cache: c}, nil
}

// Verify returns the verified assertion of r, or why there is none.
func (v *IdentityVerifier) Verify(ctx context.Context, r *http.Request) (jwt.Token, error) {
	values := r.Header.Values(v.o.Header)
	if len(values) > 1 {
		// A proxy that appended its copy to a client's: which one a reader takes is a guess, so neither.
		return nil, errors.New("identity assertion header given more than once")
	}
	raw := r.Header.Get(v.o.Header)
	if raw == "" {
		return nil, errors.New("no identity assertion")
	}
	msg, err := jws.Parse([]byte(raw))
	if err != nil || len(msg.Signatures()) != 1 {
		return nil, errors.New("identity assertion is not a compact JWS")
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	if hdr.Type() != AssertionType {
		return nil, fmt.Errorf("identity assertion typ %q, want %s", hdr.Type(), AssertionType)
	}
	set, err := v.cache.Get(ctx, v.o.JWKSURL)
	if err != nil {
		return nil, fmt.Errorf("identity assertion keys: %w", err)
	}
	if _, known := set.LookupKeyID(hdr.KeyID()); !known && v.mayRefresh() {
		if set, err = v.cache.Refresh(ctx, v.o.JWKSURL); err != nil {
			return nil, fmt.Errorf("identity assertion keys: %w", err)
		}
	}
	tok, err := jwt.Parse([]byte(raw), jwt.WithKeySet(set, jws.WithRequireKid(true)), jwt.WithValidate(true),
		jwt.WithIssuer(v.o.Issuer), jwt.WithAudience(v.o.Audience), jwt.WithRequiredClaim("exp"), jwt.WithRequiredClaim("sub"),
		jwt.WithAcceptableSkew(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("identity assertion refused: %w", err)
	}
	return tok, nil
}

// mayRefresh reports whether an unknown kid may fetch the key set again (at most every 10s).
func (v *IdentityVerifier) mayRefresh() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if time.Since(v.lastRefresh) < 10*time.Second {
		return false
	}
	v.lastRefresh = time.Now()
	return true
}

// identityRefusal is the body of a request refused for its identity assertion.
const identityRefusal = `{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Unauthorized: no valid identity assertion"}}`
