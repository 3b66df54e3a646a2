package bridge

import (
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
)

// oauthError is an RFC 6749 error: the JSON body of the token and registration endpoints, or the query of a
// redirect to the client.
type oauthError struct {
	status      int
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Description }

func newError(status int, code, desc string) *oauthError {
	return &oauthError{status: status, Code: code, Description: desc}
}

// writeJSON answers v with status, never cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeError answers an RFC 6749 section 5.2 error.
func writeError(w http.ResponseWriter, e *oauthError) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="mcp-authz bridge"`)
	}
	writeJSON(w, e.status, e)
}

// errorText keeps the characters RFC 6749 allows in error_description (%x20-21 / %x23-5B / %x5D-7E), so that
// a description relayed from the IdP cannot carry anything else, and bounds its length.
func errorText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 200; i++ {
		if c := s[i]; c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// redirectTo sends the browser to the client's redirect URI (validated before) with params added to its
// query, as RFC 6749 section 4.1.2 says, and the bridge's issuer (RFC 9207).
func redirectTo(w http.ResponseWriter, r *http.Request, redirectURI string, params url.Values, state, iss string) {
	u, err := url.Parse(redirectURI)
	if err != nil { // validated when the authorization began: cannot happen
		errorPage(w, http.StatusBadRequest, "Invalid redirect URI", "The client's redirect URI cannot be used.")
		return
	}
	q := url.Values{}
	for k, vs := range params {
		q[k] = vs
	}
	if state != "" {
		q.Set("state", state)
	}
	q.Set("iss", iss)
	// The URI's own query is kept as registered, byte for byte (RFC 6749 section 3.1.2): the parameters
	// are appended, never re-encoded with it.
	if u.RawQuery != "" {
		u.RawQuery += "&" + q.Encode()
	} else {
		u.RawQuery = q.Encode()
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// redirectError sends an RFC 6749 section 4.1.2.1 error to the client's (validated) redirect URI.
func redirectError(w http.ResponseWriter, r *http.Request, redirectURI, state, iss string, e *oauthError) {
	p := url.Values{"error": {e.Code}}
	if e.Description != "" {
		p.Set("error_description", errorText(e.Description))
	}
	redirectTo(w, r, redirectURI, p, state, iss)
}

// pageHeaders are the headers of every page the bridge shows: nothing from elsewhere runs or loads in it,
// it is never framed (clickjacking a consent), cached, or referred from.
func pageHeaders(w http.ResponseWriter, csp string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
}

// errorPage shows an error to the user when it cannot go back to the client: the redirect URI is not (yet)
// trusted, or the request did not come from a flow of this browser.
func errorPage(w http.ResponseWriter, status int, title, msg string) {
	pageHeaders(w, "default-src 'none'; style-src "+styleHash+"; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	w.WriteHeader(status)
	errorTemplate.Execute(w, struct{ Title, Message string }{title, msg})
}

var errorTemplate = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title><style>` + pageStyle + `</style></head>
<body><main><h1>{{.Title}}</h1><p>{{.Message}}</p>
<p>Close this window and try again from your application.</p></main></body></html>
`))

// errIDPUnavailable is what the client is told when the IdP's discovery document cannot be had (the log says why).
var errIDPUnavailable = errors.New("the identity provider's discovery document is unavailable")
