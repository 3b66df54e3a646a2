package mcpserver_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/mcp-authz/mcp-authz/assertion"
	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/test/mcpserver"
)

const (
	issuer   = "https://authz.example.com"
	audience = "https://mcp.example.com/mcp"
	other    = "https://mcp.example.com/other"
)

// writeECKey writes a new EC P-256 private key (PKCS#8 PEM) to path and returns it.
func writeECKey(t *testing.T, path string) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

// authzSide is mcp-authz's part: its keys (served as a JWKS) and a minter for audience and other.
type authzSide struct {
	dir    string
	keys   *assertion.Keys
	minter *assertion.Minter
	jwks   string
	key    *ecdsa.PrivateKey // the first signing key
}

func newAuthzSide(t *testing.T, now func() time.Time) *authzSide {
	t.Helper()
	a := &authzSide{dir: t.TempDir()}
	a.key = writeECKey(t, filepath.Join(a.dir, "1.pem"))
	cfg := config.Config{
		Resources: []config.Resource{{URL: audience, IdentityAssertion: true}, {URL: other, IdentityAssertion: true}},
		IdentityAssertion: &config.IdentityAssertion{Issuer: issuer, Header: "x-mcp-identity", TTL: config.Duration(time.Minute),
			SigningKeys: []string{a.dir}, RotationGrace: config.Duration(10 * time.Minute)},
	}
	var err error
	if a.keys, err = assertion.LoadKeys(*cfg.IdentityAssertion, assertion.KeysOptions{Poll: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.keys.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	a.minter = assertion.NewMinter(cfg, a.keys, slog.New(slog.DiscardHandler), now)
	srv := httptest.NewServer(a.keys)
	t.Cleanup(srv.Close)
	a.jwks = srv.URL + assertion.JWKSPath
	return a
}

// mint returns an assertion for alice to resource, minted now by mcp-authz.
func (a *authzSide) mint(t *testing.T, resource string, expiry time.Time) string {
	t.Helper()
	hs, e := a.minter.Credential(context.Background(), authz.Grant{Resource: resource, RequestID: "r1",
		Identity: &authz.Identity{Subject: "alice", ClientID: "mcp-client", Expiry: expiry}})
	if e != nil || len(hs) != 1 {
		t.Fatalf("mint: %v %v", hs, e)
	}
	return hs[0].Value
}

// signed signs payload with key under kid and typ, as a forger holding (or not) mcp-authz's key would.
func signed(t *testing.T, key crypto.Signer, kid, typ, payload string) string {
	t.Helper()
	h := jws.NewHeaders()
	h.Set(jws.KeyIDKey, kid)
	h.Set(jws.TypeKey, typ)
	b, err := jws.Sign([]byte(payload), jws.WithKey(jwa.ES256, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func kidOf(t *testing.T, key *ecdsa.PrivateKey) string {
	t.Helper()
	pub, _ := jwk.FromRaw(&key.PublicKey)
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

// TestIdentityVerifier sends the server requests with and without a valid assertion: only a valid one
// for its own audience is served, and the verified subject is recorded.
func TestIdentityVerifier(t *testing.T) {
	now := time.Now()
	a := newAuthzSide(t, func() time.Time { return now })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := mcpserver.NewIdentityVerifier(ctx, mcpserver.IdentityOptions{JWKSURL: a.jwks, Issuer: issuer, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	s := mcpserver.New(mcpserver.WithIdentityVerifier(v))
	payload := func(aud string, exp time.Time) string {
		return `{"iss":"` + issuer + `","aud":"` + aud + `","sub":"alice","iat":` + itoa(now.Unix()) + `,"exp":` + itoa(exp.Unix()) + `}`
	}
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tests := []struct {
		name    string
		headers map[string]string
		refusal string // "" : served
	}{
		{"valid assertion", map[string]string{"x-mcp-identity": a.mint(t, audience, now.Add(time.Hour))}, ""},
		{"no assertion, forged identity headers", map[string]string{"x-mcp-subject": "admin", "x-mcp-client-id": "mcp-client"}, "no identity assertion"},
		{"assertion for another resource", map[string]string{"x-mcp-identity": a.mint(t, other, now.Add(time.Hour))}, `"aud" not satisfied`},
		{"expired assertion", map[string]string{"x-mcp-identity": signed(t, a.key, kidOf(t, a.key), assertion.Type, payload(audience, now.Add(-time.Minute)))}, `"exp" not satisfied`},
		{"another issuer", map[string]string{"x-mcp-identity": signed(t, a.key, kidOf(t, a.key), assertion.Type,
			strings.Replace(payload(audience, now.Add(time.Minute)), issuer, "https://evil.example.com", 1))}, `"iss" not satisfied`},
		{"typ of an access token", map[string]string{"x-mcp-identity": signed(t, a.key, kidOf(t, a.key), "at+jwt", payload(audience, now.Add(time.Minute)))}, "typ"},
		{"key not in the JWKS", map[string]string{"x-mcp-identity": signed(t, stranger, kidOf(t, a.key), assertion.Type, payload(audience, now.Add(time.Minute)))}, "refused"},
		{"not a JWS", map[string]string{"x-mcp-identity": "garbage"}, "not a compact JWS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			records := s.Records()
			last := records[len(records)-1]
			if tc.refusal == "" {
				if rec.Code == http.StatusUnauthorized || last.Refusal != "" || last.Subject != "alice" {
					t.Fatalf("valid assertion: %d %s, record %+v", rec.Code, rec.Body, last)
				}
				return
			}
			body, _ := io.ReadAll(rec.Body)
			if rec.Code != http.StatusUnauthorized || !strings.Contains(string(body), "no valid identity assertion") {
				t.Errorf("status %d %s, want 401", rec.Code, body)
			}
			if !strings.Contains(last.Refusal, tc.refusal) {
				t.Errorf("refusal %q, want it to contain %q", last.Refusal, tc.refusal)
			}
		})
	}

	// Two copies (a proxy that appended its assertion to a client's): refused, whichever is valid.
	req := httptest.NewRequest("POST", "/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Add("x-mcp-identity", a.mint(t, audience, now.Add(time.Hour)))
	req.Header.Add("x-mcp-identity", a.mint(t, audience, now.Add(time.Hour)))
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if records := s.Records(); rec.Code != http.StatusUnauthorized || !strings.Contains(records[len(records)-1].Refusal, "more than once") {
		t.Errorf("two assertion headers: %d, want 401 (more than once)", rec.Code)
	}

	// Rotation: a new key takes over at mcp-authz; the server fetches the JWKS again for its kid.
	writeECKey(t, filepath.Join(a.dir, "2.pem"))
	for deadline := time.Now().Add(10 * time.Second); strings.Count(string(a.keys.JWKS()), `"kid"`) != 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the new key was not loaded")
		}
	}
	req = httptest.NewRequest("POST", "/mcp", strings.NewReader(`{}`))
	req.Header.Set("x-mcp-identity", a.mint(t, audience, now.Add(time.Hour)))
	if _, err := v.Verify(context.Background(), req); err != nil {
		t.Fatalf("assertion signed with the new key: %v", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
