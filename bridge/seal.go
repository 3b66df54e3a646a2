package bridge

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// Purpose says what a sealed value is. It is bound to the ciphertext as additional authenticated data, so a
// value sealed for one purpose never opens as another: a state presented as a code, or a code as a client id,
// fails authentication like a forgery.
type Purpose string

// The purposes of sealed values.
const (
	PurposeClient  Purpose = "client"  // a DCR client id: the client's validated metadata
	PurposeState   Purpose = "state"   // the state sent to the IdP: the pending authorization
	PurposeCode    Purpose = "code"    // the code given to the MCP client: the IdP's code and the checks
	PurposeRefresh Purpose = "refresh" // a refresh token given to the MCP client: the IdP's, bound to the client
	PurposeConsent Purpose = "consent" // the consent form's transaction
	PurposeCSRF    Purpose = "csrf"    // the consent form's CSRF token
	PurposeGrants  Purpose = "grants"  // the cookie remembering which clients a browser approved
)

// sealVersion is the first byte of every sealed value; a new format gets a new version.
const sealVersion = 1

// KeySize is the size of a sealing key (AES-256).
const KeySize = 32

// Sealer seals values with AES-256-GCM under the first key and opens them with any key, so that keys rotate
// without breaking what is in flight: add the new key first, keep the old one until what it sealed expired.
// Sealed values are base64url text, safe in URLs, forms and cookies. It is safe for concurrent use.
type Sealer struct {
	aeads []cipher.AEAD
	now   func() time.Time
}

// ErrSealed is what every failure to open a sealed value wraps: forged, damaged, sealed by an unknown key or for
// another purpose, or expired.
var ErrSealed = errors.New("sealed value refused")

var errExpired = fmt.Errorf("%w: expired", ErrSealed)

// NewSealer returns a Sealer over keys (KeySize bytes each; the first seals), telling time with now.
func NewSealer(keys [][]byte, now func() time.Time) (*Sealer, error) {
	if len(keys) == 0 {
		return nil, errors.New("sealer: no key")
	}
	s := &Sealer{now: now}
	for i, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("sealer: key %d has %d bytes, want %d", i, len(k), KeySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("sealer: key %d: %w", i, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("sealer: key %d: %w", i, err)
		}
		s.aeads = append(s.aeads, aead)
	}
	return s, nil
}

// LoadKeys reads sealing key files: KeySize raw bytes, or their base64 (standard or URL alphabet, padded or
// not, surrounding white space ignored).
func LoadKeys(files []string) ([][]byte, error) {
	var keys [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read sealing key: %w", err)
		}
		k, err := parseKey(b)
		if err != nil {
			return nil, fmt.Errorf("sealing key %s: %w", f, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func parseKey(b []byte) ([]byte, error) {
	if len(b) == KeySize {
		return b, nil
	}
	t := string(bytes.TrimSpace(b))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(t); err == nil && len(k) == KeySize {
			return k, nil
		}
	}
	return nil, fmt.Errorf("want %d random bytes, raw or base64 (openssl rand -base64 32)", KeySize)
}

// envelope is what is sealed: the value and when it stops opening (unix seconds; 0: never).
type envelope struct {
	Exp int64           `json:"e,omitempty"`
	V   json.RawMessage `json:"v"`
}

func aad(p Purpose) []byte { return []byte("mcp-authz/bridge/v1/" + string(p)) }

// Seal encodes v as JSON and seals it for purpose p until exp (zero: no expiry).
func (s *Sealer) Seal(p Purpose, v any, exp time.Time) (string, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("seal %s: %w", p, err)
	}
	env := envelope{V: raw}
	if !exp.IsZero() {
		env.Exp = exp.Unix()
	}
	plain, err := json.Marshal(env)
	if err != nil {
		return "", fmt.Errorf("seal %s: %w", p, err)
	}
	aead := s.aeads[0]
	out := make([]byte, 1, 1+aead.NonceSize()+len(plain)+aead.Overhead())
	out[0] = sealVersion
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	out = append(out, nonce...)
	out = aead.Seal(out, nonce, plain, aad(p))
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// Open opens a value sealed for purpose p into v. It fails, wrapping ErrSealed, when the value was not sealed
// by one of the keys for that purpose, was changed, or has expired.
func (s *Sealer) Open(p Purpose, sealed string, v any) error {
	// Strict: only the canonical encoding decodes, so one sealed value has one text (the replay cache keys on it).
	b, err := base64.RawURLEncoding.Strict().DecodeString(sealed)
	if err != nil {
		return fmt.Errorf("%w: not base64url", ErrSealed)
	}
	if len(b) < 1 || b[0] != sealVersion {
		return fmt.Errorf("%w: unknown format", ErrSealed)
	}
	b = b[1:]
	var plain []byte
	for _, aead := range s.aeads {
		if len(b) < aead.NonceSize()+aead.Overhead() {
			return fmt.Errorf("%w: too short", ErrSealed)
		}
		if plain, err = aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], aad(p)); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("%w: not sealed by a configured key as a %s", ErrSealed, p)
	}
	var env envelope
	if err := json.Unmarshal(plain, &env); err != nil {
		return fmt.Errorf("%w: %v", ErrSealed, err)
	}
	if env.Exp != 0 && !s.now().Before(time.Unix(env.Exp, 0)) {
		return errExpired
	}
	if err := json.Unmarshal(env.V, v); err != nil {
		return fmt.Errorf("%w: %v", ErrSealed, err)
	}
	return nil
}
