package exchange

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/mcp-authz/mcp-authz/config"
)

// clientAuth authenticates mcp-authz to the token endpoint: it adds its credentials to a token request's
// form and headers.
type clientAuth interface {
	// apply authenticates the request to the token endpoint of the IdP issuer (its issuer identifier).
	apply(req *http.Request, form url.Values, endpoint, issuer string, now time.Time) error
}

// maxSecretBytes bounds a secret or token file.
const maxSecretBytes = 64 << 10

// fileValue is the trimmed content of a file holding a secret or a token, read again when the file's size
// or modification time changes (a rotated Kubernetes secret), so that rotation needs no restart. Reading
// happens only when a token is exchanged, never on a cache hit.
type fileValue struct {
	path string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	value   string
}

// newFileValue reads path once, so that a file that cannot be used is a start-up error.
func newFileValue(path string) (*fileValue, error) {
	f := &fileValue{path: path}
	if _, err := f.get(); err != nil {
		return nil, err
	}
	return f, nil
}

// get returns the file's current content; when the file can no longer be read, the last content read.
func (f *fileValue) get() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := os.Stat(f.path)
	if err != nil {
		if f.value != "" {
			return f.value, nil
		}
		return "", err
	}
	if f.value != "" && st.ModTime().Equal(f.modTime) && st.Size() == f.size {
		return f.value, nil
	}
	if st.Size() > maxSecretBytes {
		return "", fmt.Errorf("%s: larger than %d bytes", f.path, maxSecretBytes)
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		if f.value != "" {
			return f.value, nil
		}
		return "", err
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s: empty", f.path)
	}
	f.value, f.modTime, f.size = v, st.ModTime(), st.Size()
	return v, nil
}

// secretBasic is client_secret_basic (RFC 6749 section 2.3.1): id and secret, each form-urlencoded, in
// HTTP Basic authentication.
type secretBasic struct {
	clientID string
	secret   *fileValue
}

func (s *secretBasic) apply(req *http.Request, _ url.Values, _, _ string, _ time.Time) error {
	secret, err := s.secret.get()
	if err != nil {
		return fmt.Errorf("client secret: %w", err)
	}
	req.SetBasicAuth(url.QueryEscape(s.clientID), url.QueryEscape(secret))
	return nil
}

// assertionType is the client_assertion_type of a JWT client assertion (RFC 7523 section 2.2).
const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionLifetime is how long a client assertion is valid: it is used once, right away.
const assertionLifetime = time.Minute

// privateKeyJWT is private_key_jwt (OpenID Connect Core section 9, RFC 7523): a JWT signed with the
// client's key, issued and subject the client id, audience the IdP (its issuer identifier by default, see
// config.PrivateKeyJWT.Audience), with a fresh jti and a short exp so that it cannot be replayed for long.
type privateKeyJWT struct {
	clientID string
	key      jwk.Key
	alg      jwa.SignatureAlgorithm
	audience string // "": the issuer; "token_endpoint"; or a URL
}

// newPrivateKeyJWT loads the PEM key of k and settles its algorithm.
func newPrivateKeyJWT(clientID string, k *config.PrivateKeyJWT) (*privateKeyJWT, error) {
	b, err := os.ReadFile(k.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("key_file: %w", err)
	}
	key, err := jwk.ParseKey(b, jwk.WithPEM(true))
	if err != nil {
		return nil, fmt.Errorf("key_file: %s: %w", k.KeyFile, err)
	}
	var raw any
	if err := key.Raw(&raw); err != nil {
		return nil, fmt.Errorf("key_file: %s: %w", k.KeyFile, err)
	}
	var def jwa.SignatureAlgorithm
	switch raw.(type) {
	case *ecdsa.PrivateKey:
		def = jwa.ES256
	case *rsa.PrivateKey:
		def = jwa.RS256
	case ed25519.PrivateKey:
		def = jwa.EdDSA
	default:
		return nil, fmt.Errorf("key_file: %s: not an EC, RSA or Ed25519 private key", k.KeyFile)
	}
	alg := def
	if k.Algorithm != "" {
		alg = jwa.SignatureAlgorithm(k.Algorithm)
		if alg != def {
			return nil, fmt.Errorf("algorithm: %s does not fit the key of %s (%s)", alg, k.KeyFile, def)
		}
	}
	if k.KeyID != "" {
		if err := key.Set(jwk.KeyIDKey, k.KeyID); err != nil {
			return nil, err
		}
	}
	// The key signs with its own algorithm only.
	if err := key.Set(jwk.AlgorithmKey, alg); err != nil {
		return nil, err
	}
	return &privateKeyJWT{clientID: clientID, key: key, alg: alg, audience: k.Audience}, nil
}

func (p *privateKeyJWT) apply(_ *http.Request, form url.Values, endpoint, issuer string, now time.Time) error {
	aud := p.audience
	switch {
	case aud == "token_endpoint" || (aud == "" && issuer == ""):
		aud = endpoint
	case aud == "":
		aud = issuer
	}
	a, err := p.assertion(aud, now)
	if err != nil {
		return err
	}
	form.Set("client_id", p.clientID)
	form.Set("client_assertion_type", assertionType)
	form.Set("client_assertion", a)
	return nil
}

// assertion signs a client assertion for the audience aud.
func (p *privateKeyJWT) assertion(aud string, now time.Time) (string, error) {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	t, err := jwt.NewBuilder().
		Issuer(p.clientID).
		Subject(p.clientID).
		Audience([]string{aud}).
		JwtID(base64.RawURLEncoding.EncodeToString(jti[:])).
		IssuedAt(now).
		Expiration(now.Add(assertionLifetime)).
		Build()
	if err != nil {
		return "", err
	}
	b, err := jwt.Sign(t, jwt.WithKey(p.alg, p.key))
	if err != nil {
		return "", fmt.Errorf("sign client assertion: %w", err)
	}
	return string(b), nil
}

// newClientAuth builds the client authentication of one token_exchange block.
func newClientAuth(te *config.TokenExchange) (clientAuth, error) {
	switch {
	case te.ClientSecretFile != "":
		f, err := newFileValue(te.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("client_secret_file: %w", err)
		}
		return &secretBasic{clientID: te.ClientID, secret: f}, nil
	case te.PrivateKeyJWT != nil:
		p, err := newPrivateKeyJWT(te.ClientID, te.PrivateKeyJWT)
		if err != nil {
			return nil, fmt.Errorf("private_key_jwt.%w", err)
		}
		return p, nil
	}
	return nil, errors.New("client_secret_file or private_key_jwt is required")
}
