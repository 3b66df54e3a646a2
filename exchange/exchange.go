// Package exchange implements RFC 8693 token exchange for mcp-authz: on an allowed request to a resource
// configured with token_exchange, the client's token is exchanged at the IdP for a token meant for the API
// the MCP server calls as the user, and that token goes upstream in Authorization instead of the
// client's. Exchanged tokens are cached until shortly before they expire.
//
// A failed exchange refuses the request; the client's token is never forwarded instead:
//
//   - the IdP cannot be reached, times out, answers 5xx or an answer that is not a usable token response:
//     503 (authz.Error Unavailable: over gRPC an error_response, which Envoy answers with status_on_error),
//     a failure worth retrying later;
//   - the IdP refuses the exchange with an OAuth error (4xx: invalid_grant, invalid_target,
//     unauthorized_client, invalid_client...): 502 Bad Gateway, a denied response whose description names
//     the OAuth error code. Retrying does not help until the IdP's or mcp-authz's configuration changes,
//     so it is not a 503; and it is not the client's fault, so not a 4xx.
package exchange

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
)

// Grant types and parameters of RFC 8693.
const (
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	// maxResponseBytes bounds a token endpoint's answer.
	maxResponseBytes = 64 << 10
	// maxQuoted bounds what of the IdP's error text goes into a refusal (the log, the span, the client).
	maxQuoted = 200
)

// tokenRequest is one request to the token endpoint.
type tokenRequest struct {
	endpoint string
	issuer   string // the IdP's issuer identifier, when known (the audience of a client assertion)
	form     url.Values
	auth     clientAuth
}

// issued is a token the token endpoint issued.
type issued struct {
	token string
	// expiry is when the token expires: the earlier of expires_in and, for a JWT, its exp; zero when the
	// answer says neither (the token is then not cached).
	expiry time.Time
	// issuedAt is when it was asked for.
	issuedAt time.Time
}

// tokenResponse is the token endpoint's JSON answer, success (RFC 6749 section 5.1, RFC 8693 section 2.2.1)
// or error (section 5.2).
type tokenResponse struct {
	AccessToken      string          `json:"access_token"`
	TokenType        string          `json:"token_type"`
	ExpiresIn        json.RawMessage `json:"expires_in"`
	Error            string          `json:"error"`
	ErrorDescription string          `json:"error_description"`
}

// errUnavailable is a failure of the IdP or of the way to it: 503, retry later.
func errUnavailable(desc string) *authz.Error {
	return &authz.Error{Status: http.StatusServiceUnavailable, Unavailable: true, Description: quote(desc)}
}

// errRefused is the IdP's refusal of the exchange: 502 with the OAuth error code.
func errRefused(desc string) *authz.Error {
	return &authz.Error{Status: http.StatusBadGateway, Description: quote(desc)}
}

// post sends r and returns the token issued. what names the request in errors ("token exchange").
func post(ctx context.Context, client *http.Client, r tokenRequest, now time.Time, what string) (issued, *authz.Error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint, nil)
	if err != nil {
		return issued{}, errUnavailable(what + " failed: " + err.Error())
	}
	if err := r.auth.apply(req, r.form, r.endpoint, r.issuer, now); err != nil {
		return issued{}, errUnavailable(what + " failed: client authentication: " + err.Error())
	}
	body := r.form.Encode()
	req.Body = io.NopCloser(strings.NewReader(body))
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return issued{}, errUnavailable(what + " failed: authorization server unreachable: " + transportError(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return issued{}, errUnavailable(what + " failed: reading the answer: " + transportError(err))
	}
	if len(b) > maxResponseBytes {
		return issued{}, errUnavailable(fmt.Sprintf("%s failed: answer larger than %d bytes", what, maxResponseBytes))
	}
	var tr tokenResponse
	jsonErr := errors.New("not JSON")
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" || bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
		jsonErr = json.Unmarshal(b, &tr)
	}
	switch {
	case resp.StatusCode >= 500:
		return issued{}, errUnavailable(fmt.Sprintf("%s failed: authorization server answered %d%s", what, resp.StatusCode, oauthError(tr)))
	case resp.StatusCode >= 400:
		if jsonErr != nil || tr.Error == "" {
			return issued{}, errRefused(fmt.Sprintf("%s refused: authorization server answered %d without an OAuth error", what, resp.StatusCode))
		}
		return issued{}, errRefused(fmt.Sprintf("%s refused by the authorization server:%s", what, oauthError(tr)))
	case resp.StatusCode != http.StatusOK:
		return issued{}, errUnavailable(fmt.Sprintf("%s failed: authorization server answered %d", what, resp.StatusCode))
	case jsonErr != nil:
		return issued{}, errUnavailable(what + " failed: the answer is not a JSON token response")
	}
	return tr.issued(now, what)
}

// issued checks a successful answer and returns its token.
func (tr *tokenResponse) issued(now time.Time, what string) (issued, *authz.Error) {
	if tr.AccessToken == "" {
		return issued{}, errUnavailable(what + " failed: the answer has no access_token")
	}
	if !strings.EqualFold(tr.TokenType, "bearer") {
		return issued{}, errUnavailable(fmt.Sprintf("%s failed: token_type %q is not Bearer", what, tr.TokenType))
	}
	if !tokenChars(tr.AccessToken) {
		return issued{}, errUnavailable(what + " failed: the access_token cannot be sent as a bearer token")
	}
	out := issued{token: tr.AccessToken, issuedAt: now}
	if secs, ok := expiresIn(tr.ExpiresIn); ok && secs > 0 {
		out.expiry = now.Add(time.Duration(secs) * time.Second)
	}
	if exp, ok := jwtExpiry(tr.AccessToken); ok && (out.expiry.IsZero() || exp.Before(out.expiry)) {
		out.expiry = exp
	}
	return out, nil
}

// oauthError renders an OAuth error answer for a refusal: its code and, cut and scrubbed, its description.
func oauthError(tr tokenResponse) string {
	if tr.Error == "" {
		return ""
	}
	s := " " + tr.Error
	if tr.ErrorDescription != "" {
		s += " (" + tr.ErrorDescription + ")"
	}
	return s
}

// quote makes text from the IdP or the network safe to log and to show: printable ASCII only, at most
// maxQuoted bytes, anything that looks like a JWT replaced.
func quote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= maxQuoted {
			b.WriteString("...")
			break
		}
		if r < 0x20 || r > 0x7e {
			r = '?'
		}
		b.WriteRune(r)
	}
	out := b.String()
	if i := strings.Index(out, "eyJ"); i >= 0 { // a JWT: never repeat a token
		out = out[:i] + "[token]"
	}
	return out
}

// transportError is a network error without the request's URL repeated (the error of http.Client names
// it; it carries no token, but the message is long).
func transportError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return err.Error()
}

// expiresIn reads expires_in, a number of seconds (some IdPs send it as a string).
func expiresIn(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	s := strings.Trim(string(raw), `"`)
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 || n > 1<<31 {
		return 0, false
	}
	return int64(n), true
}

// jwtExpiry reads the exp of a token that is a JWS compact serialization, without verifying it: the token
// comes from the token endpoint itself, and exp only bounds how long mcp-authz keeps it.
func jwtExpiry(tok string) (time.Time, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var c struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &c) != nil || c.Exp == "" {
		return time.Time{}, false
	}
	f, err := c.Exp.Float64()
	if err != nil || f <= 0 {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// tokenChars reports whether s fits the b64token syntax of RFC 6750 section 2.1, so that
// "Bearer " + s is a valid Authorization header.
func tokenChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-._~+/=", c) >= 0:
		default:
			return false
		}
	}
	return true
}
