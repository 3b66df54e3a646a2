package service_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/service"
)

// assertionKey writes a new EC P-256 private key (PKCS#8 PEM) to a file and returns its path.
func assertionKey(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "assertion.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestIdentityAssertion runs mcp-authz with the assertion on for one resource, a policy that adds claims
// (one of them reserved) and tries to set the assertion header itself, and checks over both transports that an allow carries an assertion verifying
// against the served JWKS, that the next requests with the same token reuse it, and that the resource
// without the assertion gets none, a client-sent copy being removed.
func TestIdentityAssertion(t *testing.T) {
	p := startIdP(t)
	dir := policyDir(t, testData, nil)
	// The shipped policy's decision, with assertion claims added.
	rego, err := os.ReadFile(filepath.Join(dir, "authz.rego"))
	if err != nil {
		t.Fatal(err)
	}
	patched := strings.Replace(string(rego), `decision := {"allow": true, "reason": "allowed"} if count(denials) == 0`,
		`decision := {"allow": true, "reason": "allowed", "assertion_claims": {"tenant": "acme", "sub": "mallory"},
			"headers": {"x-mcp-identity": "forged by the policy"}} if count(denials) == 0`, 1)
	if patched == string(rego) {
		t.Fatal("the shipped policy's allow rule changed: update this test")
	}
	if err := os.WriteFile(filepath.Join(dir, "authz.rego"), []byte(patched), 0o600); err != nil {
		t.Fatal(err)
	}
	inst := startService(t, fmt.Sprintf(`
public_url: https://authz.example.com
resources:
  - {url: %s, identity_assertion: true}
  - {url: %s}
issuers: [{discovery_url: %s/.well-known/openid-configuration, required_type: at+jwt}]
policy: {paths: [%s]}
identity_assertion: {signing_keys: [%s], ttl: 30s}
`, resourceURL, publicURL, p.Issuer(), dir, assertionKey(t)), true)

	resp, err := http.Get(inst.http + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	set, err := jwk.ParseReader(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/jwk-set+json" || set.Len() != 1 {
		t.Fatalf("JWKS: %d %q %v", resp.StatusCode, resp.Header.Get("Content-Type"), err)
	}
	revision := inst.svc.Policy().Status().Revision
	token := mint(t, p, userClaims(nil))
	for _, tr := range transports() {
		t.Run(tr.name, func(t *testing.T) {
			first := tr.check(t, inst, checkRequest(bearer(token), "/mcp", listTools))
			value := first.headers["x-mcp-identity"]
			if !first.allowed || value == "" {
				t.Fatalf("allow without the assertion: %+v", first)
			}
			tok, err := jwt.Parse([]byte(value), jwt.WithKeySet(set), jwt.WithValidate(true), jwt.WithIssuer("https://authz.example.com"),
				jwt.WithAudience(resourceURL), jwt.WithAcceptableSkew(time.Second))
			if err != nil {
				t.Fatalf("assertion does not verify: %v", err)
			}
			if tok.Subject() != "alice" || tok.Expiration().Sub(tok.IssuedAt()) != 30*time.Second {
				t.Errorf("sub %q, lifetime %v", tok.Subject(), tok.Expiration().Sub(tok.IssuedAt()))
			}
			for name, want := range map[string]any{"tenant": "acme", "client_id": "mcp-client", "token_iss": p.Issuer(), "policy_revision": revision} {
				if got, _ := tok.Get(name); got != want || want == "" {
					t.Errorf("claim %s = %v, want %v", name, got, want)
				}
			}
			// The first request verified the token afresh; from the second on it is cached, and so is its
			// assertion, whatever the request id.
			second := tr.check(t, inst, checkRequest(bearer(token), "/mcp", listTools)).headers["x-mcp-identity"]
			third := tr.check(t, inst, checkRequest(merge(bearer(token), map[string]string{"x-request-id": "another"}), "/mcp", listTools))
			if second == "" || third.headers["x-mcp-identity"] != second {
				t.Error("requests with the same cached token did not reuse the assertion")
			}
			req := checkRequest(merge(bearer(mint(t, p, userClaims(map[string]any{"aud": publicURL}))), map[string]string{"x-mcp-identity": "forged by the client"}),
				"/public/mcp", listTools)
			req.Attributes.ContextExtensions["resource"] = publicURL
			other := tr.check(t, inst, req)
			if !other.allowed {
				t.Fatalf("resource without the assertion: %+v", other)
			}
			if v, ok := other.headers["x-mcp-identity"]; ok {
				t.Errorf("resource without the assertion got one: %q", v)
			}
			if !slices.Contains(other.removed, "x-mcp-identity") {
				t.Errorf("a client-sent assertion header is not removed: %v", other.removed)
			}
		})
	}
}

// TestIdentityAssertionMetric: the count of assertions signed is exported, and stays below the allows
// when a token's requests reuse its assertion.
func TestIdentityAssertionMetric(t *testing.T) {
	p := startIdP(t)
	inst := startService(t, fmt.Sprintf(`
resources: [{url: %s, identity_assertion: true}]
issuers: [{discovery_url: %s/.well-known/openid-configuration, required_type: at+jwt}]
policy: {paths: [%s]}
identity_assertion: {signing_keys: [%s]}
`, resourceURL, p.Issuer(), policyDir(t, testData, nil), assertionKey(t)), true)
	token := mint(t, p, userClaims(nil))
	for range 5 {
		if o := grpcCheck(t, inst, checkRequest(bearer(token), "/mcp", listTools)); !o.allowed || o.headers["x-mcp-identity"] == "" {
			t.Fatalf("allow without the assertion: %+v", o)
		}
	}
	families, _ := scrape(t, inst.http)
	f := families["mcp_authz_identity_assertions_signed_total"]
	if f == nil {
		t.Fatal("no mcp_authz_identity_assertions_signed_total")
	}
	// The first request verifies the token, caches it and signs into the cached token's slot; the others
	// reuse that assertion.
	if v, ok := value(f, nil); !ok || v != 1 {
		t.Errorf("assertions signed for 5 allows of one token = %v, want 1", v)
	}
}

// TestIdentityAssertionStartup: a refused key stops start-up naming the field, and without the block no
// JWKS is served.
func TestIdentityAssertionStartup(t *testing.T) {
	p := startIdP(t)
	dir := policyDir(t, testData, nil)
	bad := filepath.Join(t.TempDir(), "hs.jwk")
	if err := os.WriteFile(bad, []byte(`{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("resources: [{url: %s, identity_assertion: true}]\nissuers: [{discovery_url: %s/.well-known/openid-configuration}]\npolicy: {paths: [%s]}\n", resourceURL, p.Issuer(), dir)
	cfg, err := config.Parse([]byte(base + fmt.Sprintf("identity_assertion: {signing_keys: [%s]}\n", bad)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := service.New(context.Background(), cfg, discardLogger()); err == nil || !strings.Contains(err.Error(), "identity_assertion.signing_keys[0]") {
		t.Fatalf("error = %v, want it to name identity_assertion.signing_keys[0]", err)
	}
	inst := startService(t, strings.Replace(base, ", identity_assertion: true", "", 1), true)
	if status, _ := get(t, inst.http+"/.well-known/jwks.json"); status != http.StatusNotFound {
		t.Errorf("JWKS without identity_assertion: %d, want 404", status)
	}
}
