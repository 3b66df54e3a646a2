package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// exchangeBase is a valid document whose resource has a token_exchange block: te replaces TE.
func exchangeBase(t *testing.T, te string) string {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := `resources: [{url: "https://m/mcp", token_exchange: {TE}}]
issuers: [{discovery_url: "https://i/.well-known/openid-configuration"}]
policy: {paths: ["."]}
`
	return strings.ReplaceAll(strings.Replace(doc, "TE", te, 1), "SECRET", secret)
}

func TestTokenExchangeDefaults(t *testing.T) {
	c, err := Parse([]byte(exchangeBase(t, `audience: "https://api", client_id: mcp-authz, client_secret_file: SECRET, actor_token: {client_credentials: {}}`)))
	if err != nil {
		t.Fatal(err)
	}
	te := c.Resources[0].TokenExchange
	if te.RequestedTokenType != TokenTypeAccessToken || time.Duration(te.Timeout) != 5*time.Second ||
		te.ActorToken.TokenType != TokenTypeAccessToken || c.TokenExchangeCache.MaxEntries != 4096 {
		t.Fatalf("defaults: %+v, actor %+v, cache %+v", te, te.ActorToken, c.TokenExchangeCache)
	}
	c, err = Parse([]byte(exchangeBase(t, `resource: "https://api/v1", client_id: c, client_secret_file: SECRET, actor_token: {file: SECRET}`)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Resources[0].TokenExchange.ActorToken.TokenType != TokenTypeJWT {
		t.Fatalf("actor file token type = %q", c.Resources[0].TokenExchange.ActorToken.TokenType)
	}
}

func TestTokenExchangeErrorsNameTheField(t *testing.T) {
	ok := `audience: "https://api", client_id: c, client_secret_file: SECRET`
	tests := []struct{ name, te, extra, want string }{
		{"no audience nor resource", `client_id: c, client_secret_file: SECRET`, "", "resources[0].token_exchange.audience: audience or resource is required"},
		{"relative resource", ok + `, resource: /v1`, "", "resources[0].token_exchange.resource"},
		{"resource with fragment", ok + `, resource: "https://api/v1#x"`, "", "resources[0].token_exchange.resource: a resource URI has no fragment"},
		{"unknown issuer", ok + `, issuer: "https://other"`, "", `resources[0].token_exchange.issuer: "https://other" is not a configured issuer`},
		{"relative token endpoint", ok + `, token_endpoint: /token`, "", "resources[0].token_exchange.token_endpoint"},
		{"plain http token endpoint", ok + `, token_endpoint: "http://idp.example.com/token"`, "", "resources[0].token_exchange.token_endpoint: is plain http"},
		{"http token endpoint under https discovery", ok + `, token_endpoint: "http://127.0.0.1/token"`, "", "resources[0].token_exchange.token_endpoint: is plain http"},
		{"no client id", `audience: "https://api", client_secret_file: SECRET`, "", "resources[0].token_exchange.client_id: required"},
		{"no client authentication", `audience: "https://api", client_id: c`, "", "resources[0].token_exchange.client_secret_file: client_secret_file or private_key_jwt is required"},
		{"both client authentications", ok + `, private_key_jwt: {key_file: SECRET}`, "", "resources[0].token_exchange.private_key_jwt: set either"},
		{"no key file", `audience: "https://api", client_id: c, private_key_jwt: {key_id: k}`, "", "resources[0].token_exchange.private_key_jwt.key_file: required"},
		{"relative assertion audience", `audience: "https://api", client_id: c, private_key_jwt: {key_file: SECRET, audience: /token}`, "", "resources[0].token_exchange.private_key_jwt.audience"},
		{"HS256 assertion", `audience: "https://api", client_id: c, private_key_jwt: {key_file: SECRET, algorithm: HS256}`, "", "resources[0].token_exchange.private_key_jwt.algorithm"},
		{"requested id token", ok + `, requested_token_type: "urn:ietf:params:oauth:token-type:id_token"`, "", "resources[0].token_exchange.requested_token_type"},
		{"empty actor", ok + `, actor_token: {}`, "", "resources[0].token_exchange.actor_token: client_credentials or file is required"},
		{"two actors", ok + `, actor_token: {file: SECRET, client_credentials: {}}`, "", "resources[0].token_exchange.actor_token: set either"},
		{"bad actor type", ok + `, actor_token: {file: SECRET, token_type: bearer}`, "", "resources[0].token_exchange.actor_token.token_type"},
		{"tiny timeout", ok + `, timeout: 1ms`, "", "resources[0].token_exchange.timeout"},
		{"scope with a newline", ok + `, scope: "a\nb"`, "", "resources[0].token_exchange.scope"},
		{"unknown field", ok + `, audiences: [x]`, "", `unknown field "resources[0].token_exchange.audiences"`},
		{"cache too large", ok, "token_exchange_cache: {max_entries: 262145}\n", "token_exchange_cache.max_entries"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(exchangeBase(t, tc.te) + tc.extra))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestTokenExchangeIssuerWithSeveralIssuers checks that with several issuers a token_exchange block must
// name the one it exchanges at (its client credentials go to that IdP only), and that the named issuer's
// allow_insecure_http governs a configured token endpoint.
func TestTokenExchangeIssuerWithSeveralIssuers(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := func(te string) []byte {
		return []byte(`resources: [{url: "https://m/mcp", token_exchange: {audience: "https://api", client_id: c, client_secret_file: ` + secret + te + `}}]
issuers:
  - {discovery_url: "https://a/.well-known/openid-configuration"}
  - {discovery_url: "http://b.internal/.well-known/openid-configuration", allow_insecure_http: true}
policy: {paths: ["."]}
`)
	}
	tests := []struct{ name, te, want string }{
		{"no issuer", ``, "resources[0].token_exchange.issuer: required with several issuers"},
		{"issuer a", `, issuer: "https://a"`, ""},
		{"issuer a, plain http endpoint", `, issuer: "https://a", token_endpoint: "http://a/token"`, "token_endpoint: is plain http"},
		{"issuer b allows plain http", `, issuer: "http://b.internal", token_endpoint: "http://b.internal/token"`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(doc(tc.te))
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}
