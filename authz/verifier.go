package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/mcp-authz/mcp-authz/config"
)

// maxTokenBytes bounds the size of a bearer token; real access tokens are a few KiB.
const maxTokenBytes = 16 << 10

// Verifier verifies JWT access tokens from the configured issuers.
type Verifier struct {
	issuers map[string]*trustedIssuer
	leeway  time.Duration
	now     func() time.Time
	cache   *tokenCache  // verified tokens (tokencache.go); nil when disabled
	rejects *tokenCache  // tokens refused as expired or with a bad signature (tokenCache.reject); nil when disabled
	seed    maphash.Seed // of the caches' token hashes
}

type trustedIssuer struct {
	cfg        config.Issuer
	keys       *KeySet
	algorithms map[jwa.SignatureAlgorithm]bool
	noAudience map[string]bool
}

// NewVerifier returns a Verifier trusting the given issuers, each with its key set (keyed by issuer). It
// caches verified tokens (DefaultTokenCacheSize of them) unless an option says otherwise.
func NewVerifier(issuers []config.Issuer, keys map[string]*KeySet, leeway time.Duration, now func() time.Time, opts ...VerifierOption) (*Verifier, error) {
	v := &Verifier{issuers: make(map[string]*trustedIssuer, len(issuers)), leeway: leeway, now: now, cache: newTokenCache(DefaultTokenCacheSize),
		rejects: newTokenCache(DefaultRejectCacheSize), seed: maphash.MakeSeed()}
	for _, opt := range opts {
		opt(v)
	}
	for _, is := range issuers {
		ks, ok := keys[is.Issuer]
		if !ok {
			return nil, fmt.Errorf("no key set for issuer %q", is.Issuer)
		}
		t := &trustedIssuer{cfg: is, keys: ks, algorithms: map[jwa.SignatureAlgorithm]bool{}, noAudience: map[string]bool{}}
		for _, a := range is.Algorithms {
			t.algorithms[jwa.SignatureAlgorithm(a)] = true
		}
		for _, c := range is.ClientsWithoutAudience {
			t.noAudience[c] = true
		}
		v.issuers[is.Issuer] = t
	}
	return v, nil
}

// Ready reports the first issuer whose keys are not loaded yet, or nil.
func (v *Verifier) Ready() error {
	for iss, t := range v.issuers {
		if !t.keys.Ready() {
			return fmt.Errorf("keys of issuer %s not loaded", iss)
		}
	}
	return nil
}

// Verify checks the token's signature, header and registered claims. audiences are the `aud` values that name
// the targeted resource (its URL unless configured). A failure is an *Error (errors.As): 401 invalid_token
// with a specific description, or, Unavailable, 503 when the issuer's keys could not be loaded.
func (v *Verifier) Verify(ctx context.Context, raw string, audiences []string) (*Identity, error) {
	id, e := v.verify(ctx, raw, audiences)
	if e != nil {
		return nil, e
	}
	return id, nil
}

// verify is Verify with the refusal's own type, for the Authorizer.
func (v *Verifier) verify(ctx context.Context, raw string, audiences []string) (*Identity, *Error) {
	if len(raw) > maxTokenBytes {
		return nil, errInvalidToken("token too large")
	}
	if strings.Count(raw, ".") != 2 {
		return nil, errInvalidToken("malformed token: not a compact JWS")
	}
	key := tokenKey{hash: maphash.String(v.seed, raw), raw: raw}
	if id, e, ok := v.cache.verify(v, key, audiences); ok {
		return id, e
	}
	if _, e, ok := v.rejects.verify(v, key, audiences); ok {
		return nil, e
	}
	if !isCompactJWS(raw) { // after the caches: a cached token passed this
		return nil, errInvalidToken("malformed token: not a compact JWS")
	}
	kp := &keyChoice{v: v, ctx: ctx}
	tok, err := jwt.ParseString(raw, jwt.WithKeyProvider(kp), jwt.WithValidate(false))
	if err != nil {
		var e *Error
		switch {
		case errors.As(err, &e):
			if kp.expired {
				v.rejects.reject(key, nil, time.Time{}, kp.claims, e)
			}
			return nil, e
		case jws.IsVerificationError(err):
			e := errInvalidToken("signature verification failed")
			v.rejects.reject(key, kp.issuer, kp.version, kp.claims, e)
			return nil, e
		case kp.issuer != nil:
			return nil, errInvalidToken("malformed claims")
		default:
			return nil, errInvalidToken("malformed token")
		}
	}
	t := kp.issuer
	if e := v.validate(tok); e != nil {
		return nil, e
	}
	id := newIdentity(kp.claims)
	id.Expiry = tok.Expiration()
	if err := t.checkAudience(tok.Audience(), id.ClientID, audiences); err != nil {
		return nil, err
	}
	v.cache.add(key, t, kp.version, tok, id, v.now(), v.leeway)
	return id, nil
}

// isCompactJWS reports whether raw holds only base64url characters (RFC 7515 §2: no padding) besides its
// dots. A JWT is always in the JWS Compact Serialization (RFC 7519 §1); jwt.ParseString would also take the
// JSON Serialization, with its unprotected headers and several signatures.
func isCompactJWS(raw string) bool {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// validate checks the time-based claims (exp, required; nbf; iat) against the clock, with the leeway.
func (v *Verifier) validate(tok jwt.Token) *Error {
	err := jwt.Validate(tok, jwt.WithAcceptableSkew(v.leeway), jwt.WithClock(jwt.ClockFunc(v.now)), jwt.WithRequiredClaim("exp"))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jwt.ErrTokenExpired()):
		return errInvalidToken("token expired")
	case errors.Is(err, jwt.ErrTokenNotYetValid()):
		return errInvalidToken("token not yet valid")
	case errors.Is(err, jwt.ErrInvalidIssuedAt()):
		return errInvalidToken("token issued in the future")
	case errors.Is(err, jwt.ErrMissingRequiredClaim("exp")):
		return errInvalidToken("token has no exp claim")
	default:
		return errInvalidToken("invalid claims")
	}
}

// surelyExpired reports, from the (not yet verified) claims, whether validate would refuse the token as
// expired whatever its signature: integer exp, not 0, at or before now minus the leeway (truncated to the
// second, as validate does), and no iat in the future (validate checks iat first). A token refused here costs
// no signature check; any other token goes the whole way.
func (v *Verifier) surelyExpired(claims map[string]any) bool {
	exp, ok := unixClaim(claims, "exp")
	if !ok || exp == 0 {
		return false
	}
	now := v.now().Truncate(time.Second)
	if _, present := claims["iat"]; present {
		iat, ok := unixClaim(claims, "iat")
		if !ok || iat != 0 && now.Before(time.Unix(iat, 0).Add(-v.leeway)) {
			return false
		}
	}
	return !now.Before(time.Unix(exp, 0).Add(v.leeway))
}

// unixClaim reads an integer NumericDate claim.
func unixClaim(claims map[string]any, name string) (int64, bool) {
	n, ok := claims[name].(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	return i, err == nil
}

// keyChoice is the jws.KeyProvider of one Verify call: it picks the issuer by the unverified `iss`, checks
// the header against that issuer's rules, and offers only keys from the issuer's own key set. Header
// fields that point at other keys (`jku`, `x5u`, `jwk`) are never used.
type keyChoice struct {
	v       *Verifier
	ctx     context.Context // the request's: jwt.ParseString hands FetchKeys a background context instead
	issuer  *trustedIssuer
	claims  map[string]any
	version time.Time // the issuer's key set version before its keys were looked up
	expired bool      // the token was refused as surely expired, before any key lookup
}

// FetchKeys implements jws.KeyProvider. It ignores the context jws.Verify passes (jwt.ParseString passes
// none of its own) and uses the request's, so that waiting for a key set fetch ends with the request.
func (c *keyChoice) FetchKeys(_ context.Context, sink jws.KeySink, sig *jws.Signature, msg *jws.Message) error {
	if len(msg.Signatures()) != 1 {
		return errInvalidToken("malformed token: more than one signature")
	}
	h := sig.ProtectedHeaders()
	dec := json.NewDecoder(bytes.NewReader(msg.Payload()))
	dec.UseNumber()
	if err := dec.Decode(&c.claims); err != nil || c.claims == nil {
		return errInvalidToken("malformed token: payload is not a JSON object")
	}
	iss, _ := c.claims["iss"].(string)
	t, ok := c.v.issuers[iss]
	if !ok {
		if iss == "" {
			return errInvalidToken("token has no issuer")
		}
		return errInvalidToken("issuer not trusted")
	}
	alg := h.Algorithm()
	if !t.algorithms[alg] {
		return errInvalidToken(fmt.Sprintf("algorithm %s not allowed", shown(alg.String())))
	}
	if want := t.cfg.RequiredType; want != "" && !typeMatches(h.Type(), want) {
		return errInvalidToken(fmt.Sprintf("token type %q is not %q", shown(h.Type()), want))
	}
	if len(h.Critical()) > 0 {
		return errInvalidToken("unsupported critical header")
	}
	if c.v.surelyExpired(c.claims) {
		c.expired = true
		return errInvalidToken("token expired") // refused before any key lookup or signature check
	}
	c.version = t.keys.Version() // before Keys: a snapshot installed meanwhile makes the cache entry stale, never wrongly fresh
	keys, err := t.keys.Keys(c.ctx, h.KeyID())
	if err != nil {
		return errUnavailable(fmt.Sprintf("signing keys of %s unavailable", t.cfg.Issuer))
	}
	offered := 0
	for _, key := range keys {
		if !keyFits(key, alg) {
			continue
		}
		sink.Key(alg, key)
		offered++
	}
	if offered == 0 {
		if len(keys) == 0 {
			return errInvalidToken("unknown signing key")
		}
		return errInvalidToken("signing key does not fit the token's algorithm")
	}
	c.issuer = t
	return nil
}

// typeMatches compares a `typ` header with the required one, ignoring case and an `application/` prefix (RFC 8725 §3.11).
func typeMatches(got, want string) bool {
	got = strings.TrimPrefix(strings.ToLower(got), "application/")
	return got == strings.TrimPrefix(strings.ToLower(want), "application/")
}

// keyFits reports whether key may verify a signature made with alg: the key's own `alg` (when it has one)
// must be alg, its `use` (when set) must be sig, and its type must be the one the algorithm needs.
func keyFits(key jwk.Key, alg jwa.SignatureAlgorithm) bool {
	if ka := key.Algorithm(); ka != nil && ka.String() != "" && ka.String() != alg.String() {
		return false
	}
	if u := key.KeyUsage(); u != "" && u != string(jwk.ForSignature) {
		return false
	}
	switch key.KeyType() {
	case jwa.RSA:
		return strings.HasPrefix(string(alg), "RS") || strings.HasPrefix(string(alg), "PS")
	case jwa.EC:
		return strings.HasPrefix(string(alg), "ES")
	case jwa.OKP:
		return alg == jwa.EdDSA
	default:
		return false
	}
}
