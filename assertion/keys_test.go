package assertion

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/mcp-authz/mcp-authz/config"
)

// pemOf encodes a key as PEM: PKCS#8 for a private key, SEC 1 when sec1, PKIX for a public key.
func pemOf(t testing.TB, key any, sec1 bool) []byte {
	t.Helper()
	var (
		der  []byte
		kind = "PRIVATE KEY"
		err  error
	)
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if sec1 {
			der, err = x509.MarshalECPrivateKey(k)
			kind = "EC PRIVATE KEY"
		} else {
			der, err = x509.MarshalPKCS8PrivateKey(k)
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
		der, err = x509.MarshalPKIXPublicKey(k)
		kind = "PUBLIC KEY"
	default:
		der, err = x509.MarshalPKCS8PrivateKey(k)
	}
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}

func newEC(t testing.TB, curve elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newEd25519(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func jwkOf(t testing.TB, key any) []byte {
	t.Helper()
	k, err := jwk.FromRaw(key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeKey(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// jwksKids returns the kids of a JWKS document, in order.
func jwksKids(t testing.TB, doc []byte) []string {
	t.Helper()
	set, err := jwk.Parse(doc)
	if err != nil {
		t.Fatalf("JWKS %s: %v", doc, err)
	}
	var kids []string
	for i := range set.Len() {
		k, _ := set.Key(i)
		if _, isPrivate := k.(interface{ D() []byte }); isPrivate {
			t.Fatalf("JWKS publishes a private key: %s", doc)
		}
		kids = append(kids, k.KeyID())
	}
	return kids
}

func TestLoadKeysFormats(t *testing.T) {
	tests := []struct {
		name, alg string
		content   func(t testing.TB) []byte
	}{
		{"EC P-256 PKCS#8", "ES256", func(t testing.TB) []byte { return pemOf(t, newEC(t, elliptic.P256()), false) }},
		{"EC P-256 SEC 1", "ES256", func(t testing.TB) []byte { return pemOf(t, newEC(t, elliptic.P256()), true) }},
		{"Ed25519 PKCS#8", "EdDSA", func(t testing.TB) []byte { return pemOf(t, newEd25519(t), false) }},
		{"EC P-256 JWK", "ES256", func(t testing.TB) []byte { return jwkOf(t, newEC(t, elliptic.P256())) }},
		{"Ed25519 JWK", "EdDSA", func(t testing.TB) []byte { return jwkOf(t, newEd25519(t)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "key")
			writeKey(t, file, tc.content(t))
			k, err := LoadKeys(config.IdentityAssertion{SigningKeys: []string{file}, RotationGrace: config.Duration(time.Minute)}, KeysOptions{})
			if err != nil {
				t.Fatal(err)
			}
			s := k.signer()
			if string(s.alg) != tc.alg || len(s.kid) != 43 { // base64url of a SHA-256 thumbprint
				t.Fatalf("signer alg %s kid %q", s.alg, s.kid)
			}
			if kids := jwksKids(t, k.JWKS()); !slices.Equal(kids, []string{s.kid}) {
				t.Fatalf("JWKS kids %v, want [%s]", kids, s.kid)
			}
			if !strings.Contains(string(k.JWKS()), `"alg":"`+tc.alg+`"`) || !strings.Contains(string(k.JWKS()), `"use":"sig"`) {
				t.Errorf("JWKS %s lacks alg or use", k.JWKS())
			}
		})
	}
}

// TestLoadKeysRefuses checks every refused key: each error names the field and the file.
func TestLoadKeysRefuses(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content []byte
		want    string
	}{
		{"RSA", pemOf(t, rsaKey, false), "RSA key"},
		{"EC P-384", pemOf(t, newEC(t, elliptic.P384()), false), "EC curve P-384 refused"},
		{"symmetric JWK", []byte(`{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}`), "symmetric (HS) key"},
		{"EC public key", pemOf(t, &newEC(t, elliptic.P256()).PublicKey, false), "a public key"},
		{"Ed25519 public key", pemOf(t, newEd25519(t).Public(), false), "a public key"},
		{"garbage", []byte("not a key"), "not a PEM or JWK private key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "key.pem")
			writeKey(t, file, tc.content)
			_, err := LoadKeys(config.IdentityAssertion{SigningKeys: []string{file}}, KeysOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "identity_assertion.signing_keys[0]: "+file) {
				t.Fatalf("error = %v, want the field, the file and %q", err, tc.want)
			}
		})
	}
	t.Run("empty directory", func(t *testing.T) {
		dir := t.TempDir()
		writeKey(t, filepath.Join(dir, ".hidden"), pemOf(t, newEC(t, elliptic.P256()), false))
		_, err := LoadKeys(config.IdentityAssertion{SigningKeys: []string{dir}}, KeysOptions{})
		if err == nil || !strings.Contains(err.Error(), "identity_assertion.signing_keys: no key file found") {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("missing path", func(t *testing.T) {
		_, err := LoadKeys(config.IdentityAssertion{SigningKeys: []string{"/nonexistent/keys"}}, KeysOptions{})
		if err == nil || !strings.Contains(err.Error(), "identity_assertion.signing_keys[0]") {
			t.Fatalf("error = %v", err)
		}
	})
}

// TestKeysRotation adds a key whose file sorts last (it takes over signing, the old one stays published),
// removes the old one (still published for the grace, then gone), and checks that a bad file appearing
// later keeps the keys in use.
func TestKeysRotation(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	writeKey(t, filepath.Join(dir, "2026-01.pem"), pemOf(t, newEC(t, elliptic.P256()), false))
	k, err := LoadKeys(config.IdentityAssertion{SigningKeys: []string{dir}, RotationGrace: config.Duration(10 * time.Minute)}, KeysOptions{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	old := k.signer().kid
	reload := func(wantChanged bool) {
		t.Helper()
		changed, err := k.reload()
		if err != nil || changed != wantChanged {
			t.Fatalf("reload: changed %v (want %v), %v", changed, wantChanged, err)
		}
	}
	reload(false)

	writeKey(t, filepath.Join(dir, "2026-02.pem"), pemOf(t, newEd25519(t), false))
	reload(true)
	next := k.signer().kid
	if next == old {
		t.Fatal("the key whose file sorts last does not sign")
	}
	if kids := jwksKids(t, k.JWKS()); !slices.Equal(kids, []string{next, old}) {
		t.Fatalf("after adding: JWKS %v, want [%s %s]", kids, next, old)
	}

	if err := os.Remove(filepath.Join(dir, "2026-01.pem")); err != nil {
		t.Fatal(err)
	}
	reload(true)
	if kids := jwksKids(t, k.JWKS()); !slices.Equal(kids, []string{next, old}) {
		t.Fatalf("within the grace: JWKS %v, want the removed key still there", kids)
	}
	now = now.Add(10 * time.Minute)
	reload(false)
	if kids := jwksKids(t, k.JWKS()); !slices.Equal(kids, []string{next}) {
		t.Fatalf("after the grace: JWKS %v, want [%s]", kids, next)
	}

	writeKey(t, filepath.Join(dir, "2026-03.pem"), []byte("garbage"))
	if _, err := k.reload(); err == nil {
		t.Fatal("a bad key file was accepted")
	}
	if k.signer().kid != next {
		t.Fatal("a failed reload changed the signer")
	}
}

func TestJWKSHandler(t *testing.T) {
	file := filepath.Join(t.TempDir(), "key.pem")
	writeKey(t, file, pemOf(t, newEC(t, elliptic.P256()), false))
	k, err := LoadKeys(config.IdentityAssertion{SigningKeys: []string{file}, RotationGrace: config.Duration(4 * time.Minute)}, KeysOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	k.ServeHTTP(rec, httptest.NewRequest("GET", JWKSPath, nil))
	h := rec.Header()
	if rec.Code != 200 || h.Get("Content-Type") != "application/jwk-set+json" || h.Get("Cache-Control") != "public, max-age=120" ||
		h.Get("Access-Control-Allow-Origin") != "*" || rec.Body.String() != string(k.JWKS()) {
		t.Fatalf("%d %v %s", rec.Code, h, rec.Body)
	}
}

// TestLoadKeysKubernetesSecret reads a folder laid out as a mounted Kubernetes Secret: each key a symlink
// into the ..data folder, which the loader does not read as keys of its own.
func TestLoadKeysKubernetesSecret(t *testing.T) {
	dir := t.TempDir()
	version := filepath.Join(dir, "..2026_11_30_03_00_00.000000001")
	if err := os.Mkdir(version, 0o755); err != nil {
		t.Fatal(err)
	}
	writeKey(t, filepath.Join(version, "signing.pem"), pemOf(t, newEd25519(t), false))
	for link, target := range map[string]string{"..data": filepath.Base(version), "signing.pem": "..data/signing.pem"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	k, err := LoadKeys(config.IdentityAssertion{SigningKeys: []string{dir}, RotationGrace: config.Duration(time.Minute)}, KeysOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if kids := jwksKids(t, k.JWKS()); len(kids) != 1 || k.signer().alg != "EdDSA" {
		t.Fatalf("JWKS kids %v, signer %s", kids, k.signer().alg)
	}
}
