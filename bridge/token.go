package bridge

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// refreshGrant is what a refresh token given to the MCP client seals: the IdP's refresh token, bound to the
// client it was issued to (RFC 6749 section 6: the IdP sees one client, the bridge's, for every MCP client).
type refreshGrant struct {
	Bridge   string `json:"b"`
	Client   string `json:"c"`
	Label    string `json:"l,omitempty"` // the client's label, for the log
	IdPToken string `json:"t"`
}

// tokenAnswer is the RFC 6749 section 5.1 answer the bridge gives the client: the IdP's access token as it is.
type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// idpToken is the IdP's token endpoint answer, success or error.
type idpToken struct {
	AccessToken      string          `json:"access_token"`
	TokenType        string          `json:"token_type"`
	ExpiresIn        json.RawMessage `json:"expires_in"` // a number, or a string of one (older Entra ID)
	RefreshToken     string          `json:"refresh_token"`
	Scope            string          `json:"scope"`
	Error            string          `json:"error"`
	ErrorDescription string          `json:"error_description"`
}

const maxTokenFormBytes = 64 << 10

// token is the token endpoint: authorization_code and refresh_token for public clients. A code is redeemed
// once: the per-replica replay cache refuses a second use here, and the IdP refuses a second use of its own
// code on any replica.
func (b *Bridge) token(is *issuer, w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	d := decision{event: "token", outcome: "deny"}
	fail := func(e *oauthError) {
		if d.reason == "" {
			d.reason = e.Description
		}
		b.logDecision(ctx, is, d)
		writeError(w, e)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenFormBytes)
	if err := r.ParseForm(); err != nil {
		fail(newError(http.StatusBadRequest, "invalid_request", "the token request must be a form (application/x-www-form-urlencoded)"))
		return
	}
	form := r.PostForm
	clientID := form.Get("client_id")
	if id, secret, ok := r.BasicAuth(); ok {
		if id, _ = url.QueryUnescape(id); clientID != "" && id != clientID {
			fail(newError(http.StatusBadRequest, "invalid_request", "client_id differs from the Authorization header's"))
			return
		}
		clientID = id
		if secret != "" {
			fail(newError(http.StatusUnauthorized, "invalid_client", "the bridge's clients are public: no client secret"))
			return
		}
	}
	if form.Get("client_secret") != "" {
		fail(newError(http.StatusUnauthorized, "invalid_client", "the bridge's clients are public: no client secret"))
		return
	}
	if clientID == "" {
		fail(newError(http.StatusUnauthorized, "invalid_client", "client_id is required"))
		return
	}
	switch gt := form.Get("grant_type"); gt {
	case "authorization_code":
		b.redeemCode(ctx, is, w, form, clientID, &d, fail)
	case "refresh_token":
		d.event = "refresh"
		b.refresh(ctx, is, w, form, clientID, &d, fail)
	case "":
		fail(newError(http.StatusBadRequest, "invalid_request", "grant_type is required"))
	default:
		fail(newError(http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"))
	}
}

func (b *Bridge) redeemCode(ctx context.Context, is *issuer, w http.ResponseWriter, form url.Values, clientID string, d *decision, fail func(*oauthError)) {
	code := form.Get("code")
	var g codeGrant
	if err := b.sealer.Open(PurposeCode, code, &g); err != nil || g.Bridge != is.id {
		fail(newError(http.StatusBadRequest, "invalid_grant", "the code is invalid or expired"))
		return
	}
	d.client, d.redirect = g.Label, redirectHost(g.RedirectURI)
	if subtle.ConstantTimeCompare([]byte(digest(clientID)), []byte(g.Client)) != 1 {
		fail(newError(http.StatusBadRequest, "invalid_grant", "the code was issued to another client"))
		return
	}
	// RFC 6749 section 4.1.3: the redirect_uri of the authorization request, identical; optional when that
	// request named none, but then still the one used if given.
	if (form.Has("redirect_uri") || !g.RedirectOmitted) && form.Get("redirect_uri") != g.RedirectURI {
		fail(newError(http.StatusBadRequest, "invalid_grant", "redirect_uri differs from the authorization request's"))
		return
	}
	if !verifierMatches(form.Get("code_verifier"), g.Challenge) {
		fail(newError(http.StatusBadRequest, "invalid_grant", "code_verifier does not match the code_challenge"))
		return
	}
	if !b.replay.first(sha256.Sum256([]byte(code)), b.now().Add(codeTTL)) {
		fail(newError(http.StatusBadRequest, "invalid_grant", "the code was already used"))
		return
	}
	p := url.Values{"grant_type": {"authorization_code"}, "code": {g.IdPCode}, "redirect_uri": {is.iss + "/callback"}, "code_verifier": {g.Verifier}}
	is.setResource(p, g.Resource)
	b.exchange(ctx, is, w, p, g.Client, "", d, fail)
}

func (b *Bridge) refresh(ctx context.Context, is *issuer, w http.ResponseWriter, form url.Values, clientID string, d *decision, fail func(*oauthError)) {
	var g refreshGrant
	if err := b.sealer.Open(PurposeRefresh, form.Get("refresh_token"), &g); err != nil || g.Bridge != is.id {
		fail(newError(http.StatusBadRequest, "invalid_grant", "the refresh token is invalid"))
		return
	}
	if subtle.ConstantTimeCompare([]byte(digest(clientID)), []byte(g.Client)) != 1 {
		fail(newError(http.StatusBadRequest, "invalid_grant", "the refresh token was issued to another client"))
		return
	}
	d.client = g.Label
	p := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {g.IdPToken}}
	if s := form.Get("scope"); s != "" {
		if !validScope(s) || len(s) > maxScopeBytes {
			fail(newError(http.StatusBadRequest, "invalid_scope", "scope is not a list of scope tokens"))
			return
		}
		p.Set("scope", is.idpScopeOnly(s))
	}
	if res := form["resource"]; len(res) > 0 {
		resource, err := b.resource(res)
		if err != nil {
			fail(newError(http.StatusBadRequest, "invalid_target", err.Error()))
			return
		}
		is.setResource(p, resource)
	}
	b.exchange(ctx, is, w, p, g.Client, g.IdPToken, d, fail)
}

// exchange calls the IdP's token endpoint with the bridge's client and answers the client with the IdP's
// tokens, the refresh token sealed and bound to the client. oldRefresh is kept when the IdP does not rotate it.
func (b *Bridge) exchange(ctx context.Context, is *issuer, w http.ResponseWriter, p url.Values, client, oldRefresh string, d *decision, fail func(*oauthError)) {
	meta, err := is.idp.Get(ctx)
	if err != nil {
		d.outcome = "error"
		fail(newError(http.StatusServiceUnavailable, "temporarily_unavailable", errIDPUnavailable.Error()))
		return
	}
	tok, status, err := b.callIdP(ctx, is, meta.TokenEndpoint, p)
	if err != nil {
		d.outcome, d.reason = "error", err.Error()
		fail(newError(http.StatusServiceUnavailable, "temporarily_unavailable", "the identity provider's token endpoint is unavailable"))
		return
	}
	if status != http.StatusOK || tok.AccessToken == "" {
		d.idpError = errorText(tok.Error)
		switch {
		case tok.Error == "invalid_grant" || tok.Error == "invalid_scope" || tok.Error == "invalid_request" || tok.Error == "invalid_target":
			fail(newError(http.StatusBadRequest, tok.Error, "the identity provider refused: "+errorText(tok.ErrorDescription)))
		case tok.Error == "temporarily_unavailable" || status >= 500:
			d.outcome, d.reason = "error", fmt.Sprintf("the identity provider answered status %d", status)
			fail(newError(http.StatusServiceUnavailable, "temporarily_unavailable", "the identity provider is unavailable"))
		default:
			d.outcome = "error"
			d.reason = fmt.Sprintf("the identity provider answered status %d to the bridge's client", status)
			fail(newError(http.StatusBadGateway, "server_error", "the identity provider refused the bridge's client (see the server log)"))
		}
		return
	}
	ans := tokenAnswer{AccessToken: tok.AccessToken, TokenType: tok.TokenType, ExpiresIn: expiresIn(tok.ExpiresIn), Scope: is.mcpScope(tok.Scope)}
	if ans.TokenType == "" {
		ans.TokenType = "Bearer"
	}
	refresh := tok.RefreshToken
	if refresh == "" {
		refresh = oldRefresh
	}
	if refresh != "" {
		if ans.RefreshToken, err = b.sealer.Seal(PurposeRefresh, refreshGrant{Bridge: is.id, Client: client, Label: d.client, IdPToken: refresh}, time.Time{}); err != nil {
			d.outcome = "error"
			fail(newError(http.StatusInternalServerError, "server_error", "the refresh token could not be sealed"))
			return
		}
	}
	d.outcome = "allow"
	b.logDecision(ctx, is, *d)
	writeJSON(w, http.StatusOK, ans)
}

// callIdP posts a token request to the IdP with the bridge's client (client_secret_basic when it has a
// secret, client_id in the form when public).
func (b *Bridge) callIdP(ctx context.Context, is *issuer, endpoint string, p url.Values) (idpToken, int, error) {
	var tok idpToken
	if is.secret == "" {
		p.Set("client_id", is.cfg.ClientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(p.Encode()))
	if err != nil {
		return tok, 0, fmt.Errorf("IdP token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if is.secret != "" {
		req.SetBasicAuth(url.QueryEscape(is.cfg.ClientID), url.QueryEscape(is.secret))
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return tok, 0, fmt.Errorf("IdP token request: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tok); err != nil {
		return tok, 0, fmt.Errorf("IdP token answer (status %d): %w", resp.StatusCode, err)
	}
	return tok, resp.StatusCode, nil
}

// idpScopeOnly maps a narrowed scope of a refresh request: the prefix only, no extra scopes.
func (is *issuer) idpScopeOnly(scope string) string {
	c := *is
	c.cfg.ExtraScopes = nil
	return c.idpScope(scope)
}

func expiresIn(raw json.RawMessage) int64 {
	s := strings.Trim(string(raw), `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// verifierMatches checks an RFC 7636 code_verifier (43 to 128 unreserved characters) against an S256
// challenge, in constant time.
func verifierMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for i := 0; i < len(verifier); i++ {
		c := verifier[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return subtle.ConstantTimeCompare([]byte(s256(verifier)), []byte(challenge)) == 1
}

// replayCache remembers the codes redeemed on this replica until they expire, so a code is redeemed once even
// before the IdP refuses its own code's second use. It is bounded: when full of unexpired codes it refuses new
// ones (fail closed) rather than forget.
type replayCache struct {
	mu   sync.Mutex
	seen map[[sha256.Size]byte]time.Time
	max  int
	now  func() time.Time
}

func newReplayCache(max int) *replayCache {
	return &replayCache{seen: map[[sha256.Size]byte]time.Time{}, max: max, now: time.Now}
}

// first records key until exp and reports whether it was not recorded before.
func (c *replayCache) first(key [sha256.Size]byte, exp time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if t, ok := c.seen[key]; ok && now.Before(t) {
		return false
	}
	if len(c.seen) >= c.max {
		for k, t := range c.seen {
			if !now.Before(t) {
				delete(c.seen, k)
			}
		}
		if len(c.seen) >= c.max {
			return false
		}
	}
	c.seen[key] = exp
	return true
}
