package benchenv

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/mcp-authz/mcp-authz/test/idp"
)

// DenyKinds names the refusals of the mixed corpus, in the order MixedCorpus cycles through them: the ways
// a request is refused by the verifier and by the shipped policy.
var DenyKinds = []string{
	"restricted tool without scope",
	"restricted tool with scope, not in group",
	"expired token",
	"token not yet valid",
	"bad signature",
	"wrong audience",
	"wrong issuer",
	"typ JWT instead of at+jwt",
	"key not in the JWKS",
	"HS256 keyed with the public key",
	"alg none",
	"no token",
}

// DenyEvery is how many users of the mixed corpus come before each deny: one request in DenyEvery+1 is a
// deny.
const DenyEvery = 5

// MixedCorpus mints a corpus for long runs: one allowed tools/call for each of `users` users (subject
// prefix-<n>, tokens valid for validFor), and after every DenyEvery users one deny of the next kind of
// DenyKinds with a token of its own, so that the verifier's caches see thousands of distinct tokens, good
// and refused. Tokens are signed with the provider's active key at the time of the call.
func MixedCorpus(p *idp.Provider, prefix string, users int, validFor time.Duration) ([]Case, error) {
	if users < 1 {
		return nil, fmt.Errorf("mixed corpus: need at least one user")
	}
	m, err := newMinter(p, validFor)
	if err != nil {
		return nil, err
	}
	tools := []string{"echo", "list_files", "search"}
	cs := make([]Case, 0, users+users/DenyEvery)
	for u := range users {
		sub := fmt.Sprintf("%s-%d", prefix, u)
		tok, err := m.mint(sub, nil)
		if err != nil {
			return nil, err
		}
		tool := tools[u%len(tools)]
		cs = append(cs, Case{Name: "allow " + tool, Request: CheckRequest(tok, CallTool(tool, u+1)), Token: tok, Allow: true, Status: 200})
		if (u+1)%DenyEvery == 0 {
			kind := DenyKinds[(u/DenyEvery)%len(DenyKinds)]
			c, err := m.deny(kind, sub+"-denied", u+1)
			if err != nil {
				return nil, fmt.Errorf("mixed corpus: %s: %w", kind, err)
			}
			cs = append(cs, c)
		}
	}
	return cs, nil
}

// minter mints the tokens of the mixed corpus.
type minter struct {
	p         *idp.Provider
	validFor  time.Duration
	stranger  *rsa.PrivateKey // a key the provider never published
	publicPEM []byte          // the provider's active public key, PEM: the HS256 confusion secret
}

func newMinter(p *idp.Provider, validFor time.Duration) (*minter, error) {
	stranger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("mixed corpus: stranger key: %w", err)
	}
	var priv rsa.PrivateKey
	if err := p.ActiveKey().Raw(&priv); err != nil {
		return nil, fmt.Errorf("mixed corpus: active key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("mixed corpus: public key: %w", err)
	}
	return &minter{p: p, validFor: validFor, stranger: stranger,
		publicPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}, nil
}

// mint signs a valid token for sub, with extra claims, and options.
func (m *minter) mint(sub string, extra map[string]any, opts ...idp.MintOption) (string, error) {
	now := time.Now()
	c := userClaims(sub, map[string]any{"iat": now.Unix(), "exp": now.Add(m.validFor).Unix()})
	for k, v := range extra {
		c[k] = v
	}
	return m.p.Mint(c, opts...)
}

// deny builds the deny of kind for subject sub, as JSON-RPC request id.
func (m *minter) deny(kind, sub string, id int) (Case, error) {
	status := 401
	tool := "echo"
	var tok string
	var err error
	now := time.Now()
	switch kind {
	case "restricted tool without scope":
		status, tool = 403, RestrictedTool
		tok, err = m.mint(sub, nil)
	case "restricted tool with scope, not in group":
		status, tool = 403, RestrictedTool
		tok, err = m.mint(sub, map[string]any{"scope": "tools:read tools:call tools:admin"})
	case "expired token":
		tok, err = m.mint(sub, map[string]any{"iat": now.Add(-3 * time.Hour).Unix(), "exp": now.Add(-2 * time.Hour).Unix()})
	case "token not yet valid":
		tok, err = m.mint(sub, map[string]any{"nbf": now.Add(m.validFor + time.Hour).Unix()})
	case "bad signature":
		tok, err = m.mint(sub, nil)
		tok = BadSignature(tok)
	case "wrong audience":
		tok, err = m.mint(sub, map[string]any{"aud": "https://other.example.com/mcp"})
	case "wrong issuer":
		tok, err = m.mint(sub, map[string]any{"iss": "https://issuer.invalid"})
	case "typ JWT instead of at+jwt":
		tok, err = m.mint(sub, nil, idp.WithType("JWT"))
	case "key not in the JWKS":
		tok, err = m.mint(sub, nil, idp.WithKey(jwa.RS256, m.stranger), idp.WithKID("not-published"))
	case "HS256 keyed with the public key":
		tok, err = m.mint(sub, nil, idp.WithKey(jwa.HS256, m.publicPEM))
	case "alg none":
		tok = idp.UnsignedToken(map[string]any{"typ": "at+jwt"}, userClaims(sub, map[string]any{"iss": m.p.Issuer(), "exp": now.Add(m.validFor).Unix()}))
	case "no token":
	default:
		return Case{}, fmt.Errorf("unknown deny kind")
	}
	if err != nil {
		return Case{}, err
	}
	return Case{Name: "deny " + kind, Request: CheckRequest(tok, CallTool(tool, id)), Token: tok, Status: status}, nil
}

// PolicyDataVariant is policy data (data.yaml of the shipped policy) for reload number n. The variants
// differ in content (the allowed clients and scopes, custom claims, method rules, a comment naming n) but
// decide every request of Corpus and MixedCorpus the same way as the shipped data, so that a run can
// reload the policy under load and still expect the same decisions.
func PolicyDataVariant(n int) string {
	head := fmt.Sprintf("# reload %d\nauthorizer:\n", n)
	restricted := "  tools:\n    admin_reset:\n      required_scopes: [tools:admin]\n      groups: [admins]\n"
	switch n % 3 {
	case 1:
		return head + "  allowed_clients: [mcp-client, demo-service]\n  allowed_scopes: [tools:read, tools:call]\n" + restricted
	case 2:
		return head + `  custom_claims:
    - {claim: department, operator: EQUALS, value: engineering}
    - {claim: groups, operator: CONTAINS_ANY, values: [mcp-users, admins]}
  methods:
    tools/list: {required_scopes: [tools:read]}
` + restricted
	}
	return head + restricted
}
