package idp

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

const maxFormBytes = 64 << 10

// grant is what a token is issued for: the client, the user (nil for client_credentials), the scopes
// and the audiences (RFC 8707 resources and audience parameters).
type grant struct {
	clientID string
	user     *user
	scopes   []string
	audience []string
	nonce    string // OpenID Connect nonce, copied into the first ID token only
}

// authCode is a pending authorization code.
type authCode struct {
	grant
	redirectURI string
	challenge   string
	expires     time.Time
}

// refreshGrant is what a refresh token stands for: the original grant, never narrowed.
type refreshGrant struct {
	grant
	expires time.Time
}

// tokenResponse is the RFC 6749 §5.1 success body.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
}

func errInvalidRequest(desc string) *oauthError {
	return &oauthError{Status: http.StatusBadRequest, Code: "invalid_request", Description: desc}
}

func errInvalidGrant(desc string) *oauthError {
	return &oauthError{Status: http.StatusBadRequest, Code: "invalid_grant", Description: desc}
}

func errInvalidClient(desc string) *oauthError {
	return &oauthError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: desc}
}

// serveAuthorize runs the authorization endpoint. Requests that cannot be redirected safely (unknown
// client, unacceptable redirect_uri) get a 400 JSON error; all other errors are redirected (RFC 6749
// §4.1.2.1). Valid requests are approved at once as the configured user.
func (p *Provider) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, errInvalidRequest("malformed request"))
		return
	}
	q := r.Form
	p.mu.Lock()
	c := p.clients[q.Get("client_id")]
	p.mu.Unlock()
	if c == nil {
		writeJSON(w, http.StatusBadRequest, errInvalidRequest("unknown or missing client_id"))
		return
	}
	redirectURI := q.Get("redirect_uri")
	if !c.allowsRedirect(redirectURI) {
		writeJSON(w, http.StatusBadRequest, errInvalidRequest("redirect_uri missing or not registered for this client"))
		return
	}

	reply := func(params url.Values) {
		u, _ := url.Parse(redirectURI) // allowsRedirect parsed it already
		v := u.Query()
		for k, vs := range params {
			v[k] = vs
		}
		if state := q.Get("state"); state != "" {
			v.Set("state", state)
		}
		v.Set("iss", p.issuer) // RFC 9207
		u.RawQuery = v.Encode()
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
	fail := func(code, desc string) {
		reply(url.Values{"error": {code}, "error_description": {desc}})
	}

	if q.Get("response_type") != "code" {
		fail("unsupported_response_type", "only response_type=code is supported")
		return
	}
	if !c.allowsGrant("authorization_code") {
		fail("unauthorized_client", "client is not registered for authorization_code")
		return
	}
	if m := q.Get("code_challenge_method"); m != "S256" {
		fail("invalid_request", "code_challenge_method must be S256")
		return
	}
	challenge := q.Get("code_challenge")
	if b, err := base64.RawURLEncoding.DecodeString(challenge); err != nil || len(b) != sha256.Size {
		fail("invalid_request", "code_challenge missing or not a base64url SHA-256 digest")
		return
	}
	scopes, oerr := p.parseScope(q.Get("scope"))
	if oerr != nil {
		fail(oerr.Code, oerr.Description)
		return
	}
	aud, oerr := audiences(q["resource"], q["audience"])
	if oerr != nil {
		fail(oerr.Code, oerr.Description)
		return
	}

	code := rand.Text()
	u := p.user
	now := p.now()
	p.mu.Lock()
	for k, ac := range p.codes {
		if now.After(ac.expires) {
			delete(p.codes, k)
		}
	}
	p.codes[code] = &authCode{
		grant:       grant{clientID: c.ID, user: &u, scopes: scopes, audience: aud, nonce: q.Get("nonce")},
		redirectURI: redirectURI,
		challenge:   challenge,
		expires:     now.Add(codeTTL),
	}
	p.mu.Unlock()
	reply(url.Values{"code": {code}})
}

// allowsRedirect reports whether uri is registered for c or, for a public client, is a loopback URI
// (RFC 8252 §7.3: any port).
func (c *client) allowsRedirect(uri string) bool {
	if uri == "" {
		return false
	}
	u, err := url.Parse(uri)
	if err != nil || !u.IsAbs() || u.Fragment != "" {
		return false
	}
	return slices.Contains(c.RedirectURIs, uri) || (c.public() && isLoopback(u))
}

func isLoopback(u *url.URL) bool {
	switch u.Hostname() {
	case "127.0.0.1", "localhost", "::1":
		return u.Scheme == "http"
	}
	return false
}

// parseScope splits a scope parameter and checks every scope is supported.
func (p *Provider) parseScope(s string) ([]string, *oauthError) {
	var scopes []string
	for _, sc := range strings.Fields(s) {
		if !slices.Contains(p.scopes, sc) {
			return nil, &oauthError{Status: http.StatusBadRequest, Code: "invalid_scope", Description: "unsupported scope " + sc}
		}
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	return scopes, nil
}

// audiences merges RFC 8707 resource parameters (absolute URIs without fragment) and audience
// parameters (taken as-is) into one list without duplicates.
func audiences(resources, audience []string) ([]string, *oauthError) {
	var out []string
	for _, r := range resources {
		u, err := url.Parse(r)
		if err != nil || !u.IsAbs() || u.Fragment != "" {
			return nil, &oauthError{Status: http.StatusBadRequest, Code: "invalid_target", Description: "resource must be an absolute URI without fragment"}
		}
	}
	for _, a := range slices.Concat(resources, audience) {
		if a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// serveToken runs the token endpoint.
func (p *Provider) serveToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.writeTokenError(w, errInvalidRequest("malformed form body"), false)
		return
	}
	c, oerr := p.authenticate(r)
	if oerr != nil {
		_, _, basic := r.BasicAuth()
		p.writeTokenError(w, oerr, basic)
		return
	}
	var resp tokenResponse
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "authorization_code":
		resp, oerr = p.exchangeCode(c, r.PostForm)
	case "refresh_token":
		resp, oerr = p.exchangeRefresh(c, r.PostForm)
	case "client_credentials":
		resp, oerr = p.clientCredentials(c, r.PostForm)
	case "":
		oerr = errInvalidRequest("grant_type missing")
	default:
		oerr = &oauthError{Status: http.StatusBadRequest, Code: "unsupported_grant_type", Description: "unsupported grant_type " + gt}
	}
	if oerr != nil {
		p.writeTokenError(w, oerr, false)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, resp)
}

func (p *Provider) writeTokenError(w http.ResponseWriter, e *oauthError, basic bool) {
	if e.Status == http.StatusUnauthorized && basic {
		w.Header().Set("WWW-Authenticate", `Basic realm="idp"`)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, e.Status, e)
}

// authenticate identifies the client of a token request: HTTP Basic (client_secret_basic), client_id
// and client_secret in the form (client_secret_post) or client_id alone for public clients (none).
func (p *Provider) authenticate(r *http.Request) (*client, *oauthError) {
	form := r.PostForm
	id, secret, basic := r.BasicAuth()
	if basic {
		var errID, errSecret error
		id, errID = url.QueryUnescape(id) // RFC 6749 §2.3.1 form-encodes both
		secret, errSecret = url.QueryUnescape(secret)
		if errID != nil || errSecret != nil {
			return nil, errInvalidClient("malformed Basic credentials")
		}
		if form.Has("client_secret") {
			return nil, errInvalidRequest("more than one client authentication method")
		}
		if fid := form.Get("client_id"); fid != "" && fid != id {
			return nil, errInvalidRequest("client_id differs from the authenticated client")
		}
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	if id == "" {
		return nil, errInvalidClient("client authentication required")
	}
	p.mu.Lock()
	c := p.clients[id]
	p.mu.Unlock()
	switch {
	case c == nil:
		return nil, errInvalidClient("unknown client")
	case c.public() && secret != "":
		return nil, errInvalidClient("public client must not send a secret")
	case !c.public() && subtle.ConstantTimeCompare([]byte(secret), []byte(c.Secret)) != 1:
		return nil, errInvalidClient("wrong or missing client secret")
	}
	return c, nil
}

// exchangeCode redeems an authorization code. The code is consumed by the first attempt, even a failed
// one.
func (p *Provider) exchangeCode(c *client, form url.Values) (tokenResponse, *oauthError) {
	p.mu.Lock()
	ac := p.codes[form.Get("code")]
	delete(p.codes, form.Get("code"))
	p.mu.Unlock()
	switch {
	case ac == nil || p.now().After(ac.expires):
		return tokenResponse{}, errInvalidGrant("authorization code invalid, expired or already used")
	case ac.clientID != c.ID:
		return tokenResponse{}, errInvalidGrant("authorization code was issued to another client")
	case form.Get("redirect_uri") != ac.redirectURI:
		return tokenResponse{}, errInvalidGrant("redirect_uri does not match the authorization request")
	case !verifierMatches(form.Get("code_verifier"), ac.challenge):
		return tokenResponse{}, errInvalidGrant("code_verifier does not match code_challenge")
	}
	g := ac.grant
	aud, oerr := narrowAudience(g.audience, form)
	if oerr != nil {
		return tokenResponse{}, oerr
	}
	issued := g
	issued.audience = aud
	g.nonce = ""
	return p.issue(issued, &g)
}

// verifierMatches checks an RFC 7636 code_verifier against an S256 challenge.
func verifierMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for _, ch := range verifier {
		if !(ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || strings.ContainsRune("-._~", ch)) {
			return false
		}
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

// narrowAudience applies resource/audience parameters of a token request: each must be among the
// granted audiences; none keeps them all.
func narrowAudience(granted []string, form url.Values) ([]string, *oauthError) {
	requested, oerr := audiences(form["resource"], form["audience"])
	if oerr != nil || len(requested) == 0 {
		return granted, oerr
	}
	for _, a := range requested {
		if !slices.Contains(granted, a) {
			return nil, &oauthError{Status: http.StatusBadRequest, Code: "invalid_target", Description: "resource was not granted: " + a}
		}
	}
	return requested, nil
}

// exchangeRefresh redeems a refresh token and rotates it: once a request succeeds the old token stops
// working. The access token may be narrowed with scope and resource; the new refresh token keeps the
// original grant.
func (p *Provider) exchangeRefresh(c *client, form url.Values) (tokenResponse, *oauthError) {
	token := form.Get("refresh_token")
	p.mu.Lock()
	rg := p.refresh[token]
	p.mu.Unlock()
	switch {
	case rg == nil || p.now().After(rg.expires):
		return tokenResponse{}, errInvalidGrant("refresh token invalid, expired or already used")
	case rg.clientID != c.ID:
		return tokenResponse{}, errInvalidGrant("refresh token was issued to another client")
	}
	issued := rg.grant
	issued.nonce = ""
	if s := form.Get("scope"); s != "" {
		scopes, oerr := p.parseScope(s)
		if oerr != nil {
			return tokenResponse{}, oerr
		}
		for _, sc := range scopes {
			if !slices.Contains(rg.scopes, sc) {
				return tokenResponse{}, &oauthError{Status: http.StatusBadRequest, Code: "invalid_scope", Description: "scope exceeds the original grant: " + sc}
			}
		}
		issued.scopes = scopes
	}
	aud, oerr := narrowAudience(rg.audience, form)
	if oerr != nil {
		return tokenResponse{}, oerr
	}
	issued.audience = aud

	// Consume the token only now, so that refused requests leave it usable, and only once.
	p.mu.Lock()
	current := p.refresh[token]
	delete(p.refresh, token)
	p.mu.Unlock()
	if current != rg {
		return tokenResponse{}, errInvalidGrant("refresh token already used")
	}
	return p.issue(issued, &rg.grant)
}

// clientCredentials issues a token to a confidential client for itself (sub = client_id).
func (p *Provider) clientCredentials(c *client, form url.Values) (tokenResponse, *oauthError) {
	if c.public() || !c.allowsGrant("client_credentials") {
		return tokenResponse{}, &oauthError{Status: http.StatusBadRequest, Code: "unauthorized_client", Description: "client_credentials needs a confidential client registered for it"}
	}
	scopes, oerr := p.parseScope(form.Get("scope"))
	if oerr != nil {
		return tokenResponse{}, oerr
	}
	aud, oerr := audiences(form["resource"], form["audience"])
	if oerr != nil {
		return tokenResponse{}, oerr
	}
	return p.issue(grant{clientID: c.ID, scopes: scopes, audience: aud}, nil)
}

// issue mints the tokens for g. With keep, it also stores a refresh token for that grant; user grants
// that include the openid scope also get an ID token.
func (p *Provider) issue(g grant, keep *grant) (tokenResponse, *oauthError) {
	now := p.now()
	access, err := p.Mint(p.accessClaims(g, now))
	if err != nil {
		return tokenResponse{}, &oauthError{Status: http.StatusInternalServerError, Code: "server_error", Description: "could not sign the access token"}
	}
	resp := tokenResponse{
		AccessToken: access,
		TokenType:   "Bearer",
		ExpiresIn:   int64(p.accessTTL / time.Second),
		Scope:       strings.Join(g.scopes, " "),
	}
	if g.user != nil && slices.Contains(g.scopes, "openid") {
		claims := map[string]any{
			"sub": g.user.sub, "aud": g.clientID, "azp": g.clientID,
			"iat": now.Unix(), "exp": now.Add(p.accessTTL).Unix(), "auth_time": now.Unix(),
		}
		if g.nonce != "" {
			claims["nonce"] = g.nonce
		}
		if g.user.email != "" {
			claims["email"], claims["email_verified"] = g.user.email, true
		}
		if resp.IDToken, err = p.Mint(claims, WithType("JWT")); err != nil {
			return tokenResponse{}, &oauthError{Status: http.StatusInternalServerError, Code: "server_error", Description: "could not sign the ID token"}
		}
	}
	if keep != nil {
		resp.RefreshToken = rand.Text()
		p.mu.Lock()
		for k, rg := range p.refresh {
			if now.After(rg.expires) {
				delete(p.refresh, k)
			}
		}
		p.refresh[resp.RefreshToken] = &refreshGrant{grant: *keep, expires: now.Add(refreshTTL)}
		p.mu.Unlock()
	}
	return resp, nil
}

// accessClaims builds the claims of an access token for g in the provider's claim shape.
func (p *Provider) accessClaims(g grant, now time.Time) map[string]any {
	c := map[string]any{
		"iss": p.issuer,
		"sub": g.clientID,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(p.accessTTL).Unix(),
		"jti": rand.Text(),
	}
	if g.user != nil {
		c["sub"] = g.user.sub
		if g.user.email != "" {
			c["email"], c["email_verified"] = g.user.email, true // the IdP's users are its own: verified
		}
		if g.user.groups != nil {
			c["groups"] = g.user.groups
		}
	}
	switch p.shape {
	case ShapeOkta:
		c["cid"] = g.clientID
		if len(g.scopes) > 0 {
			c["scp"] = g.scopes
		}
	case ShapeCognito:
		c["client_id"] = g.clientID
		c["token_use"] = "access"
	default:
		c["client_id"] = g.clientID
	}
	if p.shape != ShapeOkta && len(g.scopes) > 0 {
		c["scope"] = strings.Join(g.scopes, " ")
	}
	if p.shape != ShapeCognito {
		switch len(g.audience) {
		case 0:
		case 1:
			c["aud"] = g.audience[0]
		default:
			c["aud"] = g.audience
		}
	}
	return c
}
