package bridge

import (
	"encoding/json"
	"net/http"
)

// asMetadata is the RFC 8414 authorization server metadata of one bridge, served at the RFC 8414 and OpenID
// Connect discovery paths alike (MCP clients try both).
type asMetadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RegistrationEndpoint              string   `json:"registration_endpoint"`
	ScopesSupported                   []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	ClientIDMetadataDocumentSupported bool     `json:"client_id_metadata_document_supported"`
	// The bridge always sends iss with its authorization responses, errors included (RFC 9207).
	AuthorizationResponseISSParameterSupported bool `json:"authorization_response_iss_parameter_supported"`
}

// metadataHandler serves is's metadata document, built once.
func (b *Bridge) metadataHandler(is *issuer) http.Handler {
	doc, err := json.Marshal(asMetadata{
		Issuer:                                     is.iss,
		AuthorizationEndpoint:                      is.iss + "/authorize",
		TokenEndpoint:                              is.iss + "/token",
		RegistrationEndpoint:                       is.iss + "/register",
		ScopesSupported:                            b.scopes,
		ResponseTypesSupported:                     []string{"code"},
		ResponseModesSupported:                     []string{"query"},
		GrantTypesSupported:                        []string{"authorization_code", "refresh_token"},
		TokenEndpointAuthMethodsSupported:          []string{"none"},
		CodeChallengeMethodsSupported:              []string{"S256"},
		ClientIDMetadataDocumentSupported:          true,
		AuthorizationResponseISSParameterSupported: true,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err != nil {
			writeError(w, newError(http.StatusInternalServerError, "server_error", "metadata unavailable"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Write(doc)
	})
}
