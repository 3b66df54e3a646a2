package bridge

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// cookieNames are the bridge's cookie names: with the __Host- prefix when public_url is https (the browser
// then keeps them to this host, Secure, path /).
type cookieNames struct {
	binding string
	grants  string // followed by the bridge id
	secure  bool
}

func newCookieNames(pu *url.URL) cookieNames {
	if pu.Scheme == "https" {
		return cookieNames{binding: "__Host-mcp-authz-bind", grants: "__Host-mcp-authz-consent-", secure: true}
	}
	return cookieNames{binding: "mcp-authz-bind", grants: "mcp-authz-consent-"}
}

func (b *Bridge) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: int(maxAge / time.Second),
		HttpOnly: true, Secure: b.cookies.secure, SameSite: http.SameSiteLaxMode})
}

// binding returns this browser's binding nonce, setting a new one when it has none, and renews the cookie.
// Every transaction carries its digest: a state or consent form from another browser does not match it.
func (b *Bridge) binding(w http.ResponseWriter, r *http.Request) string {
	v := b.bindingValue(r)
	if v == "" {
		v = rand.Text() + rand.Text()
	}
	b.setCookie(w, b.cookies.binding, v, bindingTTL)
	return v
}

func (b *Bridge) bindingValue(r *http.Request) string {
	c, err := r.Cookie(b.cookies.binding)
	if err != nil || len(c.Value) < 32 || len(c.Value) > 128 {
		return ""
	}
	return c.Value
}

// grants is the sealed content of the consent cookie: the clients this browser approved, by digest of their
// id, with the end of each approval (unix seconds).
type grants struct {
	G map[string]int64 `json:"g"`
}

// maxGrants bounds the approvals one cookie remembers; the oldest go first.
const maxGrants = 32

func (b *Bridge) readGrants(r *http.Request, is *issuer) grants {
	g := grants{G: map[string]int64{}}
	if c, err := r.Cookie(b.cookies.grants + is.id); err == nil {
		var got grants
		if b.sealer.Open(PurposeGrants, c.Value, &got) == nil && got.G != nil {
			g = got
		}
	}
	return g
}

// approved reports whether this browser approved key (txn.consentKey), and the approval has not ended.
func (b *Bridge) approved(r *http.Request, is *issuer, key string) bool {
	exp, ok := b.readGrants(r, is).G[key]
	return ok && b.now().Unix() < exp
}

// remember adds an approval (txn.consentKey) to the consent cookie.
func (b *Bridge) remember(w http.ResponseWriter, r *http.Request, is *issuer, key string) {
	ttl := b.cfg.Consent()
	if ttl <= 0 {
		return
	}
	now := b.now()
	g := b.readGrants(r, is)
	for k, exp := range g.G {
		if now.Unix() >= exp {
			delete(g.G, k)
		}
	}
	g.G[key] = now.Add(ttl).Unix()
	if len(g.G) > maxGrants {
		keys := make([]string, 0, len(g.G))
		for k := range g.G {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return g.G[keys[i]] < g.G[keys[j]] })
		for _, k := range keys[:len(keys)-maxGrants] {
			delete(g.G, k)
		}
	}
	v, err := b.sealer.Seal(PurposeGrants, g, now.Add(ttl))
	if err != nil {
		return
	}
	b.setCookie(w, b.cookies.grants+is.id, v, ttl)
}

// csrfToken is the sealed content of the consent form's CSRF token: the browser binding and the transaction
// it was issued with.
type csrfToken struct {
	Binding string `json:"n"`
	Txn     string `json:"t"`
}

// consentPage is what the consent page shows.
type consentPage struct {
	Action, Txn, CSRF                       string
	ClientName, ClientID, RedirectHost, IdP string
	ResourceName, ResourceURL               string
	Scopes                                  []string
	CIMD                                    bool
}

// showConsent renders the consent page: who asks (name, id or URL), where the answer goes (the redirect
// host), for which MCP server and scopes. Its form carries the sealed transaction and a CSRF token bound to
// this browser's binding cookie.
func (b *Bridge) showConsent(w http.ResponseWriter, is *issuer, c *client, tx txn) {
	now := b.now()
	sealedTx, err1 := b.sealer.Seal(PurposeConsent, tx, now.Add(stateTTL))
	csrf, err2 := b.sealer.Seal(PurposeCSRF, csrfToken{Binding: tx.Binding, Txn: tx.ID}, now.Add(stateTTL))
	if err1 != nil || err2 != nil {
		errorPage(w, http.StatusInternalServerError, "Server error", "The consent page could not be prepared.")
		return
	}
	p := consentPage{Action: is.iss + "/consent", Txn: sealedTx, CSRF: csrf, ClientName: c.name, RedirectHost: redirectHost(tx.RedirectURI),
		IdP: redirectHost(is.idpIssuer), ResourceURL: tx.Resource, Scopes: strings.Fields(tx.Scope), CIMD: c.cimd}
	if c.cimd {
		p.ClientID = c.id
	} else {
		p.ClientID = digest(c.id)[:12]
	}
	if p.ClientName == "" {
		p.ClientName = "An unnamed application"
	}
	for _, res := range b.resources {
		if res.URL == tx.Resource {
			p.ResourceName = res.Name
		}
	}
	pageHeaders(w, b.consentCSP())
	w.WriteHeader(http.StatusOK)
	consentTemplate.Execute(w, p)
}

// consentCSP lets the page load nothing but its own style and never be framed (a consent clickjacked in a
// frame is no consent). It sets no form-action: browsers apply it to every redirect that follows the form
// too, and after the IdP's authorization endpoint come its login pages, on origins the bridge cannot know.
// The page has no markup of anyone else (html/template escapes every value) and runs no script, so there is
// no injected form to guard against.
func (b *Bridge) consentCSP() string {
	return "default-src 'none'; style-src " + styleHash + "; frame-ancestors 'none'; base-uri 'none'"
}

// consent receives the consent form. The CSRF token and the transaction must both have been issued to this
// browser (binding cookie) for this form; a refusal goes back to the client as access_denied.
func (b *Bridge) consent(is *issuer, w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	d := decision{event: "consent", outcome: "deny"}
	page := func(status int, title, msg, reason string) {
		d.reason = reason
		b.logDecision(ctx, is, d)
		errorPage(w, status, title, msg)
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		page(http.StatusBadRequest, "Invalid request", "The consent form could not be read.", "unreadable form")
		return
	}
	// Browsers say where a request comes from in Sec-Fetch-Site, even when the page's no-referrer policy
	// makes them send Origin: null; an Origin, when one is named, must be public_url's.
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" ||
		r.Header.Get("Origin") != "" && r.Header.Get("Origin") != "null" && !strings.EqualFold(r.Header.Get("Origin"), b.publicURL.Scheme+"://"+b.publicURL.Host) {
		page(http.StatusForbidden, "Request refused", "The consent form was sent from another site.", "cross-origin consent POST")
		return
	}
	binding := b.bindingValue(r)
	if binding == "" {
		page(http.StatusForbidden, "Request refused", "This browser did not start this sign-in (cookies may be blocked).", "no binding cookie")
		return
	}
	bd := digest("bind:" + binding)
	var tx txn
	if err := b.sealer.Open(PurposeConsent, r.PostForm.Get("txn"), &tx); err != nil || tx.Bridge != is.id {
		page(http.StatusBadRequest, "Sign-in expired", "This consent form is invalid or expired.", "invalid or expired consent transaction")
		return
	}
	d.client, d.redirect = tx.Label, redirectHost(tx.RedirectURI)
	var tok csrfToken
	if err := b.sealer.Open(PurposeCSRF, r.PostForm.Get("csrf"), &tok); err != nil ||
		subtle.ConstantTimeCompare([]byte(tok.Binding), []byte(bd)) != 1 || tok.Txn != tx.ID {
		page(http.StatusForbidden, "Request refused", "The consent form's security token is missing or wrong.", "CSRF token missing or wrong")
		return
	}
	if subtle.ConstantTimeCompare([]byte(tx.Binding), []byte(bd)) != 1 {
		page(http.StatusForbidden, "Request refused", "This sign-in was started in another browser.", "consent transaction of another browser")
		return
	}
	switch r.PostForm.Get("decision") {
	case "allow":
		meta, err := is.idp.Get(ctx)
		if err != nil {
			d.outcome, d.reason = "error", "IdP discovery unavailable"
			b.logDecision(ctx, is, d)
			redirectError(w, r, tx.RedirectURI, tx.State, is.iss, newError(0, "temporarily_unavailable", errIDPUnavailable.Error()))
			return
		}
		d.outcome, d.reason = "allow", "approved by the user"
		b.logDecision(ctx, is, d)
		b.remember(w, r, is, tx.consentKey())
		b.toIdP(w, r, is, meta, tx)
	case "deny":
		d.reason = "refused by the user"
		b.logDecision(ctx, is, d)
		redirectError(w, r, tx.RedirectURI, tx.State, is.iss, newError(0, "access_denied", "the user refused to authorize the application"))
	default:
		page(http.StatusBadRequest, "Invalid request", "The consent form's answer is missing.", "no decision in the consent form")
	}
}

// pageStyle is the only style of the bridge's pages, allowed by its hash in their Content-Security-Policy.
const pageStyle = `body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1a1a1a;background:#fff}` +
	`dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}` +
	`.actions{display:flex;gap:1rem;margin-top:1.5rem}button{font-size:1rem;padding:.6rem 1.2rem;border-radius:.3rem;border:1px solid #444;cursor:pointer}` +
	`button.allow{background:#0b57d0;color:#fff;border-color:#0b57d0}button:focus-visible{outline:3px solid #f9a825;outline-offset:2px}` +
	`.warn{background:#fff4e5;border-left:4px solid #b45309;padding:.5rem 1rem}`

var styleHash = func() string {
	sum := sha256.Sum256([]byte(pageStyle))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

var consentTemplate = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Authorize {{.ClientName}}</title><style>` + pageStyle + `</style></head>
<body><main>
<h1 id="title">Authorize {{.ClientName}}?</h1>
<p>This application asks to use an MCP server on your behalf. After you allow it, you sign in at {{.IdP}}, and the
application receives an access token for you.</p>
<dl aria-labelledby="title">
<dt>Application</dt><dd id="client-name">{{.ClientName}}</dd>
<dt>{{if .CIMD}}Identified by{{else}}Registration{{end}}</dt><dd id="client-id">{{.ClientID}}</dd>
<dt>Returns to</dt><dd id="redirect-host">{{.RedirectHost}}</dd>
<dt>MCP server</dt><dd id="resource">{{if .ResourceName}}{{.ResourceName}} ({{.ResourceURL}}){{else}}{{.ResourceURL}}{{end}}</dd>
<dt>Permissions</dt><dd id="scopes">{{if .Scopes}}{{range $i, $s := .Scopes}}{{if $i}}, {{end}}{{$s}}{{end}}{{else}}the server's defaults{{end}}</dd>
</dl>
<p class="warn">Allow only if you started this from the application above, and you trust it with access to this server.</p>
<form method="post" action="{{.Action}}">
<input type="hidden" name="txn" value="{{.Txn}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<div class="actions">
<button id="allow" class="allow" type="submit" name="decision" value="allow">Allow</button>
<button id="deny" type="submit" name="decision" value="deny">Deny</button>
</div>
</form>
</main></body></html>
`))
