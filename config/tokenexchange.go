package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// RFC 8693 token type identifiers mcp-authz sends or accepts.
const (
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeIDToken     = "urn:ietf:params:oauth:token-type:id_token"
)

// TokenExchange makes mcp-authz exchange the client's token at the IdP (RFC 8693) for a token meant for the
// APIs the MCP server calls on the user's behalf, and hand that token upstream in Authorization instead of
// the client's. A failed exchange refuses the request: the upstream is never reached with the client's
// token, nor without the token it was configured to get.
type TokenExchange struct {
	// Issuer names the configured issuer (issuers[].issuer) whose token endpoint, found by discovery,
	// exchanges the token. Default: the issuer of the client's token.
	Issuer string `json:"issuer,omitempty"`
	// TokenEndpoint overrides the discovered token endpoint.
	TokenEndpoint string `json:"token_endpoint,omitempty"`
	// Audience is the RFC 8693 `audience` asked for: the logical name of the API the token is for.
	Audience string `json:"audience,omitempty"`
	// Resource is the RFC 8693 `resource` asked for: the URL of the API. At least one of Audience and
	// Resource is required.
	Resource string `json:"resource,omitempty"`
	// Scope is the space-separated `scope` asked for; empty asks for none.
	Scope string `json:"scope,omitempty"`
	// RequestedTokenType is the `requested_token_type`. Default urn:ietf:params:oauth:token-type:access_token.
	RequestedTokenType string `json:"requested_token_type,omitempty"`
	// ClientID is mcp-authz's client id at the IdP.
	ClientID string `json:"client_id"`
	// ClientSecretFile holds the client secret (client_secret_basic); re-read when the file changes.
	// Exactly one of ClientSecretFile and PrivateKeyJWT is required.
	ClientSecretFile string `json:"client_secret_file,omitempty"`
	// PrivateKeyJWT authenticates mcp-authz with a signed client assertion (RFC 7523, private_key_jwt).
	PrivateKeyJWT *PrivateKeyJWT `json:"private_key_jwt,omitempty"`
	// ActorToken, when set, sends an `actor_token` naming mcp-authz as the party acting for the user
	// (delegation): the IdP then puts an `act` claim with the actor's subject in the issued token.
	ActorToken *ActorToken `json:"actor_token,omitempty"`
	// Timeout bounds one exchange (token request and, when due, discovery and the actor token). Default 5s.
	Timeout Duration `json:"timeout,omitempty"`
}

// PrivateKeyJWT is the key that signs mcp-authz's client assertions.
type PrivateKeyJWT struct {
	// KeyFile is a PEM file holding the private key (PKCS#8, or PKCS#1 / SEC 1).
	KeyFile string `json:"key_file"`
	// KeyID is the assertion's `kid` header, the key's id at the IdP; optional.
	KeyID string `json:"key_id,omitempty"`
	// Algorithm is ES256, RS256 or EdDSA. Default: ES256 for an EC key, RS256 for RSA, EdDSA for Ed25519.
	Algorithm string `json:"algorithm,omitempty"`
	// Audience is the assertion's `aud`: a URL, or "token_endpoint" for the token endpoint's URL (what OpenID
	// Connect Core 9 first said, and Okta requires). Default: the issuer identifier of the IdP that
	// exchanges (token_exchange.issuer, else the client token's `iss`), which the update of RFC 7523
	// (draft-ietf-oauth-rfc7523bis) requires against audience injection, and ZITADEL checks.
	Audience string `json:"audience,omitempty"`
}

// ActorToken says what mcp-authz presents as the actor of a delegation: exactly one of ClientCredentials
// and File.
type ActorToken struct {
	// ClientCredentials obtains the actor token for mcp-authz itself with the client_credentials grant at
	// the same token endpoint, with the same client authentication, and keeps it until shortly before it
	// expires. Its subject (usually the client id) becomes the `act.sub` of the exchanged token.
	ClientCredentials *ActorClientCredentials `json:"client_credentials,omitempty"`
	// File holds the actor token (for example a projected Kubernetes service account token); re-read
	// when the file changes.
	File string `json:"file,omitempty"`
	// TokenType is the `actor_token_type`. Default: access_token for ClientCredentials, jwt for File.
	TokenType string `json:"token_type,omitempty"`
}

// ActorClientCredentials is the client_credentials request for the actor token.
type ActorClientCredentials struct {
	// Scope is the `scope` asked for, if any.
	Scope string `json:"scope,omitempty"`
	// Audience is the `audience` asked for, if any.
	Audience string `json:"audience,omitempty"`
}

// TokenExchangeCache bounds the cache of exchanged tokens, shared by every resource with token_exchange.
type TokenExchangeCache struct {
	// MaxEntries is how many exchanged tokens are kept. Default 4096; at most MaxTokenExchangeCacheEntries.
	// A negative value turns the cache off: every request exchanges its token.
	MaxEntries int `json:"max_entries,omitempty"`
}

// MaxTokenExchangeCacheEntries bounds token_exchange_cache.max_entries (an entry holds the exchanged
// token, a few KiB).
const MaxTokenExchangeCacheEntries = 1 << 18

// DefaultTokenExchangeTimeout is the default of token_exchange.timeout.
const DefaultTokenExchangeTimeout = 5 * time.Second

var exchangeAlgorithms = map[string]bool{"ES256": true, "RS256": true, "EdDSA": true}

func (c *Config) applyTokenExchangeDefaults() {
	if c.TokenExchangeCache.MaxEntries == 0 {
		c.TokenExchangeCache.MaxEntries = 4096
	}
	for i := range c.Resources {
		te := c.Resources[i].TokenExchange
		if te == nil {
			continue
		}
		if te.RequestedTokenType == "" {
			te.RequestedTokenType = TokenTypeAccessToken
		}
		if te.Timeout == 0 {
			te.Timeout = Duration(DefaultTokenExchangeTimeout)
		}
		if a := te.ActorToken; a != nil && a.TokenType == "" {
			a.TokenType = TokenTypeAccessToken
			if a.File != "" {
				a.TokenType = TokenTypeJWT
			}
		}
	}
}

// validateTokenExchange checks every resources[].token_exchange block and token_exchange_cache. The files
// they name (secret, key, actor token) are read when the service starts (package exchange), and an
// unreadable one is then a start-up error naming its field.
func (c *Config) validateTokenExchange(fail func(field, format string, a ...any)) {
	if n := c.TokenExchangeCache.MaxEntries; n > MaxTokenExchangeCacheEntries {
		fail("token_exchange_cache.max_entries", "must be at most %d, or negative to turn the cache off, not %d", MaxTokenExchangeCacheEntries, n)
	}
	issuers := map[string]Issuer{}
	for _, is := range c.Issuers {
		issuers[is.Issuer] = is
	}
	for i, r := range c.Resources {
		te := r.TokenExchange
		if te == nil {
			continue
		}
		p := fmt.Sprintf("resources[%d].token_exchange", i)
		is, known := issuers[te.Issuer]
		switch {
		case te.Issuer != "" && !known:
			fail(p+".issuer", "%q is not a configured issuer (issuers[].issuer)", te.Issuer)
		case te.Issuer == "" && len(c.Issuers) > 1:
			fail(p+".issuer", "required with several issuers: mcp-authz's client credentials and the client's token must go to one IdP, not to whichever issued the token")
		}
		if te.TokenEndpoint != "" {
			// The client's token and mcp-authz's client credentials go there: the issuer's rule for the
			// endpoints its discovery names applies (no plain http unless allow_insecure_http).
			if len(c.Issuers) == 1 {
				is = c.Issuers[0]
			}
			err := checkURL(te.TokenEndpoint)
			if err == nil {
				err = is.CheckEndpoint(te.TokenEndpoint)
			}
			if err != nil {
				fail(p+".token_endpoint", "%v", err)
			}
		}
		if te.Audience == "" && te.Resource == "" {
			fail(p+".audience", "audience or resource is required: the API the exchanged token is for")
		}
		if te.Resource != "" {
			if err := checkURL(te.Resource); err != nil {
				fail(p+".resource", "%v", err)
			} else if u, _ := url.Parse(te.Resource); u.Fragment != "" {
				fail(p+".resource", "a resource URI has no fragment (RFC 8707)")
			}
		}
		for _, f := range []struct{ name, v string }{{"audience", te.Audience}, {"scope", te.Scope}, {"client_id", te.ClientID}} {
			if strings.ContainsAny(f.v, "\r\n\x00") || strings.TrimSpace(f.v) != f.v {
				fail(p+"."+f.name, "%q has surrounding spaces or control characters", f.v)
			}
		}
		switch te.RequestedTokenType {
		case TokenTypeAccessToken, TokenTypeJWT:
		default:
			fail(p+".requested_token_type", "must be %s or %s (a token that goes in Authorization: Bearer), not %q", TokenTypeAccessToken, TokenTypeJWT, te.RequestedTokenType)
		}
		if te.ClientID == "" {
			fail(p+".client_id", "required")
		}
		switch {
		case te.ClientSecretFile == "" && te.PrivateKeyJWT == nil:
			fail(p+".client_secret_file", "client_secret_file or private_key_jwt is required")
		case te.ClientSecretFile != "" && te.PrivateKeyJWT != nil:
			fail(p+".private_key_jwt", "set either client_secret_file or private_key_jwt, not both")
		case te.PrivateKeyJWT != nil:
			k := te.PrivateKeyJWT
			if k.KeyFile == "" {
				fail(p+".private_key_jwt.key_file", "required")
			}
			if k.Algorithm != "" && !exchangeAlgorithms[k.Algorithm] {
				fail(p+".private_key_jwt.algorithm", "must be ES256, RS256 or EdDSA, not %q", k.Algorithm)
			}
			if k.Audience != "" && k.Audience != "token_endpoint" {
				if err := checkURL(k.Audience); err != nil {
					fail(p+".private_key_jwt.audience", "a URL or token_endpoint: %v", err)
				}
			}
		}
		if a := te.ActorToken; a != nil {
			switch {
			case a.ClientCredentials == nil && a.File == "":
				fail(p+".actor_token", "client_credentials or file is required")
			case a.ClientCredentials != nil && a.File != "":
				fail(p+".actor_token", "set either client_credentials or file, not both")
			}
			switch a.TokenType {
			case TokenTypeAccessToken, TokenTypeJWT, TokenTypeIDToken:
			default:
				fail(p+".actor_token.token_type", "must be an RFC 8693 token type (access_token, jwt or id_token URN), not %q", a.TokenType)
			}
		}
		if t := te.Timeout; t < Duration(100*time.Millisecond) || t > Duration(time.Minute) {
			fail(p+".timeout", "must be between 100ms and 1m, not %v", time.Duration(t))
		}
	}
}
