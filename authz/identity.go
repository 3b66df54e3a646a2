package authz

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcp-authz/mcp-authz/policy"
)

// Identity is what a verified token says about the caller, with the claim names of the different IdPs
// normalized: the client from `client_id`, `cid` (Okta), `azp` (Entra, Keycloak) or `appid` (Entra v1); the
// scopes from a space-separated `scope` string or an `scp` array (Okta, Hydra, Entra).
//
// Its strings are the values of the identity headers an allow sets, so newIdentity checks them once per
// token, where they are made (headerValue; cached tokens keep the result), and the Authorizer refuses a
// token with one the headers cannot carry before any policy sees it.
type Identity struct {
	Subject  string
	Issuer   string
	ClientID string
	// Email is the token's `email` when its `email_verified` claim is true (the JSON boolean, or the string
	// "true" some IdPs send), else empty: it goes upstream as the email identity header, and an address the
	// IdP has not verified says nothing about who the caller is. Claims keep `email` as issued.
	Email  string
	Scopes []string
	// Claims are all the token's claims, as decoded JSON.
	Claims map[string]any
	// Expiry is the token's exp.
	Expiry time.Time

	// policyToken holds the `token` member of the policy input built from the fields above for the claim
	// set of the generation that last asked (policyTerm): built once per cached token and generation, so
	// that the decision cache keys its lookups on it and the token's later requests do not rebuild it.
	// Shared by the copies the token cache hands out; nil for a token the cache does not hold.
	policyToken *atomic.Pointer[tokenTerm]
	// unsendable is the name of the first claim whose value the identity headers cannot carry as it is
	// (headerValue; a scope also must not hold SP or HTAB, since the scopes header is space-separated), or
	// empty when they can carry them all.
	unsendable string
	// memo holds what adapters derive from the identity (Memo); shared by the copies the token cache hands
	// out, so it is computed once per cached token; nil for a token the cache does not hold.
	memo *sync.Map
	// repeat is true for a token the cache answered: its second request or a later one. What is cheap to
	// derive but costly to keep is kept only for such tokens, so that a token used once does not pay for it.
	repeat bool
}

// Memoized returns what Memo stored under key for this cached identity, if anything: a caller on a hot
// path looks it up before making a build function.
func (id *Identity) Memoized(key any) (any, bool) {
	if id.memo == nil {
		return nil, false
	}
	return id.memo.Load(key)
}

// Memo returns what build derives from this identity under key (a comparable key of the caller's own
// type). For a cached token it is built once and then shared by every request carrying the token, so the
// value must be treated as immutable; otherwise it is built on every call.
func (id *Identity) Memo(key any, build func() any) any {
	if id.memo == nil {
		return build()
	}
	if v, ok := id.memo.Load(key); ok {
		return v
	}
	v, _ := id.memo.LoadOrStore(key, build())
	return v
}

// policyTerm returns the `token` member of the policy input with the claims a generation reads (claims;
// nil: all of them): for a cached token, the one built for the same claim set if there is one (sets are
// compared by identity: a generation keeps its own), else built, and kept from the token's second request on.
func (id *Identity) policyTerm(claims *policy.Claims) (*tokenTerm, error) {
	if id.policyToken != nil {
		if t := id.policyToken.Load(); t != nil && t.claims == claims {
			return t, nil
		}
	}
	t, err := newTokenTerm(id, claims)
	if err != nil {
		return nil, err
	}
	if id.policyToken != nil && id.repeat { // kept from the token's second request on (MemoOnReuse)
		id.policyToken.Store(t)
	}
	return t, nil
}

// MemoOnReuse is Memo for what is cheap to build but costs memory to keep: the value is kept only from the
// token's second request on, so that the many tokens a busy service sees once do not hold it in the cache.
func (id *Identity) MemoOnReuse(key any, build func() any) any {
	if !id.repeat {
		return build()
	}
	return id.Memo(key, build)
}

var clientClaims = []string{"client_id", "cid", "azp", "appid"}

// newIdentity reads the identity of a verified token from its claims.
func newIdentity(claims map[string]any) *Identity {
	id := &Identity{Claims: claims}
	id.Subject, _ = claims["sub"].(string)
	id.Issuer, _ = claims["iss"].(string)
	if v := claims["email_verified"]; v == true || v == "true" {
		id.Email, _ = claims["email"].(string)
	}
	client := ""
	for _, name := range clientClaims {
		if s, ok := claims[name].(string); ok && s != "" {
			id.ClientID, client = s, name
			break
		}
	}
	id.Scopes = scopes(claims)
	id.unsendable = unsendableClaim(id, client)
	return id
}

// unsendableClaim is the name of the first claim of id that its identity headers cannot carry (client
// names the claim the client id came from), or "".
func unsendableClaim(id *Identity, client string) string {
	switch {
	case !headerValue(id.Subject):
		return "sub"
	case !headerValue(id.Issuer):
		return "iss"
	case !headerValue(id.ClientID):
		return client
	case !headerValue(id.Email):
		return "email"
	}
	for _, s := range id.Scopes {
		if !headerValue(s) || strings.ContainsAny(s, " \t") {
			if v, ok := id.Claims["scope"].(string); ok && strings.Contains(v, s) {
				return "scope"
			}
			return "scp"
		}
	}
	return ""
}

func scopes(claims map[string]any) []string {
	var out []string
	for _, name := range []string{"scope", "scp"} {
		switch v := claims[name].(type) {
		case string:
			out = append(out, strings.Fields(v)...)
		case []any:
			for _, s := range v {
				if s, ok := s.(string); ok && s != "" {
					out = append(out, s)
				}
			}
		case []string:
			out = append(out, v...)
		}
	}
	return out
}
