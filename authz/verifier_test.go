package authz_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/test/idp"
)

// verifierKeys are the keys the issuer of TestVerifyRefusals publishes: each kind of key with and without
// an `alg`, and one for encryption.
type verifierKeys struct {
	rsa, rsaAny, rsa384, rsaEnc, ec, okp jwk.Key
}

func newVerifierKeys(t *testing.T) verifierKeys {
	t.Helper()
	key := func(raw any, kid string, set map[string]any) jwk.Key {
		k, err := jwk.FromRaw(raw)
		if err != nil {
			t.Fatal(err)
		}
		k.Set(jwk.KeyIDKey, kid)
		for name, v := range set {
			if err := k.Set(name, v); err != nil {
				t.Fatal(err)
			}
		}
		return k
	}
	newRSA := func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var ecRaw any
	if err := ecKey(t, "").Raw(&ecRaw); err != nil {
		t.Fatal(err)
	}
	return verifierKeys{
		rsa:    rsaKey(t, "rsa"),
		rsaAny: key(newRSA(), "rsa-any", nil),
		rsa384: key(newRSA(), "rsa-384", map[string]any{jwk.AlgorithmKey: jwa.RS384}),
		rsaEnc: key(newRSA(), "rsa-enc", map[string]any{jwk.KeyUsageKey: "enc"}),
		ec:     key(ecRaw, "ec", nil),
		okp:    key(ed, "okp", nil),
	}
}

// signPayload signs payload as it is (not necessarily a claims object) with key under alg, with the
// given protected header members besides alg, kid and typ at+jwt.
func signPayload(t *testing.T, key jwk.Key, alg jwa.SignatureAlgorithm, payload string, header map[string]any) string {
	t.Helper()
	h := jws.NewHeaders()
	h.Set(jws.TypeKey, "at+jwt")
	h.Set(jws.KeyIDKey, key.KeyID())
	for k, v := range header {
		if err := h.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := jws.Sign([]byte(payload), jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

// jsonSerialized is a JWS JSON Serialization of claims, signed by each of keys, with an unprotected header
// holding two dots (so the whole has as many as a compact token).
func jsonSerialized(t *testing.T, claims string, keys ...jwk.Key) string {
	t.Helper()
	opts := []jws.SignOption{jws.WithJSON()}
	for i, k := range keys {
		h := jws.NewHeaders()
		h.Set(jws.TypeKey, "at+jwt")
		h.Set(jws.KeyIDKey, k.KeyID())
		sub := []jws.WithKeySuboption{jws.WithProtectedHeaders(h)}
		if i == 0 {
			sub = append(sub, jws.WithPublicHeaders(must(t, jws.NewHeaders(), "x-note", "a.b.")))
		}
		opts = append(opts, jws.WithKey(jwa.RS256, k, sub...))
	}
	tok, err := jws.Sign([]byte(claims), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(tok), "."); n != 2 {
		t.Fatalf("JSON serialization with %d dots: %s", n, tok)
	}
	return string(tok)
}

func must(t *testing.T, h jws.Headers, name string, v any) jws.Headers {
	t.Helper()
	if err := h.Set(name, v); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestVerifyRefusals goes through every refusal of Verify and of the key choice (header rules, key fit),
// each next to the closest token that is accepted, with keys from an issuer on 127.0.0.1. Each token is
// verified twice without the token caches and twice with them (the second answer may come from a cache).
func TestVerifyRefusals(t *testing.T) {
	k := newVerifierKeys(t)
	f := startFakeIdP(t)
	f.handle("/jwks", serveJWKS(t, k.rsa, k.rsaAny, k.rsa384, k.rsaEnc, k.ec, k.okp))
	is := f.issuer(time.Hour, time.Hour)
	is.Algorithms = []string{"RS256", "RS384", "PS256", "ES256", "EdDSA"}
	is.RequiredType = "at+jwt"
	e := newKeysEnv(t, f, is, nil)
	if _, err := e.keySet.Keys(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	cached, err := authz.NewVerifier([]config.Issuer{is}, map[string]*authz.KeySet{is.Issuer: e.keySet}, time.Minute, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := func(extra map[string]any) map[string]any {
		c := map[string]any{"sub": "alice", "aud": keysResource, "client_id": "mcp-client"}
		for name, v := range extra {
			c[name] = v
		}
		return c
	}
	mint := func(key jwk.Key, alg jwa.SignatureAlgorithm, extra map[string]any, opts ...idp.MintOption) string {
		tok, err := f.minter.Mint(claims(extra), append([]idp.MintOption{idp.WithKey(alg, key)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	valid := mint(k.rsa, jwa.RS256, nil)
	validClaims, err := json.Marshal(map[string]any{"iss": f.URL, "sub": "alice", "aud": keysResource, "exp": now.Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	const anyInvalidToken = "(any invalid_token)"
	tests := []struct {
		name  string
		token string
		want  string // error description; "" for a valid token
	}{
		{"valid", valid, ""},
		{"too large", valid[:strings.LastIndexByte(valid, '.')+1] + strings.Repeat("A", 16<<10), "token too large"},
		{"one dot", "eyJhbGciOiJSUzI1NiJ9.e30", "malformed token: not a compact JWS"},
		{"three dots", valid + ".x", "malformed token: not a compact JWS"},
		{"JSON serialization", jsonSerialized(t, string(validClaims), k.rsa), "malformed token: not a compact JWS"},
		{"JSON serialization, two signatures", jsonSerialized(t, string(validClaims), k.rsa, k.rsaAny), "malformed token: not a compact JWS"},
		{"header not base64", "a.b.c", "malformed token"},
		{"payload an array", signPayload(t, k.rsa, jwa.RS256, `[1]`, nil), "malformed token: payload is not a JSON object"},
		{"payload null", signPayload(t, k.rsa, jwa.RS256, `null`, nil), "malformed token: payload is not a JSON object"},
		{"payload not JSON", signPayload(t, k.rsa, jwa.RS256, `{"iss":`, nil), "malformed token: payload is not a JSON object"},
		{"no iss", mint(k.rsa, jwa.RS256, map[string]any{"iss": nil}), "token has no issuer"},
		{"iss not a string", mint(k.rsa, jwa.RS256, map[string]any{"iss": 7}), "token has no issuer"},
		{"untrusted issuer", mint(k.rsa, jwa.RS256, map[string]any{"iss": "https://evil.example.com"}), "issuer not trusted"},
		{"issuer with a trailing slash", mint(k.rsa, jwa.RS256, map[string]any{"iss": f.URL + "/"}), "issuer not trusted"},
		{"alg none", idp.UnsignedToken(map[string]any{"typ": "at+jwt", "kid": "rsa"}, claims(map[string]any{"iss": f.URL, "exp": now.Add(time.Hour).Unix()})), "algorithm none not allowed"},
		{"HS256 with a secret", mint(k.rsa, jwa.HS256, nil, idp.WithKey(jwa.HS256, []byte("0123456789abcdef0123456789abcdef")), idp.WithKID("rsa")), "algorithm HS256 not allowed"},
		{"RS512, not configured", mint(k.rsaAny, jwa.RS512, nil), "algorithm RS512 not allowed"},
		{"typ JWT", mint(k.rsa, jwa.RS256, nil, idp.WithType("JWT")), `token type "JWT" is not "at+jwt"`},
		{"no typ", mint(k.rsa, jwa.RS256, nil, idp.WithType("")), `token type "" is not "at+jwt"`},
		{"typ application/AT+JWT", mint(k.rsa, jwa.RS256, nil, idp.WithType("application/AT+JWT")), ""},
		{"crit header", mint(k.rsa, jwa.RS256, nil, idp.WithHeader("crit", []string{"exp"}), idp.WithHeader("exp", now.Add(time.Hour).Unix())), "unsupported critical header"},
		{"crit header naming b64", signPayload(t, k.rsa, jwa.RS256, string(validClaims), map[string]any{"crit": []string{"b64"}, "b64": true}), "unsupported critical header"},
		{"expired, before any key lookup", mint(k.rsa, jwa.RS256, map[string]any{"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()}, idp.WithKID("nobody")), "token expired"},
		{"expired, fractional exp", mint(k.rsa, jwa.RS256, map[string]any{"iat": now.Add(-2 * time.Hour).Unix(), "exp": float64(now.Add(-time.Hour).Unix()) + 0.5}), "token expired"},
		{"unknown kid", mint(k.rsa, jwa.RS256, nil, idp.WithKID("nobody")), "unknown signing key"},
		{"no kid", mint(k.rsa, jwa.RS256, nil, idp.WithoutKID()), ""},
		{"no kid, foreign key", mint(rsaKey(t, ""), jwa.RS256, nil, idp.WithoutKID()), "signature verification failed"},
		{"key published for RS384, token RS256", mint(k.rsa384, jwa.RS256, nil), "signing key does not fit the token's algorithm"},
		{"key published for RS384, token RS384", mint(k.rsa384, jwa.RS384, nil), ""},
		{"key for encryption (skipped when the key set is read)", mint(k.rsaEnc, jwa.RS256, nil), "unknown signing key"},
		{"RSA key without alg, PS256", mint(k.rsaAny, jwa.PS256, nil), ""},
		{"RSA key without alg, ES256 token", mint(k.ec, jwa.ES256, nil, idp.WithKID("rsa-any")), "signing key does not fit the token's algorithm"},
		{"EC key, ES256", mint(k.ec, jwa.ES256, nil), ""},
		{"EC key, RS256 token", mint(k.rsa, jwa.RS256, nil, idp.WithKID("ec")), "signing key does not fit the token's algorithm"},
		{"EC key, EdDSA token", mint(k.okp, jwa.EdDSA, nil, idp.WithKID("ec")), "signing key does not fit the token's algorithm"},
		{"OKP key, EdDSA", mint(k.okp, jwa.EdDSA, nil), ""},
		{"OKP key, ES256 token", mint(k.ec, jwa.ES256, nil, idp.WithKID("okp")), "signing key does not fit the token's algorithm"},
		{"signature altered", tamperSignature(valid), "signature verification failed"},
		{"signed by a foreign key under a trusted kid", mint(rsaKey(t, "rsa"), jwa.RS256, nil), "signature verification failed"},
		{"exp not a number", mint(k.rsa, jwa.RS256, map[string]any{"exp": "tomorrow"}), "malformed claims"},
		{"aud not a string", mint(k.rsa, jwa.RS256, map[string]any{"aud": 7}), "malformed claims"},
		{"no exp", mint(k.rsa, jwa.RS256, map[string]any{"exp": nil}), "token has no exp claim"},
		{"nbf in an hour", mint(k.rsa, jwa.RS256, map[string]any{"nbf": now.Add(time.Hour).Unix()}), "token not yet valid"},
		{"nbf within the leeway", mint(k.rsa, jwa.RS256, map[string]any{"nbf": now.Add(30 * time.Second).Unix()}), ""},
		{"iat in an hour", mint(k.rsa, jwa.RS256, map[string]any{"iat": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()}), "token issued in the future"},
		{"audience of another resource", mint(k.rsa, jwa.RS256, map[string]any{"aud": "https://other.example.com/mcp"}), anyInvalidToken},
		{"no audience", mint(k.rsa, jwa.RS256, map[string]any{"aud": nil}), anyInvalidToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i, v := range []*authz.Verifier{e.verifier, e.verifier, cached, cached} {
				id, err := v.Verify(context.Background(), tc.token, []string{keysResource})
				var verr *authz.Error
				if err != nil && !errors.As(err, &verr) {
					t.Fatalf("try %d: %v is not an *authz.Error", i, err)
				}
				switch {
				case tc.want == "":
					if verr != nil || id == nil || id.Subject != "alice" {
						t.Fatalf("try %d: %v, %v; want valid", i, id, verr)
					}
				case verr == nil:
					t.Fatalf("try %d: accepted, want %q", i, tc.want)
				case verr.Status != 401 || verr.Code != "invalid_token" || verr.Unavailable:
					t.Fatalf("try %d: %+v, want 401 invalid_token", i, verr)
				case tc.want != anyInvalidToken && verr.Description != tc.want:
					t.Fatalf("try %d: %q, want %q", i, verr.Description, tc.want)
				}
			}
		})
	}
}
