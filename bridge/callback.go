package bridge

import (
	"crypto/subtle"
	"net/http"
	"net/url"
)

// codeGrant is what the code given to the MCP client seals: the IdP's code and what redeeming it checks.
type codeGrant struct {
	Bridge      string `json:"b"`
	Client      string `json:"c"` // digest of the client id
	Label       string `json:"l"`
	RedirectURI string `json:"r"`
	// RedirectOmitted: the authorization request named no redirect_uri (txn.RedirectOmitted).
	RedirectOmitted bool   `json:"ro,omitempty"`
	Challenge       string `json:"cc"`
	Scope           string `json:"sc,omitempty"`
	Resource        string `json:"res,omitempty"`
	Verifier        string `json:"v"`  // the bridge's verifier for the IdP's code
	IdPCode         string `json:"ic"` // the IdP's authorization code
}

// rfc6749AuthzErrors are the authorization error codes relayed from the IdP as they are; others become
// server_error.
var rfc6749AuthzErrors = map[string]bool{
	"invalid_request": true, "unauthorized_client": true, "access_denied": true, "unsupported_response_type": true,
	"invalid_scope": true, "server_error": true, "temporarily_unavailable": true, "login_required": true,
	"interaction_required": true, "consent_required": true, "account_selection_required": true, "invalid_target": true,
}

// callback is the redirect URI of the bridge's client at the IdP. The state must be one this bridge sealed,
// not expired, for this browser (binding cookie: a state from another browser's flow is refused); the IdP's
// iss must be the IdP's when it sends one or advertises it (RFC 9207 mix-up defence). Then the browser goes
// back to the client with the bridge's own code, the client's state and the bridge's iss.
func (b *Bridge) callback(is *issuer, w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	d := decision{event: "callback", outcome: "deny"}
	page := func(status int, title, msg, reason string) {
		d.reason = reason
		b.logDecision(ctx, is, d)
		errorPage(w, status, title, msg)
	}
	var tx txn
	if err := b.sealer.Open(PurposeState, q.Get("state"), &tx); err != nil || tx.Bridge != is.id {
		page(http.StatusBadRequest, "Sign-in expired", "This sign-in is invalid or took too long. Start again from your application.", "invalid or expired state")
		return
	}
	d.client, d.redirect = tx.Label, redirectHost(tx.RedirectURI)
	binding := b.bindingValue(r)
	if binding == "" || subtle.ConstantTimeCompare([]byte(digest("bind:"+binding)), []byte(tx.Binding)) != 1 {
		page(http.StatusForbidden, "Sign-in refused", "This sign-in was started in another browser.", "state of another browser (binding cookie mismatch)")
		return
	}
	fail := func(code, desc string) {
		d.reason = desc
		b.logDecision(ctx, is, d)
		redirectError(w, r, tx.RedirectURI, tx.State, is.iss, newError(0, code, desc))
	}
	meta, err := is.idp.Get(ctx)
	if err != nil {
		d.outcome = "error"
		fail("temporarily_unavailable", errIDPUnavailable.Error())
		return
	}
	iss, hasIss := q["iss"]
	if (meta.IssParameterSupported || hasIss) && (len(iss) != 1 || iss[0] != is.idpIssuer) {
		fail("server_error", "the identity provider's response names another issuer (RFC 9207)")
		return
	}
	if e := q.Get("error"); e != "" {
		d.idpError = errorText(e)
		code := e
		if !rfc6749AuthzErrors[e] {
			code = "server_error"
		}
		desc := q.Get("error_description")
		if desc == "" {
			desc = "the identity provider refused the authorization"
		}
		fail(code, desc)
		return
	}
	code := q.Get("code")
	if code == "" {
		fail("server_error", "the identity provider answered without a code")
		return
	}
	sealed, err := b.sealer.Seal(PurposeCode, codeGrant{Bridge: is.id, Client: tx.Client, Label: tx.Label, RedirectURI: tx.RedirectURI, RedirectOmitted: tx.RedirectOmitted,
		Challenge: tx.Challenge, Scope: tx.Scope, Resource: tx.Resource, Verifier: tx.Verifier, IdPCode: code}, b.now().Add(codeTTL))
	if err != nil {
		d.outcome = "error"
		fail("server_error", "the code could not be sealed")
		return
	}
	d.outcome = "allow"
	b.logDecision(ctx, is, d)
	redirectTo(w, r, tx.RedirectURI, url.Values{"code": {sealed}}, tx.State, is.iss)
}
