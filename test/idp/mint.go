package idp

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// mintSettings collects the MintOptions of one Mint call.
type mintSettings struct {
	typ     string
	kid     *string
	noKID   bool
	headers map[string]any
	alg     jwa.SignatureAlgorithm
	key     any
}

// MintOption changes how Mint builds the header or signs a token.
type MintOption func(*mintSettings)

// WithType sets the typ header (default "at+jwt"); the empty string leaves typ out.
func WithType(typ string) MintOption {
	return func(s *mintSettings) { s.typ = typ }
}

// WithKID puts kid in the header instead of the signing key's kid, e.g. an unknown one.
func WithKID(kid string) MintOption {
	return func(s *mintSettings) { s.kid, s.noKID = &kid, false }
}

// WithoutKID leaves kid out of the header.
func WithoutKID() MintOption {
	return func(s *mintSettings) { s.kid, s.noKID = nil, true }
}

// WithHeader sets a header parameter after all others, so it can also override alg, kid or typ; a nil
// value removes the parameter. Values are encoded with encoding/json (a jwk.Key encodes as a JWK).
func WithHeader(name string, value any) MintOption {
	return func(s *mintSettings) {
		if s.headers == nil {
			s.headers = map[string]any{}
		}
		s.headers[name] = value
	}
}

// WithKey signs with key under alg instead of the active key: a raw private key, a jwk.Key or, for the
// HS algorithms, a []byte secret. The header kid stays the active key's kid unless key is a jwk.Key with
// a kid, or WithKID or WithoutKID says otherwise; that makes algorithm-confusion tokens easy, e.g.
// WithKey(jwa.HS256, publicKeyPEM).
func WithKey(alg jwa.SignatureAlgorithm, key any) MintOption {
	return func(s *mintSettings) { s.alg, s.key = alg, key }
}

// Mint signs claims as a compact JWS with the active key: header alg and kid of that key, typ "at+jwt".
// Claims are used as given, except that iss (the issuer), iat (now), exp (now plus the access token TTL)
// and jti (random) are added when the map has no such key. A nil value removes the claim, so
// {"exp": nil} mints a token without exp. time.Time values are encoded as NumericDate (Unix seconds).
func (p *Provider) Mint(claims map[string]any, opts ...MintOption) (string, error) {
	s := mintSettings{typ: "at+jwt"}
	for _, opt := range opts {
		opt(&s)
	}
	active := p.activeKey()
	alg, key, kid := active.alg, any(active.raw), active.jwk.KeyID()
	if s.key != nil {
		alg, key = s.alg, s.key
		if k, ok := s.key.(jwk.Key); ok && k.KeyID() != "" {
			kid = k.KeyID()
		}
	}
	if s.kid != nil {
		kid = *s.kid
	}

	header := map[string]any{"alg": alg.String()}
	if kid != "" && !s.noKID {
		header["kid"] = kid
	}
	if s.typ != "" {
		header["typ"] = s.typ
	}
	maps.Copy(header, s.headers)

	now := p.now()
	payload := map[string]any{
		"iss": p.issuer,
		"iat": now.Unix(),
		"exp": now.Add(p.accessTTL).Unix(),
		"jti": rand.Text(),
	}
	maps.Copy(payload, claims)

	input, err := signingInput(header, payload)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	signer, err := jws.NewSigner(alg)
	if err != nil {
		return "", fmt.Errorf("mint token: signer for %q: %w", alg, err)
	}
	sig, err := signer.Sign([]byte(input), key)
	if err != nil {
		return "", fmt.Errorf("mint token: sign with %s: %w", alg, err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// UnsignedToken returns the compact JWT header.claims. with an empty signature. The header gets
// alg "none" unless it already has an alg (to try variants like "None"); nothing else is added. Nil
// values are left out and time.Time values become NumericDate, as in Mint. It panics if header or claims
// cannot be encoded as JSON.
func UnsignedToken(header, claims map[string]any) string {
	h := map[string]any{"alg": "none"}
	maps.Copy(h, header)
	input, err := signingInput(h, claims)
	if err != nil {
		panic(fmt.Sprintf("idp: unsigned token: %v", err))
	}
	return input + "."
}

// signingInput returns BASE64URL(header) "." BASE64URL(claims), dropping nil values and encoding
// time.Time as Unix seconds.
func signingInput(header, claims map[string]any) (string, error) {
	h, err := json.Marshal(jsonObject(header))
	if err != nil {
		return "", fmt.Errorf("encode header: %w", err)
	}
	c, err := json.Marshal(jsonObject(claims))
	if err != nil {
		return "", fmt.Errorf("encode claims: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c), nil
}

func jsonObject(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch v := v.(type) {
		case nil:
		case time.Time:
			out[k] = v.Unix()
		default:
			out[k] = v
		}
	}
	return out
}
