package idp

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Handler returns the provider's HTTP endpoints, relative to the issuer's path:
//
//	GET  /.well-known/openid-configuration   OpenID Connect discovery
//	GET  /.well-known/oauth-authorization-server   RFC 8414 metadata (same document)
//	GET  /jwks                                public keys
//	GET  /authorize (or POST)                 authorization code with PKCE S256, auto-approved
//	POST /token                               authorization_code, refresh_token, client_credentials
//	POST /register                            RFC 7591 dynamic client registration
//
// While the provider is down (SetDown) every request gets 503.
func (p *Provider) Handler() http.Handler {
	mux := http.NewServeMux()
	pre := p.prefix
	mux.HandleFunc("GET "+pre+"/.well-known/openid-configuration", p.serveMetadata)
	mux.HandleFunc("GET "+pre+"/.well-known/oauth-authorization-server", p.serveMetadata)
	if pre != "" {
		// RFC 8414 §3.1 inserts the well-known segment before the issuer's path; MCP clients also try
		// the same insertion for the OpenID document.
		mux.HandleFunc("GET /.well-known/oauth-authorization-server"+pre, p.serveMetadata)
		mux.HandleFunc("GET /.well-known/openid-configuration"+pre, p.serveMetadata)
	}
	mux.HandleFunc("GET "+pre+"/jwks", p.serveJWKS)
	mux.HandleFunc("GET "+pre+"/authorize", p.serveAuthorize)
	mux.HandleFunc("POST "+pre+"/authorize", p.serveAuthorize)
	mux.HandleFunc("POST "+pre+"/token", p.serveToken)
	mux.HandleFunc("POST "+pre+"/register", p.serveRegister)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.isDown() {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, oauthError{
				Code: "temporarily_unavailable", Description: "the identity provider is down",
			})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// metadata is the discovery document, shared by RFC 8414 and OpenID Connect Discovery.
type metadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RegistrationEndpoint              string   `json:"registration_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	AuthorizationResponseISSSupported bool     `json:"authorization_response_iss_parameter_supported"`
}

var (
	grantTypes  = []string{"authorization_code", "refresh_token", "client_credentials"}
	authMethods = []string{"none", "client_secret_post", "client_secret_basic"}
)

func (p *Provider) serveMetadata(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, metadata{
		Issuer:                            p.issuer,
		AuthorizationEndpoint:             p.endpoint("/authorize"),
		TokenEndpoint:                     p.endpoint("/token"),
		RegistrationEndpoint:              p.endpoint("/register"),
		JWKSURI:                           p.endpoint("/jwks"),
		ScopesSupported:                   p.scopes,
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            []string{"query"},
		GrantTypesSupported:               grantTypes,
		CodeChallengeMethodsSupported:     []string{"S256"},
		TokenEndpointAuthMethodsSupported: authMethods,
		IDTokenSigningAlgValuesSupported:  p.signingAlgs(),
		SubjectTypesSupported:             []string{"public"},
		ClaimsSupported:                   []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "email", "groups", "nonce"},
		AuthorizationResponseISSSupported: true,
	})
}

// endpoint returns the absolute URL of path under the issuer.
func (p *Provider) endpoint(path string) string {
	return strings.TrimSuffix(p.issuer, "/") + path
}

func (p *Provider) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	body, err := json.Marshal(p.PublicJWKS())
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, oauthError{Code: "server_error", Description: "encode JWKS"})
		return
	}
	p.mu.Lock()
	p.jwksFetches++
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// oauthError is an RFC 6749 §5.2 error body (also used by RFC 7591 and for 503s).
type oauthError struct {
	Status      int    `json:"-"`
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Description }

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
