package bridge

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/discovery"
)

// txn is a pending authorization: sealed in the consent form, then in the state sent to the IdP. It holds what
// the callback needs to answer the client, and the browser binding that ties it to the browser that began it.
type txn struct {
	ID          string `json:"id"` // random; binds the consent form's CSRF token to this form
	Bridge      string `json:"b"`
	Client      string `json:"c"` // digest of the client id: the code is bound to it
	Label       string `json:"l"` // the client's label, for the log
	RedirectURI string `json:"r"`
	// RedirectOmitted is true when the request named no redirect_uri (the client's only one was used): the
	// token request then need not name it either (RFC 6749 section 4.1.3).
	RedirectOmitted bool   `json:"ro,omitempty"`
	State           string `json:"s,omitempty"`
	Challenge       string `json:"cc"`
	Scope           string `json:"sc,omitempty"` // as the client asked (MCP names)
	Resource        string `json:"res,omitempty"`
	Verifier        string `json:"v"` // the bridge's own PKCE verifier towards the IdP
	Binding         string `json:"n"` // digest of the browser-binding cookie
}

// Bounds of the authorization request's parameters.
const (
	maxStateBytes = 2048
	maxScopeBytes = 1024
)

// authorize is the authorization endpoint. Until the client and its redirect URI are validated, errors are
// shown on a page (never redirected to an unvalidated URI); then they go to the redirect URI with state and
// iss (RFC 6749 section 4.1.2.1, RFC 9207). A valid request goes to the consent page, or straight to the IdP
// when this browser approved this client before.
func (b *Bridge) authorize(is *issuer, w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	d := decision{event: "authorize", outcome: "deny"}
	page := func(status int, title, msg, reason string) {
		d.reason = reason
		b.logDecision(ctx, is, d)
		errorPage(w, status, title, msg)
	}
	for _, k := range []string{"client_id", "redirect_uri", "state", "response_type", "code_challenge", "code_challenge_method", "scope"} {
		if len(q[k]) > 1 {
			page(http.StatusBadRequest, "Invalid request", "The application sent the parameter "+k+" more than once.", "duplicate parameter "+k)
			return
		}
	}
	c, err := b.resolveClient(ctx, is, q.Get("client_id"))
	if err != nil {
		d.client = shorten(q.Get("client_id"))
		if !isCIMDClientID(d.client) {
			d.client = ""
		}
		page(http.StatusBadRequest, "Unknown application", "The application that sent you here is not registered: "+err.Error(), err.Error())
		return
	}
	d.client = c.label()
	redirectURI := q.Get("redirect_uri")
	omitted := redirectURI == ""
	if omitted && len(c.redirectURIs) == 1 {
		redirectURI = c.redirectURIs[0]
	}
	d.redirect = redirectHost(redirectURI)
	if !registeredMatch(c.redirectURIs, redirectURI) {
		page(http.StatusBadRequest, "Invalid redirect URI", "The application asked to return to an address it did not register.", "redirect_uri not registered by the client")
		return
	}
	if err := b.redirects.allows(redirectURI); err != nil {
		page(http.StatusBadRequest, "Redirect URI not allowed", "This server does not allow the application's return address.", err.Error())
		return
	}
	// The redirect URI is trusted from here on: errors go back to the client.
	state := q.Get("state")
	fail := func(code, desc string) {
		d.reason = desc
		b.logDecision(ctx, is, d)
		redirectError(w, r, redirectURI, state, is.iss, newError(0, code, desc))
	}
	if len(state) > maxStateBytes {
		fail("invalid_request", fmt.Sprintf("state is longer than %d bytes", maxStateBytes))
		return
	}
	if q.Get("response_type") != "code" {
		fail("unsupported_response_type", "response_type must be code")
		return
	}
	if q.Get("code_challenge_method") != "S256" {
		fail("invalid_request", "PKCE is required: code_challenge_method must be S256")
		return
	}
	challenge := q.Get("code_challenge")
	if !validChallenge(challenge) {
		fail("invalid_request", "code_challenge must be a base64url SHA-256 digest (43 characters)")
		return
	}
	scope := q.Get("scope")
	if len(scope) > maxScopeBytes || !validScope(scope) {
		fail("invalid_scope", "scope is not a list of scope tokens")
		return
	}
	resource, err := b.resource(q["resource"])
	if err != nil {
		fail("invalid_target", err.Error())
		return
	}
	if strings.TrimSpace(scope) == "" {
		scope = b.defaultScope(resource)
	} else if s, ok := b.scopeAllowed(is, resource, scope); !ok {
		fail("invalid_scope", "scope "+s+" is not one the resource supports")
		return
	}
	meta, err := is.idp.Get(ctx)
	if err != nil {
		d.outcome = "error"
		fail("temporarily_unavailable", errIDPUnavailable.Error())
		b.log.Error("bridge: IdP discovery failed", "bridge", is.id, "error", err.Error())
		return
	}
	binding := b.binding(w, r)
	verifier := rand.Text() + rand.Text()
	tx := txn{ID: rand.Text(), Bridge: is.id, Client: digest(c.id), Label: shorten(c.label()), RedirectURI: redirectURI, RedirectOmitted: omitted, State: state,
		Challenge: challenge, Scope: strings.Join(strings.Fields(scope), " "), Resource: resource, Verifier: verifier, Binding: digest("bind:" + binding)}
	if b.approved(r, is, tx.consentKey()) {
		d.outcome, d.reason = "allow", "approved before in this browser"
		b.logDecision(ctx, is, d)
		b.toIdP(w, r, is, meta, tx)
		return
	}
	d.outcome, d.reason = "allow", "consent asked"
	b.logDecision(ctx, is, d)
	b.showConsent(w, is, c, tx)
}

// toIdP sends the browser to the IdP's authorization endpoint with the bridge's client, its own PKCE challenge
// and the sealed transaction as state.
func (b *Bridge) toIdP(w http.ResponseWriter, r *http.Request, is *issuer, meta *discovery.Metadata, tx txn) {
	state, err := b.sealer.Seal(PurposeState, tx, b.now().Add(stateTTL))
	if err != nil {
		errorPage(w, http.StatusInternalServerError, "Server error", "The sign-in could not be started.")
		return
	}
	u, err := url.Parse(meta.AuthorizationEndpoint)
	if err != nil {
		errorPage(w, http.StatusBadGateway, "Identity provider error", "The identity provider's address is invalid.")
		return
	}
	p := u.Query()
	for k, v := range is.cfg.AuthorizeParams {
		p.Set(k, v)
	}
	p.Set("response_type", "code")
	p.Set("client_id", is.cfg.ClientID)
	p.Set("redirect_uri", is.iss+"/callback")
	p.Set("state", state)
	p.Set("code_challenge", s256(tx.Verifier))
	p.Set("code_challenge_method", "S256")
	if s := is.idpScope(tx.Scope); s != "" {
		p.Set("scope", s)
	}
	is.setResource(p, tx.Resource)
	u.RawQuery = p.Encode()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// resource checks the RFC 8707 resource parameter: at most one, naming a configured resource. Without one,
// the only configured resource is meant; with several configured, none.
func (b *Bridge) resource(values []string) (string, error) {
	switch len(values) {
	case 0:
		if len(b.resources) == 1 {
			return b.resources[0].URL, nil
		}
		return "", nil
	case 1:
	default:
		return "", fmt.Errorf("one resource at a time")
	}
	for _, r := range b.resources {
		if sameResource(r.URL, values[0]) {
			return r.URL, nil
		}
	}
	return "", fmt.Errorf("resource %q is not a server this authorization server protects", shorten(values[0]))
}

// consentKey identifies what a browser approves: this client, for this resource and these scopes (a
// remembered approval of fewer scopes or another resource asks again).
func (tx txn) consentKey() string {
	scopes := strings.Fields(tx.Scope)
	slices.Sort(scopes)
	return digest(tx.Client + "\x00" + tx.Resource + "\x00" + strings.Join(slices.Compact(scopes), " "))
}

// scopeAllowed reports whether every scope of the request is one the resource lists (scopes_supported,
// challenge_scopes), an OpenID Connect scope, or one of the issuer's extra_scopes; else the first that is
// not. A resource that lists no scopes limits none. The one bridge client may hold more scopes at the IdP
// than an MCP client should obtain through it.
func (b *Bridge) scopeAllowed(is *issuer, resource, scope string) (string, bool) {
	var listed []string
	for _, r := range b.resources {
		if r.URL == resource {
			listed = append(append(listed, r.ScopesSupported...), r.ChallengeScopes...)
		}
	}
	if len(listed) == 0 {
		return "", true
	}
	for _, s := range strings.Fields(scope) {
		if !oidcScopes[s] && !slices.Contains(listed, s) && !slices.Contains(is.cfg.ExtraScopes, s) {
			return s, false
		}
	}
	return "", true
}

// defaultScope is the scope of a request that names none: what the resource's 401 challenge asks for
// (challenge_scopes, else scopes_supported). Without it an IdP such as Entra ID would issue a token for
// another API than the resource.
func (b *Bridge) defaultScope(resource string) string {
	for _, r := range b.resources {
		if r.URL == resource {
			if len(r.ChallengeScopes) > 0 {
				return strings.Join(r.ChallengeScopes, " ")
			}
			return strings.Join(r.ScopesSupported, " ")
		}
	}
	return ""
}

// sameResource compares resource URIs as the verifier compares a token's audience with a resource
// (config.CanonicalURI: scheme and host in any case, the default port dropped, the path and query exact).
func sameResource(configured, given string) bool {
	return config.CanonicalURI(given) == config.CanonicalURI(configured)
}

// setResource adds the resource to a request to the IdP as the issuer's bridge says: as resource, as
// audience, or not at all.
func (is *issuer) setResource(p url.Values, resource string) {
	switch is.cfg.Resource {
	case config.BridgeResourcePass:
		if resource != "" {
			p.Set("resource", resource)
		}
	case config.BridgeResourceAudience:
		if a := is.cfg.Audience; a != "" {
			p.Set("audience", a)
		} else if resource != "" {
			p.Set("audience", resource)
		}
	}
}

// oidcScopes are sent to the IdP without the scope prefix.
var oidcScopes = map[string]bool{"openid": true, "profile": true, "email": true, "offline_access": true, "address": true, "phone": true}

// idpScope maps the client's scopes to the IdP's: the prefix before each (OpenID Connect scopes aside), then
// the extra scopes.
func (is *issuer) idpScope(scope string) string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, s := range strings.Fields(scope) {
		if oidcScopes[s] || is.cfg.ScopePrefix == "" || strings.HasPrefix(s, is.cfg.ScopePrefix) {
			add(s)
		} else {
			add(is.cfg.ScopePrefix + s)
		}
	}
	for _, s := range is.cfg.ExtraScopes {
		add(s)
	}
	return strings.Join(out, " ")
}

// mcpScope maps the scopes the IdP granted back to the client's names.
func (is *issuer) mcpScope(scope string) string {
	if is.cfg.ScopePrefix == "" {
		return scope
	}
	var out []string
	for _, s := range strings.Fields(scope) {
		out = append(out, strings.TrimPrefix(s, is.cfg.ScopePrefix))
	}
	return strings.Join(out, " ")
}

// validScope reports whether s is a space-separated list of RFC 6749 scope tokens (or empty).
func validScope(s string) bool {
	for _, t := range strings.Split(s, " ") {
		if t != "" && !config.ValidScopeToken(t) {
			return false
		}
	}
	return true
}

// validChallenge reports whether c is an S256 code challenge: the base64url (unpadded) SHA-256 of a verifier.
func validChallenge(c string) bool {
	b, err := base64.RawURLEncoding.DecodeString(c)
	return err == nil && len(b) == sha256.Size
}

// s256 is the RFC 7636 S256 challenge of verifier.
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
