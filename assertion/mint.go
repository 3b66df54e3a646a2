package assertion

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/config"
)

// Type is the assertion's JWT `typ` header. It is not `JWT` nor RFC 9068's `at+jwt`, so that a verifier
// that checks it never takes an access token for an assertion, nor the reverse.
const Type = "mcp-identity+jwt"

// Claim names of the assertion, besides the registered iss, aud, sub, iat, exp and jti.
const (
	// ClaimClientID is the OAuth client the caller's token was issued to.
	ClaimClientID = "client_id"
	// ClaimScope holds the token's scopes, space-separated.
	ClaimScope = "scope"
	// ClaimActor is the RFC 8693 actor: {"sub": <client id>}, the MCP client acting for the user.
	ClaimActor = "act"
	// ClaimTokenIssuer is the `iss` of the access token the client presented (the IdP).
	ClaimTokenIssuer = "token_iss"
	// ClaimRequestID is the x-request-id of the request the assertion was minted for.
	ClaimRequestID = "request_id"
	// ClaimPolicyRevision is the revision of the policy generation that allowed that request.
	ClaimPolicyRevision = "policy_revision"
)

// reserved are the claims mcp-authz sets: a policy's assertion_claims cannot override them.
var reserved = []string{"iss", "aud", "sub", "iat", "exp", "nbf", "jti", ClaimClientID, ClaimScope, ClaimActor,
	ClaimTokenIssuer, ClaimRequestID, ClaimPolicyRevision}

// Minter adds the signed identity assertion to the allows of the resources configured with
// identity_assertion: true. It is an authz.Credential, safe for concurrent use.
//
// The assertion is a JWT (typ Type) signed with the current key of Keys, holding:
//
//	iss              identity_assertion.issuer (default public_url)
//	aud              the resource URL
//	sub              the token's subject
//	client_id        the token's client
//	scope            the token's scopes, space-separated
//	act              {"sub": client_id}: the MCP client acting for the user (RFC 8693)
//	token_iss        the token's issuer
//	iat, exp         exp = min(iat + ttl, the token's exp)
//	jti              128 random bits, unique per minted assertion
//	request_id       the x-request-id of the request that minted it
//	policy_revision  the revision of the policy that allowed that request
//
// plus the policy's assertion_claims, without the reserved names above (dropped with a warning).
//
// An assertion is reused for the same token and resource (cache.go) while more than half its lifetime
// is left, the signing key and the policy revision are the same and the policy asks for the same claims:
// a reused assertion carries the request_id of the request that minted it, not of the one it rides on.
type Minter struct {
	keys      *Keys
	issuer    string
	header    string
	ttl       time.Duration
	resources map[string]*slotKey // resources with the assertion on, with their cache key
	now       func() time.Time
	log       *slog.Logger
	minted    atomic.Uint64
	warned    sync.Map // reserved claim names a policy set, each warned about once (a policy sets one on every allow)
}

// NewMinter returns the Minter of cfg's identity_assertion block, signing with keys; now is its clock
// (nil: time.Now).
func NewMinter(cfg config.Config, keys *Keys, log *slog.Logger, now func() time.Time) *Minter {
	if now == nil {
		now = time.Now
	}
	a := cfg.IdentityAssertion
	m := &Minter{keys: keys, issuer: a.Issuer, header: a.Header, ttl: time.Duration(a.TTL), resources: map[string]*slotKey{}, now: now, log: log}
	for _, r := range cfg.Resources {
		if r.IdentityAssertion {
			m.resources[r.URL] = &slotKey{m: m, resource: r.URL}
		}
	}
	return m
}

// Minted counts the assertions signed so far (the others were reused).
func (m *Minter) Minted() uint64 { return m.minted.Load() }

// Credential implements authz.Credential: the assertion header for a resource that has it on, nothing for
// the others.
func (m *Minter) Credential(ctx context.Context, g authz.Grant) ([]authz.Header, *authz.Error) {
	key, on := m.resources[g.Resource]
	if !on {
		return nil, nil
	}
	extra := m.extraClaims(ctx, g.AssertionClaims)
	hs, err := m.assertion(key, g.Identity, g, extra, m.now())
	if err != nil {
		m.log.ErrorContext(ctx, "identity assertion not signed", "error", err.Error())
		return nil, &authz.Error{Status: http.StatusServiceUnavailable, Description: "identity assertion could not be signed", Unavailable: true}
	}
	return hs, nil // shared with the cache: authz copies the headers out, never modifies them
}

// extraClaims is the JSON object of the policy's claims without the reserved ones, or "" when none are left.
func (m *Minter) extraClaims(ctx context.Context, cs map[string]any) string {
	if len(cs) == 0 {
		return ""
	}
	keep := make(map[string]any, len(cs))
	for name, v := range cs {
		if slices.Contains(reserved, name) {
			if _, seen := m.warned.LoadOrStore(name, true); !seen {
				m.log.WarnContext(ctx, "policy assertion claim ignored: mcp-authz sets it (warned once per claim)", "claim", name)
			}
			continue
		}
		keep[name] = v
	}
	if len(keep) == 0 {
		return ""
	}
	b, err := json.Marshal(keep) // keys sorted: the same claims give the same string, which the cache compares
	if err != nil {
		m.log.WarnContext(ctx, "policy assertion claims ignored: not JSON", "error", err.Error())
		return ""
	}
	return string(b)
}

// actor is the RFC 8693 `act` claim.
type actor struct {
	Sub string `json:"sub"`
}

// claims are the claims mcp-authz sets.
type claims struct {
	Iss            string `json:"iss"`
	Aud            string `json:"aud"`
	Sub            string `json:"sub,omitempty"`
	ClientID       string `json:"client_id,omitempty"`
	Scope          string `json:"scope,omitempty"`
	Act            *actor `json:"act,omitempty"`
	TokenIss       string `json:"token_iss,omitempty"`
	Iat            int64  `json:"iat"`
	Exp            int64  `json:"exp"`
	Jti            string `json:"jti"`
	RequestID      string `json:"request_id,omitempty"`
	PolicyRevision string `json:"policy_revision,omitempty"`
}

// mint signs a new assertion for g at now with key, extra being the policy's claims as a JSON object (or
// ""); it returns the compact JWS and its exp.
func (m *Minter) mint(key *signingKey, g authz.Grant, extra string, now time.Time) (string, time.Time, error) {
	id := g.Identity
	iat := now.Unix()
	exp := iat + int64(m.ttl/time.Second)
	if !id.Expiry.IsZero() {
		exp = min(exp, id.Expiry.Unix())
	}
	var jti [16]byte
	rand.Read(jti[:]) // never fails (crypto/rand)
	c := claims{Iss: m.issuer, Aud: g.Resource, Sub: id.Subject, ClientID: id.ClientID, Scope: strings.Join(id.Scopes, " "),
		TokenIss: id.Issuer, Iat: iat, Exp: exp, Jti: base64URL(jti[:]), RequestID: g.RequestID, PolicyRevision: g.PolicyRevision}
	if id.ClientID != "" {
		c.Act = &actor{Sub: id.ClientID}
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", time.Time{}, err
	}
	if extra != "" { // splice the policy's object into ours: {...ours,...theirs}
		payload = append(append(payload[:len(payload)-1], ','), extra[1:]...)
	}
	hdr := jws.NewHeaders()
	for name, v := range map[string]any{jws.TypeKey: Type, jws.KeyIDKey: key.kid} {
		if err := hdr.Set(name, v); err != nil {
			return "", time.Time{}, err
		}
	}
	signed, err := jws.Sign(payload, jws.WithKey(key.alg, key.signer, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", time.Time{}, err
	}
	m.minted.Add(1)
	return string(signed), time.Unix(exp, 0), nil
}

func base64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
