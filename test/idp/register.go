package idp

import (
	"crypto/rand"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"slices"
)

// clientMetadata is the part of RFC 7591 client metadata the provider understands; other fields are
// ignored.
type clientMetadata struct {
	RedirectURIs            []string `json:"redirect_uris,omitempty"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes              []string `json:"grant_types,omitempty"`
	ResponseTypes           []string `json:"response_types,omitempty"`
	ClientName              string   `json:"client_name,omitempty"`
}

// registration is the RFC 7591 §3.2.1 response.
type registration struct {
	ClientID              string `json:"client_id"`
	ClientSecret          string `json:"client_secret,omitempty"`
	ClientIDIssuedAt      int64  `json:"client_id_issued_at"`
	ClientSecretExpiresAt *int64 `json:"client_secret_expires_at,omitempty"`
	clientMetadata
}

func errClientMetadata(desc string) *oauthError {
	return &oauthError{Status: http.StatusBadRequest, Code: "invalid_client_metadata", Description: desc}
}

// serveRegister registers a client (RFC 7591). Defaults follow the RFC: client_secret_basic and the
// authorization_code grant; a client that may use authorization_code is also given refresh_token.
func (p *Provider) serveRegister(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeJSON(w, http.StatusBadRequest, errClientMetadata("request body must be application/json"))
		return
	}
	var md clientMetadata
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxFormBytes)).Decode(&md); err != nil {
		writeJSON(w, http.StatusBadRequest, errClientMetadata("malformed JSON body"))
		return
	}
	if oerr := md.normalize(); oerr != nil {
		writeJSON(w, oerr.Status, oerr)
		return
	}

	c := &client{
		Client:     Client{ID: rand.Text(), RedirectURIs: md.RedirectURIs},
		grantTypes: md.GrantTypes,
	}
	resp := registration{ClientID: c.ID, ClientIDIssuedAt: p.now().Unix(), clientMetadata: md}
	if md.TokenEndpointAuthMethod != "none" {
		c.Secret = rand.Text()
		never := int64(0)
		resp.ClientSecret, resp.ClientSecretExpiresAt = c.Secret, &never
	}
	p.mu.Lock()
	p.clients[c.ID] = c
	p.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, resp)
}

// normalize applies defaults and validates the metadata.
func (md *clientMetadata) normalize() *oauthError {
	if md.TokenEndpointAuthMethod == "" {
		md.TokenEndpointAuthMethod = "client_secret_basic"
	}
	if !slices.Contains(authMethods, md.TokenEndpointAuthMethod) {
		return errClientMetadata("unsupported token_endpoint_auth_method " + md.TokenEndpointAuthMethod)
	}
	if len(md.GrantTypes) == 0 {
		md.GrantTypes = []string{"authorization_code"}
	}
	for _, gt := range md.GrantTypes {
		if !slices.Contains(grantTypes, gt) {
			return errClientMetadata("unsupported grant type " + gt)
		}
	}
	if md.TokenEndpointAuthMethod == "none" && slices.Contains(md.GrantTypes, "client_credentials") {
		return errClientMetadata("client_credentials needs a confidential client")
	}
	code := slices.Contains(md.GrantTypes, "authorization_code")
	if code && !slices.Contains(md.GrantTypes, "refresh_token") {
		md.GrantTypes = append(md.GrantTypes, "refresh_token")
	}
	if len(md.ResponseTypes) == 0 && code {
		md.ResponseTypes = []string{"code"}
	}
	for _, rt := range md.ResponseTypes {
		if rt != "code" {
			return errClientMetadata("unsupported response type " + rt)
		}
	}
	if code && len(md.RedirectURIs) == 0 {
		return &oauthError{Status: http.StatusBadRequest, Code: "invalid_redirect_uri", Description: "authorization_code needs redirect_uris"}
	}
	for _, uri := range md.RedirectURIs {
		u, err := url.Parse(uri)
		if err != nil || !u.IsAbs() || u.Fragment != "" || (u.Scheme == "http" && !isLoopback(u)) {
			return &oauthError{Status: http.StatusBadRequest, Code: "invalid_redirect_uri",
				Description: "redirect URIs must be absolute, without fragment, and use http only on loopback: " + uri}
		}
	}
	return nil
}
