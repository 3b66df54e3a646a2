package assertion

import (
	"bytes"
	"context"
	"crypto"
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/config"
)

const (
	resourceA = "https://mcp.example.com/a"
	resourceB = "https://mcp.example.com/b"
)

// newMinter returns a Minter with one EC key, the assertion on for resourceA only, at the clock *now, and
// the buffer its log goes to.
func newMinter(t testing.TB, now *time.Time) (*Minter, *Keys, *bytes.Buffer) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "key.pem")
	writeKey(t, file, pemOf(t, newEC(t, elliptic.P256()), false))
	cfg, err := config.Parse([]byte(`
public_url: https://authz.example.com
resources: [{url: "` + resourceA + `", identity_assertion: true}, {url: "` + resourceB + `"}]
issuers: [{discovery_url: "https://idp.example.com/.well-known/openid-configuration"}]
policy: {paths: ["."]}
identity_assertion: {signing_keys: ["` + file + `"], ttl: 60s}
`))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := LoadKeys(*cfg.IdentityAssertion, KeysOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	return NewMinter(cfg, keys, slog.New(slog.NewTextHandler(&buf, nil)), func() time.Time { return *now }), keys, &buf
}

func grant(resource string, expiry time.Time) authz.Grant {
	return authz.Grant{Resource: resource, Token: "token", RequestID: "req-1", PolicyRevision: "rev-1",
		Identity: &authz.Identity{Subject: "alice", Issuer: "https://idp.example.com", ClientID: "mcp-client",
			Scopes: []string{"tools:read", "tools:call"}, Expiry: expiry}}
}

// verify checks the assertion's signature against the JWKS and its typ, and returns its claims.
func verify(t testing.TB, keys *Keys, value string) map[string]any {
	t.Helper()
	set, err := jwk.Parse(keys.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	msg, err := jws.Verify([]byte(value), jws.WithKeySet(set))
	if err != nil {
		t.Fatalf("signature: %v", err)
	}
	parsed, err := jws.Parse([]byte(value))
	if err != nil {
		t.Fatal(err)
	}
	if h := parsed.Signatures()[0].ProtectedHeaders(); h.Type() != Type || h.KeyID() != keys.signer().kid {
		t.Errorf("header typ %q kid %q", h.Type(), h.KeyID())
	}
	var c map[string]any
	if err := json.Unmarshal(msg, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMintClaims(t *testing.T) {
	now := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	m, keys, logs := newMinter(t, &now)
	tests := []struct {
		name    string
		expiry  time.Time
		policy  map[string]any
		wantExp time.Time
		want    map[string]any // claims expected besides the fixed ones
		warned  string
	}{
		{"ttl bounds exp", now.Add(time.Hour), nil, now.Add(time.Minute), nil, ""},
		{"token exp bounds exp", now.Add(20 * time.Second), nil, now.Add(20 * time.Second), nil, ""},
		{"policy claims added", now.Add(time.Hour), map[string]any{"tenant": "acme", "groups": []any{"a"}}, now.Add(time.Minute),
			map[string]any{"tenant": "acme", "groups": []any{"a"}}, ""},
		{"reserved claims dropped", now.Add(time.Hour), map[string]any{"sub": "mallory", "exp": 1e12, "act": "x", "tenant": "acme"}, now.Add(time.Minute),
			map[string]any{"tenant": "acme"}, "policy assertion claim ignored"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs.Reset()
			g := grant(resourceA, tc.expiry)
			g.AssertionClaims = tc.policy
			hs, e := m.Credential(context.Background(), g)
			if e != nil || len(hs) != 1 || hs[0].Name != "x-mcp-identity" {
				t.Fatalf("headers %v, error %v", hs, e)
			}
			c := verify(t, keys, hs[0].Value)
			want := map[string]any{"iss": "https://authz.example.com", "aud": resourceA, "sub": "alice", "client_id": "mcp-client",
				"scope": "tools:read tools:call", "act": map[string]any{"sub": "mcp-client"}, "token_iss": "https://idp.example.com",
				"iat": float64(now.Unix()), "exp": float64(tc.wantExp.Unix()), "request_id": "req-1", "policy_revision": "rev-1"}
			for k, v := range tc.want {
				want[k] = v
			}
			jti, _ := c["jti"].(string)
			delete(c, "jti")
			if len(jti) != 22 { // 128 bits, base64url
				t.Errorf("jti %q", jti)
			}
			gotJSON, _ := json.Marshal(c)
			wantJSON, _ := json.Marshal(want)
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("claims\n got %s\nwant %s", gotJSON, wantJSON)
			}
			if tc.warned != "" && !strings.Contains(logs.String(), tc.warned) {
				t.Errorf("no warning %q in %s", tc.warned, logs)
			}
		})
	}
}

func TestMintOnlyForConfiguredResources(t *testing.T) {
	now := time.Now()
	m, _, _ := newMinter(t, &now)
	if hs, e := m.Credential(context.Background(), grant(resourceB, now.Add(time.Hour))); hs != nil || e != nil {
		t.Fatalf("resource without the assertion got %v %v", hs, e)
	}
	if m.Minted() != 0 {
		t.Fatal("minted for a resource without the assertion")
	}
}

// failingSigner is a key whose signatures fail, as an HSM or a broken key would.
type failingSigner struct{ crypto.Signer }

func (failingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("signing device unavailable")
}

// TestMintFailureRefuses: when the assertion cannot be signed the request is refused as unavailable
// (503), never allowed without it.
func TestMintFailureRefuses(t *testing.T) {
	now := time.Now()
	m, keys, logs := newMinter(t, &now)
	good := keys.signer()
	keys.state.Store(&keyState{signer: &signingKey{kid: good.kid, alg: good.alg, signer: failingSigner{good.signer}, public: good.public}, jwks: keys.JWKS()})
	hs, e := m.Credential(context.Background(), grant(resourceA, now.Add(time.Hour)))
	if hs != nil || e == nil || e.Status != http.StatusServiceUnavailable || !e.Unavailable {
		t.Fatalf("headers %v, error %+v; want a 503 refusal", hs, e)
	}
	if !strings.Contains(logs.String(), "signing device unavailable") {
		t.Errorf("log: %s", logs)
	}
}

// TestReservedClaimWarnedOnce: a policy that sets a reserved claim sets it on every allow; the log says so
// once per claim name, not once per request.
func TestReservedClaimWarnedOnce(t *testing.T) {
	now := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	m, _, logs := newMinter(t, &now)
	for range 3 {
		g := grant(resourceA, now.Add(time.Hour))
		g.AssertionClaims = map[string]any{"sub": "mallory", "tenant": "acme"}
		if _, e := m.Credential(context.Background(), g); e != nil {
			t.Fatal(e)
		}
	}
	if n := strings.Count(logs.String(), "policy assertion claim ignored"); n != 1 {
		t.Errorf("%d warnings for claim sub, want 1:\n%s", n, logs)
	}
}
