package authz

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
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
	verifiers  map[jwa.SignatureAlgorithm]jws.Verifier // of the allowed algorithms jwx can verify; stateless
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
		t := &trustedIssuer{cfg: is, keys: ks, algorithms: map[jwa.SignatureAlgorithm]bool{}, verifiers: map[jwa.SignatureAlgorithm]jws.Verifier{},
			noAudience: map[string]bool{}}
		for _, a := range is.Algorithms {
			alg := jwa.SignatureAlgorithm(a)
			t.algorithms[alg] = true
			if verifier, err := jws.NewVerifier(alg); err == nil {
				t.verifiers[alg] = verifier
			}
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

// verify is Verify with the refusal's own type, for the Authorizer. A token the caches do not answer is
// decoded once and checked cheapest refusal first: its shape, its header and issuer, a surely expired `exp`
// (no key lookup, no signature check), its key, its signature, then the types of its registered claims, its
// time claims and its audience. Each answer is the one jwx's generic path (jwt.ParseString with a key
// provider, then jwt.Validate) gave, down to the description: TestVerifyDifferential and
// FuzzVerifyDifferential compare the two.
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
	tok, e := parseCompact(raw)
	if e != nil {
		return nil, e
	}
	claims := decodeClaims(tok.payload) // nil for an unencoded payload (b64 false) too: base64url text is no JSON object
	if claims == nil {
		return nil, errInvalidToken("malformed token: payload is not a JSON object")
	}
	t, e := v.trustedIssuer(tok.header, claims)
	if e != nil {
		return nil, e
	}
	if v.surelyExpired(claims) {
		e := errInvalidToken("token expired") // refused before any key lookup or signature check
		v.rejects.reject(key, nil, time.Time{}, claims, e)
		return nil, e
	}
	version := t.keys.Version() // before Keys: a snapshot installed meanwhile makes the cache entry stale, never wrongly fresh
	if e, forged := t.checkSignature(ctx, tok); e != nil {
		if forged {
			v.rejects.reject(key, t, version, claims, e)
		}
		return nil, e
	}
	reg, err := readRegistered(tok.payload, claims)
	if err != nil {
		return nil, errInvalidToken("malformed claims")
	}
	if e := v.validate(&reg); e != nil {
		return nil, e
	}
	id := newIdentity(claims)
	id.Expiry = reg.exp
	if e := t.checkAudience(reg.aud, id.ClientID, audiences); e != nil {
		return nil, e
	}
	return v.cache.add(key, t, version, &reg, id, v.now(), v.leeway), nil
}

// isCompactJWS reports whether raw holds only base64url characters (RFC 7515 §2: no padding) besides its
// dots. A JWT is always in the JWS Compact Serialization (RFC 7519 §1); jwx's parser would also take the
// JSON Serialization, with its unprotected headers and several signatures.
func isCompactJWS(raw string) bool {
	for i := 0; i < len(raw); i++ {
		if !compactJWSByte[raw[i]] {
			return false
		}
	}
	return true
}

// compactJWSByte marks the bytes of the JWS Compact Serialization: base64url characters and the dot. A
// table lookup per byte is faster than comparing ranges (1.7 times on a 0.9 KiB token). Never modified.
var compactJWSByte = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") {
		t[c] = true
	}
	return t
}()

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

// trustedIssuer picks the issuer by the unverified `iss` and checks the header against its rules: the
// algorithm on its allow-list, the required `typ`, no critical header. Header members that point at other
// keys (`jku`, `x5u`, `jwk`, `x5c`) are never used.
func (v *Verifier) trustedIssuer(h joseHeader, claims map[string]any) (*trustedIssuer, *Error) {
	iss, _ := claims["iss"].(string)
	t, ok := v.issuers[iss]
	if !ok {
		if iss == "" {
			return nil, errInvalidToken("token has no issuer")
		}
		return nil, errInvalidToken("issuer not trusted")
	}
	if !t.algorithms[h.alg] {
		return nil, errInvalidToken(fmt.Sprintf("algorithm %s not allowed", shown(h.alg.String())))
	}
	if want := t.cfg.RequiredType; want != "" && !typeMatches(h.typ, want) {
		return nil, errInvalidToken(fmt.Sprintf("token type %q is not %q", shown(h.typ), want))
	}
	if h.critical {
		return nil, errInvalidToken("unsupported critical header")
	}
	return t, nil
}

// checkSignature verifies tok's signature with the issuer's keys of its `kid` (every key when it has none)
// that fit its algorithm, trying each in document order. forged is true when fitting keys were found and
// none verifies the signature. Waiting for a key set fetch (an unknown `kid`) ends with ctx.
func (t *trustedIssuer) checkSignature(ctx context.Context, tok *compactToken) (e *Error, forged bool) {
	alg := tok.header.alg
	keys, err := t.keys.Keys(ctx, tok.header.kid)
	if err != nil {
		return errUnavailable(fmt.Sprintf("signing keys of %s unavailable", t.cfg.Issuer)), false
	}
	fitting := 0
	for _, key := range keys {
		if !keyFits(key.JWK, alg) {
			continue
		}
		fitting++
		if key.rsa != nil && isPKCS1v15(alg) {
			if key.rsa.verify(alg, tok.signingInput, tok.signature) {
				return nil, false
			}
			continue
		}
		verifier := t.verifiers[alg]
		if verifier == nil { // jwx verifies every algorithm a key fits; were one missing, this is jwx's answer
			return errInvalidToken("malformed claims"), false
		}
		if verifier.Verify(tok.signingInput, tok.signature, key.Public) == nil {
			return nil, false
		}
	}
	if fitting == 0 {
		if len(keys) == 0 {
			return errInvalidToken("unknown signing key"), false
		}
		return errInvalidToken("signing key does not fit the token's algorithm"), false
	}
	return errInvalidToken("signature verification failed"), true
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
