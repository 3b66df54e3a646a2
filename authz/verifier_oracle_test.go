package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// oracleVerify is the verification of an uncached token by jwx's generic path (jwt.ParseString with a key
// provider, jwt.Validate), without the caches: the behaviour Verifier.verify must keep. The differential
// test and fuzz target compare the two.
func oracleVerify(v *Verifier, ctx context.Context, raw string, audiences []string) (*Identity, *Error) {
	if len(raw) > maxTokenBytes {
		return nil, errInvalidToken("token too large")
	}
	if !isCompactJWS(raw) || bytes.Count([]byte(raw), []byte(".")) != 2 {
		return nil, errInvalidToken("malformed token: not a compact JWS")
	}
	kp := &oracleKeyChoice{v: v, ctx: ctx}
	tok, err := jwt.ParseString(raw, jwt.WithKeyProvider(kp), jwt.WithValidate(false))
	if err != nil {
		var e *Error
		switch {
		case errors.As(err, &e):
			return nil, e
		case jws.IsVerificationError(err):
			return nil, errInvalidToken("signature verification failed")
		case kp.issuer != nil:
			return nil, errInvalidToken("malformed claims")
		default:
			return nil, errInvalidToken("malformed token")
		}
	}
	t := kp.issuer
	if e := oracleValidate(v, tok); e != nil {
		return nil, e
	}
	id := newIdentity(kp.claims)
	id.Expiry = tok.Expiration()
	if err := t.checkAudience(tok.Audience(), id.ClientID, audiences); err != nil {
		return nil, err
	}
	return id, nil
}

func oracleValidate(v *Verifier, tok jwt.Token) *Error {
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

// oracleKeyChoice is the jws.KeyProvider of one oracle verification: it picks the issuer by the unverified
// `iss`, checks the header against that issuer's rules, and offers only keys from its own key set.
type oracleKeyChoice struct {
	v      *Verifier
	ctx    context.Context
	issuer *trustedIssuer
	claims map[string]any
}

func (c *oracleKeyChoice) FetchKeys(_ context.Context, sink jws.KeySink, sig *jws.Signature, msg *jws.Message) error {
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
		return errInvalidToken("token expired")
	}
	keys, err := t.keys.Keys(c.ctx, h.KeyID())
	if err != nil {
		return errUnavailable(fmt.Sprintf("signing keys of %s unavailable", t.cfg.Issuer))
	}
	offered := 0
	for _, key := range keys {
		if !keyFits(key.JWK, alg) {
			continue
		}
		sink.Key(alg, key.JWK)
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
