package authz

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/test/idp"
	"github.com/open-policy-agent/opa/v1/ast"
)

func TestNewIdentityEmail(t *testing.T) {
	tests := []struct {
		name     string
		verified any // email_verified; nil: absent
		want     string
	}{
		{"verified", true, "alice@example.com"},
		{"verified as a string", "true", "alice@example.com"},
		{"not verified", false, ""},
		{"not verified as a string", "false", ""},
		{"no email_verified", nil, ""},
		{"other string", "yes", ""},
		{"number", 1.0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			claims := map[string]any{"sub": "alice", "email": "alice@example.com"}
			if tc.verified != nil {
				claims["email_verified"] = tc.verified
			}
			id := newIdentity(claims)
			if id.Email != tc.want {
				t.Errorf("Email = %q, want %q", id.Email, tc.want)
			}
			// The policy sees the claim as issued, verified or not.
			tt, err := newTokenTerm(id, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := tt.whole().Value.(ast.Object).Get(ast.StringTerm("claims")).Value.(ast.Object).Get(ast.StringTerm("email"))
			if got == nil || got.Value.Compare(ast.String("alice@example.com")) != 0 {
				t.Errorf("policy input token.claims.email = %v, want the issued address", got)
			}
		})
	}
}

func TestNewIdentityUnsendable(t *testing.T) {
	base := func(extra map[string]any) map[string]any {
		c := map[string]any{"sub": "alice", "iss": "https://idp.example.com", "client_id": "mcp-client", "scope": "tools:read tools:call",
			"email": "alice@example.com", "email_verified": true}
		for k, v := range extra {
			if v == nil {
				delete(c, k)
				continue
			}
			c[k] = v
		}
		return c
	}
	tests := []struct {
		name   string
		claims map[string]any
		want   string // the claim refused; "" when every value can be sent
	}{
		{"plain", base(nil), ""},
		{"non-ASCII subject", base(map[string]any{"sub": "José"}), ""},
		{"HTAB inside", base(map[string]any{"sub": "a\tb"}), ""},
		{"CR LF in sub", base(map[string]any{"sub": "eve\r\nX-Injected: yes"}), "sub"},
		{"LF in sub", base(map[string]any{"sub": "eve\nX-Injected: yes"}), "sub"},
		{"NUL in sub", base(map[string]any{"sub": "eve\x00"}), "sub"},
		{"DEL in sub", base(map[string]any{"sub": "eve\x7f"}), "sub"},
		{"trailing space in sub", base(map[string]any{"sub": "alice "}), "sub"},
		{"invalid UTF-8 in sub", base(map[string]any{"sub": "caf\xe9"}), "sub"},
		{"control in iss", base(map[string]any{"iss": "https://idp.example.com\r\n"}), "iss"},
		{"control in client_id", base(map[string]any{"client_id": "mcp-client\n"}), "client_id"},
		{"control in cid", base(map[string]any{"client_id": nil, "cid": "okta\x00"}), "cid"},
		{"control in azp", base(map[string]any{"client_id": nil, "azp": "\x01app"}), "azp"},
		{"control in verified email", base(map[string]any{"email": "a@example.com\r\nX-Admin: 1"}), "email"},
		{"control in unverified email: not sent", base(map[string]any{"email": "a@example.com\r\nX-Admin: 1", "email_verified": false}), ""},
		{"control in scope", base(map[string]any{"scope": "tools:read to\x00ls:call"}), "scope"},
		{"CR LF in scope string: split like spaces", base(map[string]any{"scope": "tools:read\r\ntools:call"}), ""},
		{"space in scp item", base(map[string]any{"scope": nil, "scp": []any{"tools:read", "tools:call tools:admin"}}), "scp"},
		{"CR LF in scp item", base(map[string]any{"scope": nil, "scp": []any{"tools:read\r\nX-Injected: yes"}}), "scp"},
		{"tab in scp item", base(map[string]any{"scope": nil, "scp": []any{"tools:read\ttools:admin"}}), "scp"},
		{"scp next to scope", base(map[string]any{"scp": []any{"x\x00"}}), "scp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := newIdentity(tc.claims).unsendable; got != tc.want {
				t.Errorf("unsendable = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestIdentityMemo: what an adapter derives from an identity is built once per cached token, on the request
// that verified it, and shared by the later requests carrying it; without the token cache it is built on
// every request.
func TestIdentityMemo(t *testing.T) {
	const issuer = "https://idp.example.com"
	const resURL = "https://mcp.example.com/mcp"
	p, err := idp.New(issuer)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := p.Mint(map[string]any{"sub": "alice", "aud": resURL})
	if err != nil {
		t.Fatal(err)
	}
	is := config.Issuer{Issuer: issuer, DiscoveryURL: issuer + config.OIDCDiscoverySuffix, Algorithms: config.DefaultAlgorithms, MinRefreshInterval: config.Duration(time.Hour)}
	ks := NewKeySet(is, nil, slog.New(slog.NewJSONHandler(io.Discard, nil)), nil)
	installSet(ks, p.PublicJWKS())
	ks.lastFetch = time.Now()
	type key struct{}
	tests := []struct {
		name      string
		opts      []VerifierOption
		wantBuilt int
	}{
		{"token cache on", nil, 1}, // the first request verifies afresh and fills the cached token's memo
		{"token cache off", []VerifierOption{WithTokenCache(-1)}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier([]config.Issuer{is}, map[string]*KeySet{issuer: ks}, time.Minute, time.Now, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			built := 0
			var first any
			for i := range 3 {
				id, e := v.Verify(context.Background(), tok, []string{resURL})
				if e != nil {
					t.Fatal(e)
				}
				got := id.Memo(key{}, func() any { built++; return &struct{ sub string }{id.Subject} })
				if i == 0 {
					first = got
				} else if tc.wantBuilt == 1 && got != first {
					t.Errorf("request %d got a different memoized value", i)
				}
			}
			if built != tc.wantBuilt {
				t.Errorf("built %d times, want %d", built, tc.wantBuilt)
			}
		})
	}
}
