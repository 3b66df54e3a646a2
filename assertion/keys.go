package assertion

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/mcp-authz/mcp-authz/config"
)

// JWKSPath is where the HTTP listener serves the public keys that verify assertions.
const JWKSPath = "/.well-known/jwks.json"

// DefaultPoll is how often Keys re-reads the key files when KeysOptions.Poll is zero.
const DefaultPoll = 10 * time.Second

// Keys holds the assertion signing keys read from identity_assertion.signing_keys and follows their
// rotation: Run re-reads the files every poll interval, and when they change the new set takes over at
// once. The key of the file whose name sorts last (base name, over every configured path) signs, so a key
// file named after its creation date (2026-11-30.pem) takes over from older ones when it is added; every
// key found is published in the JWKS, and a key whose file is removed stays published for rotation_grace,
// so that the assertions it signed still verify until they expire. The key id (`kid`) is the key's RFC 7638
// thumbprint.
//
// Only asymmetric keys are accepted: EC P-256 (ES256) and Ed25519 (EdDSA) private keys, as PEM (PKCS#8, or
// SEC 1 for EC) or JWK; RSA, other curves, symmetric keys and public keys are refused. A file that fails
// to load at start-up fails start-up; one that fails later is logged and the keys in use stay.
//
// Reading the current signer or the JWKS is one atomic load; Keys is safe for concurrent use.
type Keys struct {
	paths []string
	grace time.Duration
	poll  time.Duration
	now   func() time.Time
	log   *slog.Logger

	state atomic.Pointer[keyState]

	mu      sync.Mutex // serializes reloads and guards what follows
	digest  [sha256.Size]byte
	loaded  []*signingKey         // the keys of the files, as last read
	retired map[string]retiredKey // by kid: keys whose file went away, published until their grace ends
}

// signingKey is one loaded private key.
type signingKey struct {
	kid    string
	alg    jwa.SignatureAlgorithm
	signer crypto.Signer // *ecdsa.PrivateKey or ed25519.PrivateKey
	public jwk.Key       // with kid, alg and use set, as published
	file   string
}

// retiredKey is a key no longer in the files, still published until until.
type retiredKey struct {
	public jwk.Key
	until  time.Time
}

// keyState is what the request path reads: the signer and the rendered JWKS.
type keyState struct {
	signer *signingKey
	jwks   []byte
}

// KeysOptions tunes Keys. Zero values take defaults.
type KeysOptions struct {
	// Poll is how often the files are re-read. Default DefaultPoll.
	Poll time.Duration
	// Now is the clock of the rotation grace. Default time.Now.
	Now func() time.Time
	// Log receives reload results; nil discards them.
	Log *slog.Logger
}

// LoadKeys reads the signing keys of cfg. Its errors name the configuration field and the file.
func LoadKeys(cfg config.IdentityAssertion, o KeysOptions) (*Keys, error) {
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	k := &Keys{paths: slices.Clone(cfg.SigningKeys), grace: time.Duration(cfg.RotationGrace), poll: o.Poll, now: o.Now, log: o.Log,
		retired: map[string]retiredKey{}}
	if _, err := k.reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// Run re-reads the key files every poll interval until ctx ends.
func (k *Keys) Run(ctx context.Context) {
	t := time.NewTicker(k.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := k.reload()
		switch {
		case err != nil:
			k.log.ErrorContext(ctx, "identity assertion keys not reloaded; keeping the keys in use", "error", err.Error())
		case changed:
			s := k.state.Load()
			k.log.InfoContext(ctx, "identity assertion keys reloaded", "signing_kid", s.signer.kid, "signing_file", s.signer.file)
		}
	}
}

// JWKS returns the published key set document (the signing key first). The slice is shared: do not modify.
func (k *Keys) JWKS() []byte { return k.state.Load().jwks }

// signer returns the key that signs now.
func (k *Keys) signer() *signingKey { return k.state.Load().signer }

// ServeHTTP serves the JWKS: public and cacheable for less than the rotation grace (five minutes at most),
// readable cross-origin.
func (k *Keys) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	maxAge := min(5*time.Minute, k.grace/2)
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(maxAge/time.Second)))
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Write(k.JWKS())
}

// keyFile is one file to read: its path and the field it was configured under.
type keyFile struct {
	field, path string
}

// files lists the key files of the configured paths: a file as such, a directory's regular files (not
// those whose name starts with a dot: a mounted Kubernetes Secret keeps its own entries there).
func (k *Keys) files() ([]keyFile, error) {
	var out []keyFile
	for i, p := range k.paths {
		field := fmt.Sprintf("identity_assertion.signing_keys[%d]", i)
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("config: %s: %w", field, err)
		}
		if !fi.IsDir() {
			out = append(out, keyFile{field, p})
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("config: %s: %w", field, err)
		}
		for _, e := range entries { // sorted by name
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			path := filepath.Join(p, e.Name())
			if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() { // follows the Secret's symlinks
				continue
			}
			out = append(out, keyFile{field, path})
		}
	}
	return out, nil
}

// reload reads the files and, when they changed, installs the new key set. changed is false when the
// files hold what they held at the last reload (only the grace of retired keys is then checked).
func (k *Keys) reload() (changed bool, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	files, err := k.files()
	if err != nil {
		return false, err
	}
	contents := make([][]byte, len(files))
	h := sha256.New()
	for i, f := range files {
		if contents[i], err = os.ReadFile(f.path); err != nil {
			return false, fmt.Errorf("config: %s: %w", f.field, err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f.path, len(contents[i]))
		h.Write(contents[i])
	}
	var digest [sha256.Size]byte
	h.Sum(digest[:0])
	now := k.now()
	if digest == k.digest && k.state.Load() != nil {
		if k.expire(now) {
			return false, k.install()
		}
		return false, nil
	}
	var keys []*signingKey
	for i, f := range files {
		key, err := parseKey(contents[i])
		if err != nil {
			return false, fmt.Errorf("config: %s: %s: %w", f.field, f.path, err)
		}
		key.file = f.path
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return false, fmt.Errorf("config: identity_assertion.signing_keys: no key file found in %s", strings.Join(k.paths, ", "))
	}
	for _, old := range k.loaded {
		if !slices.ContainsFunc(keys, func(n *signingKey) bool { return n.kid == old.kid }) {
			k.retired[old.kid] = retiredKey{public: old.public, until: now.Add(k.grace)}
		}
	}
	for _, n := range keys {
		delete(k.retired, n.kid)
	}
	k.expire(now)
	k.loaded, k.digest = keys, digest
	return true, k.install()
}

// expire drops retired keys whose grace has ended; it reports whether it dropped any.
func (k *Keys) expire(now time.Time) bool {
	n := len(k.retired)
	for kid, r := range k.retired {
		if !now.Before(r.until) {
			delete(k.retired, kid)
		}
	}
	return len(k.retired) != n
}

// install renders the JWKS of the loaded and retired keys and publishes it with the signer: the key of the
// file whose base name sorts last (the later configured path on a tie).
func (k *Keys) install() error {
	signer := k.loaded[0]
	for _, key := range k.loaded[1:] {
		if filepath.Base(key.file) >= filepath.Base(signer.file) {
			signer = key
		}
	}
	set := jwk.NewSet()
	seen := map[string]bool{}
	add := func(pub jwk.Key) error {
		if seen[pub.KeyID()] {
			return nil
		}
		seen[pub.KeyID()] = true
		return set.AddKey(pub)
	}
	if err := add(signer.public); err != nil {
		return fmt.Errorf("identity assertion JWKS: %w", err)
	}
	for _, key := range k.loaded {
		if err := add(key.public); err != nil {
			return fmt.Errorf("identity assertion JWKS: %w", err)
		}
	}
	kids := make([]string, 0, len(k.retired))
	for kid := range k.retired {
		kids = append(kids, kid)
	}
	slices.Sort(kids)
	for _, kid := range kids {
		if err := add(k.retired[kid].public); err != nil {
			return fmt.Errorf("identity assertion JWKS: %w", err)
		}
	}
	doc, err := json.Marshal(set)
	if err != nil {
		return fmt.Errorf("identity assertion JWKS: %w", err)
	}
	k.state.Store(&keyState{signer: signer, jwks: doc})
	return nil
}

// parseKey reads one private key (PEM or JWK) and checks that it is one mcp-authz signs with.
func parseKey(b []byte) (*signingKey, error) {
	var (
		key jwk.Key
		err error
	)
	if bytes.Contains(b, []byte("-----BEGIN")) {
		key, err = jwk.ParseKey(b, jwk.WithPEM(true))
	} else {
		key, err = jwk.ParseKey(b)
	}
	if err != nil {
		return nil, fmt.Errorf("not a PEM or JWK private key: %w", err)
	}
	var raw any
	if err := key.Raw(&raw); err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	sk := &signingKey{}
	switch r := raw.(type) {
	case *ecdsa.PrivateKey:
		if r.Curve.Params().Name != "P-256" {
			return nil, fmt.Errorf("EC curve %s refused: only P-256 (ES256) and Ed25519 (EdDSA) keys sign assertions", r.Curve.Params().Name)
		}
		sk.alg, sk.signer = jwa.ES256, r
	case ed25519.PrivateKey:
		sk.alg, sk.signer = jwa.EdDSA, r
	case *ecdsa.PublicKey, ed25519.PublicKey:
		return nil, errors.New("a public key: signing needs the private key")
	case []byte:
		return nil, errors.New("a symmetric (HS) key: assertions are signed with asymmetric keys only (EC P-256 or Ed25519)")
	default:
		return nil, fmt.Errorf("a %s key: assertions are signed with EC P-256 (ES256) or Ed25519 (EdDSA) keys only", key.KeyType())
	}
	pub, err := jwk.PublicKeyOf(sk.signer)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("key thumbprint: %w", err)
	}
	sk.kid = base64URL(tp)
	for name, v := range map[string]any{jwk.KeyIDKey: sk.kid, jwk.AlgorithmKey: sk.alg, jwk.KeyUsageKey: jwk.ForSignature} {
		if err := pub.Set(name, v); err != nil {
			return nil, fmt.Errorf("public key %s: %w", name, err)
		}
	}
	sk.public = pub
	return sk, nil
}
