package idp

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

const resourceURL = "https://mcp.example.com/mcp"

// start serves a new provider on 127.0.0.1 under issuerPath ("" for the root).
func start(t *testing.T, issuerPath string, opts ...Option) (*Provider, *httptest.Server) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	p, err := New("http://"+srv.Listener.Addr().String()+issuerPath, opts...)
	if err != nil {
		srv.Listener.Close()
		t.Fatalf("New: %v", err)
	}
	srv.Config.Handler = p.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	return p, srv
}

// noRedirect is a client that returns redirects instead of following them.
func noRedirect(srv *httptest.Server) *http.Client {
	c := *srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func getJSON(t *testing.T, c *http.Client, u string) (int, http.Header, map[string]any) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return decode(t, resp)
}

func decode(t *testing.T, resp *http.Response) (int, http.Header, map[string]any) {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return resp.StatusCode, resp.Header, m
}

// postToken sends a token request; basic, when not empty, is "id:secret" for HTTP Basic.
func postToken(t *testing.T, srv *httptest.Server, basic string, form url.Values) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatalf("build token request: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if i := strings.LastIndex(basic, ":"); i >= 0 { // the secret has no colon; the client ID may
		req.SetBasicAuth(url.QueryEscape(basic[:i]), url.QueryEscape(basic[i+1:]))
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("POST /token: %v", err)
	}
	return decode(t, resp)
}

func fetchJWKS(t *testing.T, srv *httptest.Server) jwk.Set {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + "/jwks")
	if err != nil {
		t.Fatalf("GET /jwks: %v", err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "application/jwk-set+json" {
		t.Fatalf("GET /jwks: status %d, content type %q", resp.StatusCode, ct)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read JWKS: %v", err)
	}
	set, err := jwk.Parse(body)
	if err != nil {
		t.Fatalf("parse JWKS: %v", err)
	}
	return set
}

// verify checks tok against the served JWKS and returns its claims and protected header.
func verify(t *testing.T, srv *httptest.Server, tok string) (map[string]any, jws.Headers) {
	t.Helper()
	parsed, err := jwt.Parse([]byte(tok), jwt.WithKeySet(fetchJWKS(t, srv)), jwt.WithValidate(true))
	if err != nil {
		t.Fatalf("verify token: %v", err)
	}
	claims, err := parsed.AsMap(t.Context())
	if err != nil {
		t.Fatalf("claims: %v", err)
	}
	msg, err := jws.Parse([]byte(tok))
	if err != nil {
		t.Fatalf("parse JWS: %v", err)
	}
	return claims, msg.Signatures()[0].ProtectedHeaders()
}

// rawClaims decodes the payload of a compact JWT without verifying it, keeping JSON types.
func rawClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("decode payload: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("unmarshal payload: %v", err)
	}
	return m
}

func rawHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatalf("decode header: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("unmarshal header: %v", err)
	}
	return m
}

func pkce() (verifier, challenge string) {
	verifier = rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

func authorizeParams(clientID, redirectURI, challenge string) url.Values {
	return url.Values{
		"response_type":         {"code"},
		"client_id":             {clientID},
		"redirect_uri":          {redirectURI},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
		"state":                 {"st-123"},
		"nonce":                 {"n-456"},
		"scope":                 {"openid tools:read tools:call"},
		"resource":              {resourceURL},
	}
}

// authorize runs /authorize and returns the redirect's query, failing unless it redirected to redirectURI.
func authorize(t *testing.T, srv *httptest.Server, params url.Values) url.Values {
	t.Helper()
	resp, err := noRedirect(srv).Get(srv.URL + "/authorize?" + params.Encode())
	if err != nil {
		t.Fatalf("GET /authorize: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GET /authorize: status %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatalf("parse Location: %v", err)
	}
	want := params.Get("redirect_uri")
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != want {
		t.Fatalf("redirected to %s, want %s", got, want)
	}
	return loc.Query()
}

func TestDiscovery(t *testing.T) {
	for _, tc := range []struct {
		name, issuerPath string
		docPaths         []string
	}{
		{"root issuer", "", []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"}},
		{"issuer with path", "/tenant", []string{
			"/tenant/.well-known/openid-configuration",
			"/tenant/.well-known/oauth-authorization-server",
			"/.well-known/oauth-authorization-server/tenant",
			"/.well-known/openid-configuration/tenant",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, srv := start(t, tc.issuerPath, WithScopes([]string{"openid", "tools:read"}))
			base := srv.URL + tc.issuerPath
			for _, path := range tc.docPaths {
				status, h, doc := getJSON(t, srv.Client(), srv.URL+path)
				if status != http.StatusOK || h.Get("Content-Type") != "application/json" {
					t.Fatalf("%s: status %d, content type %q", path, status, h.Get("Content-Type"))
				}
				want := map[string]any{
					"issuer":                                p.Issuer(),
					"authorization_endpoint":                base + "/authorize",
					"token_endpoint":                        base + "/token",
					"registration_endpoint":                 base + "/register",
					"jwks_uri":                              base + "/jwks",
					"response_types_supported":              []any{"code"},
					"grant_types_supported":                 []any{"authorization_code", "refresh_token", "client_credentials"},
					"code_challenge_methods_supported":      []any{"S256"},
					"token_endpoint_auth_methods_supported": []any{"none", "client_secret_post", "client_secret_basic"},
					"scopes_supported":                      []any{"openid", "tools:read"},
					"id_token_signing_alg_values_supported": []any{"RS256"},
					"subject_types_supported":               []any{"public"},
				}
				for k, v := range want {
					if got, _ := json.Marshal(doc[k]); string(got) != mustJSON(t, v) {
						t.Errorf("%s: %s = %s, want %s", path, k, got, mustJSON(t, v))
					}
				}
			}
			// The advertised JWKS is served.
			status, _, jwks := getJSON(t, srv.Client(), base+"/jwks")
			if keys, _ := jwks["keys"].([]any); status != http.StatusOK || len(keys) != 1 {
				t.Errorf("GET %s/jwks: status %d, body %v", base, status, jwks)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAuthorizationCodeFlow(t *testing.T) {
	p, srv := start(t, "", WithUser("alice", "alice@example.com", []string{"admins", "developers"}))
	redirect := "http://127.0.0.1:33418/callback"
	verifier, challenge := pkce()
	q := authorize(t, srv, authorizeParams("mcp-client", redirect, challenge))
	if q.Get("state") != "st-123" || q.Get("iss") != p.Issuer() || q.Get("code") == "" {
		t.Fatalf("authorization response %v: want code, state st-123 and iss", q)
	}
	code := q.Get("code")
	redeem := url.Values{
		"grant_type": {"authorization_code"}, "client_id": {"mcp-client"}, "code": {code},
		"redirect_uri": {redirect}, "code_verifier": {verifier}, "resource": {resourceURL},
	}

	status, h, body := postToken(t, srv, "", redeem)
	if status != http.StatusOK {
		t.Fatalf("redeem code: status %d, body %v", status, body)
	}
	if h.Get("Cache-Control") != "no-store" || h.Get("Content-Type") != "application/json" {
		t.Errorf("token response headers: %v", h)
	}
	if body["token_type"] != "Bearer" || body["expires_in"] != float64(3600) || body["scope"] != "openid tools:read tools:call" || body["refresh_token"] == nil {
		t.Errorf("token response %v", body)
	}
	claims, hdr := verify(t, srv, body["access_token"].(string))
	if hdr.Type() != "at+jwt" || hdr.KeyID() != p.ActiveKey().KeyID() {
		t.Errorf("access token header typ %q kid %q", hdr.Type(), hdr.KeyID())
	}
	raw := rawClaims(t, body["access_token"].(string))
	for k, want := range map[string]any{
		"iss": p.Issuer(), "sub": "alice", "aud": resourceURL, "client_id": "mcp-client",
		"scope": "openid tools:read tools:call", "email": "alice@example.com",
	} {
		if raw[k] != want {
			t.Errorf("access token %s = %v, want %v", k, raw[k], want)
		}
	}
	if !slices.Equal(claims["groups"].([]any), []any{"admins", "developers"}) {
		t.Errorf("groups = %v", claims["groups"])
	}
	for _, k := range []string{"iat", "nbf", "exp", "jti"} {
		if raw[k] == nil {
			t.Errorf("access token lacks %s", k)
		}
	}

	idClaims, idHdr := verify(t, srv, body["id_token"].(string))
	if idHdr.Type() != "JWT" || idClaims["nonce"] != "n-456" || rawClaims(t, body["id_token"].(string))["aud"] != "mcp-client" {
		t.Errorf("id token header typ %q, claims %v", idHdr.Type(), idClaims)
	}

	if status, _, body := postToken(t, srv, "", redeem); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("reused code: status %d body %v, want 400 invalid_grant", status, body)
	}
}

func TestCodeRedemptionRefused(t *testing.T) {
	_, srv := start(t, "", WithClient(Client{ID: "web", Secret: "s3cret", RedirectURIs: []string{"https://app.example/cb"}}))
	const redirect = "http://localhost:5555/cb"
	for _, tc := range []struct {
		name   string
		basic  string
		change url.Values
		status int
		error  string
	}{
		{"wrong verifier", "", url.Values{"code_verifier": {strings.Repeat("a", 43)}}, 400, "invalid_grant"},
		{"missing verifier", "", url.Values{"code_verifier": {""}}, 400, "invalid_grant"},
		{"other redirect_uri", "", url.Values{"redirect_uri": {"http://localhost:5556/cb"}}, 400, "invalid_grant"},
		{"other client", "demo-service:demo-secret", url.Values{"client_id": {""}}, 400, "invalid_grant"},
		{"unknown code", "", url.Values{"code": {"nope"}}, 400, "invalid_grant"},
		{"resource not granted", "", url.Values{"resource": {"https://other.example/mcp"}}, 400, "invalid_target"},
		{"public client sends secret", "", url.Values{"client_secret": {"x"}}, 401, "invalid_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			verifier, challenge := pkce()
			code := authorize(t, srv, authorizeParams("mcp-client", redirect, challenge)).Get("code")
			form := url.Values{
				"grant_type": {"authorization_code"}, "client_id": {"mcp-client"}, "code": {code},
				"redirect_uri": {redirect}, "code_verifier": {verifier},
			}
			for k, v := range tc.change {
				form[k] = v
			}
			status, _, body := postToken(t, srv, tc.basic, form)
			if status != tc.status || body["error"] != tc.error {
				t.Fatalf("status %d body %v, want %d %s", status, body, tc.status, tc.error)
			}
		})
	}
}

func TestCodeExpires(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	p, err := New("http://" + srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var skew atomic.Int64
	p.now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	srv.Config.Handler = p.Handler()
	srv.Start()
	defer srv.Close()

	verifier, challenge := pkce()
	const redirect = "http://127.0.0.1:1/cb"
	code := authorize(t, srv, authorizeParams("mcp-client", redirect, challenge)).Get("code")
	skew.Store(int64(61 * time.Second))
	status, _, body := postToken(t, srv, "", url.Values{
		"grant_type": {"authorization_code"}, "client_id": {"mcp-client"}, "code": {code},
		"redirect_uri": {redirect}, "code_verifier": {verifier},
	})
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("expired code: status %d body %v", status, body)
	}
}

func TestAuthorizeErrors(t *testing.T) {
	_, srv := start(t, "", WithClient(Client{ID: "web", Secret: "s3cret", RedirectURIs: []string{"https://app.example/cb"}}))
	_, challenge := pkce()
	for _, tc := range []struct {
		name     string
		clientID string
		redirect string
		change   url.Values
		status   int    // 400 when the IdP must not redirect
		error    string // error in the redirect
	}{
		{"ok loopback", "mcp-client", "http://localhost:8765/cb", nil, 302, ""},
		{"ok registered", "web", "https://app.example/cb", nil, 302, ""},
		{"missing challenge", "mcp-client", "http://127.0.0.1:8765/cb", url.Values{"code_challenge": {""}}, 302, "invalid_request"},
		{"plain method", "mcp-client", "http://127.0.0.1:8765/cb", url.Values{"code_challenge_method": {"plain"}}, 302, "invalid_request"},
		{"no method", "mcp-client", "http://127.0.0.1:8765/cb", url.Values{"code_challenge_method": {""}}, 302, "invalid_request"},
		{"token response type", "mcp-client", "http://127.0.0.1:8765/cb", url.Values{"response_type": {"token"}}, 302, "unsupported_response_type"},
		{"unknown scope", "mcp-client", "http://127.0.0.1:8765/cb", url.Values{"scope": {"openid root"}}, 302, "invalid_scope"},
		{"relative resource", "mcp-client", "http://127.0.0.1:8765/cb", url.Values{"resource": {"/mcp"}}, 302, "invalid_target"},
		{"unknown client", "nobody", "http://127.0.0.1:8765/cb", nil, 400, ""},
		{"missing redirect", "mcp-client", "", nil, 400, ""},
		{"unregistered redirect", "mcp-client", "https://evil.example/cb", nil, 400, ""},
		{"loopback for confidential client", "web", "http://127.0.0.1:8765/cb", nil, 400, ""},
		{"redirect with fragment", "web", "https://app.example/cb#x", nil, 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			params := authorizeParams(tc.clientID, tc.redirect, challenge)
			for k, v := range tc.change {
				params[k] = v
			}
			resp, err := noRedirect(srv).Get(srv.URL + "/authorize?" + params.Encode())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status != http.StatusFound {
				return
			}
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err != nil {
				t.Fatal(err)
			}
			if got := loc.Query().Get("error"); got != tc.error {
				t.Errorf("redirect error %q, want %q (%s)", got, tc.error, loc)
			}
			if loc.Query().Get("state") != "st-123" {
				t.Errorf("redirect lost state: %s", loc)
			}
			if (tc.error == "") == (loc.Query().Get("code") == "") {
				t.Errorf("redirect %s: code present iff no error", loc)
			}
		})
	}
}

func TestRefreshRotation(t *testing.T) {
	_, srv := start(t, "")
	const redirect = "http://127.0.0.1:9/cb"
	verifier, challenge := pkce()
	params := authorizeParams("mcp-client", redirect, challenge)
	params.Set("scope", "tools:read tools:call")
	params["resource"] = []string{resourceURL, "https://other.example/mcp"}
	code := authorize(t, srv, params).Get("code")
	_, _, body := postToken(t, srv, "", url.Values{
		"grant_type": {"authorization_code"}, "client_id": {"mcp-client"}, "code": {code},
		"redirect_uri": {redirect}, "code_verifier": {verifier},
	})
	if aud := rawClaims(t, body["access_token"].(string))["aud"]; mustJSON(t, aud) != mustJSON(t, params["resource"]) {
		t.Fatalf("aud = %v, want both resources", aud)
	}
	first := body["refresh_token"].(string)

	refresh := func(token string, extra url.Values) (int, map[string]any) {
		form := url.Values{"grant_type": {"refresh_token"}, "client_id": {"mcp-client"}, "refresh_token": {token}}
		for k, v := range extra {
			form[k] = v
		}
		status, _, body := postToken(t, srv, "", form)
		return status, body
	}

	// Narrower scope and one resource for this access token only.
	status, body := refresh(first, url.Values{"scope": {"tools:read"}, "resource": {resourceURL}})
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, body)
	}
	second := body["refresh_token"].(string)
	claims, _ := verify(t, srv, body["access_token"].(string))
	if second == first || claims["scope"] != "tools:read" || mustJSON(t, claims["aud"]) != mustJSON(t, []string{resourceURL}) {
		t.Errorf("narrowed refresh: new token %v, claims %v", second != first, claims)
	}

	if status, body := refresh(first, nil); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("reused refresh token: %d %v, want invalid_grant", status, body)
	}
	if status, body := refresh(second, url.Values{"scope": {"tools:admin"}}); status != http.StatusBadRequest || body["error"] != "invalid_scope" {
		t.Errorf("wider scope: %d %v, want invalid_scope", status, body)
	}
	// A refused request does not consume the token, and the rotated token keeps the original grant.
	status, body = refresh(second, nil)
	if status != http.StatusOK {
		t.Fatalf("refresh after a refused attempt: %d %v", status, body)
	}
	raw := rawClaims(t, body["access_token"].(string))
	if raw["scope"] != "tools:read tools:call" || mustJSON(t, raw["aud"]) != mustJSON(t, params["resource"]) {
		t.Errorf("rotated token lost the original grant: %v", raw)
	}
}

func TestRefreshKeepsOriginalGrant(t *testing.T) {
	_, srv := start(t, "")
	const redirect = "http://127.0.0.1:9/cb"
	verifier, challenge := pkce()
	code := authorize(t, srv, authorizeParams("mcp-client", redirect, challenge)).Get("code")
	_, _, body := postToken(t, srv, "", url.Values{
		"grant_type": {"authorization_code"}, "client_id": {"mcp-client"}, "code": {code},
		"redirect_uri": {redirect}, "code_verifier": {verifier},
	})
	token := body["refresh_token"].(string)
	for i, scope := range []string{"tools:read", "", "tools:call"} {
		form := url.Values{"grant_type": {"refresh_token"}, "client_id": {"mcp-client"}, "refresh_token": {token}}
		if scope != "" {
			form.Set("scope", scope)
		}
		status, _, body := postToken(t, srv, "", form)
		if status != http.StatusOK {
			t.Fatalf("refresh %d: %d %v", i, status, body)
		}
		want := scope
		if scope == "" {
			want = "openid tools:read tools:call"
		}
		if got := rawClaims(t, body["access_token"].(string))["scope"]; got != want {
			t.Errorf("refresh %d: scope %v, want %s", i, got, want)
		}
		if (body["id_token"] != nil) != strings.Contains(want, "openid") {
			t.Errorf("refresh %d: id_token present = %v", i, body["id_token"] != nil)
		}
		token = body["refresh_token"].(string)
	}
	status, _, body := postToken(t, srv, "demo-service:demo-secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}})
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("refresh by another client: %d %v", status, body)
	}
}

func TestClientCredentials(t *testing.T) {
	_, srv := start(t, "", WithClient(Client{ID: "svc:a/b", Secret: "p@ss word"}))
	for _, tc := range []struct {
		name   string
		basic  string
		form   url.Values
		status int
		error  string
		aud    any
	}{
		{"basic", "demo-service:demo-secret", url.Values{"scope": {"tools:read"}, "resource": {resourceURL}}, 200, "", resourceURL},
		{"post", "", url.Values{"client_id": {"demo-service"}, "client_secret": {"demo-secret"}, "audience": {"api://mcp"}}, 200, "", "api://mcp"},
		{"basic with encoded id and secret", "svc:a/b:p@ss word", nil, 200, "", nil},
		{"two audiences", "demo-service:demo-secret", url.Values{"resource": {resourceURL}, "audience": {"api://mcp"}}, 200, "", []any{resourceURL, "api://mcp"}},
		{"wrong secret", "demo-service:nope", nil, 401, "invalid_client", nil},
		{"no secret", "", url.Values{"client_id": {"demo-service"}}, 401, "invalid_client", nil},
		{"unknown client", "ghost:x", nil, 401, "invalid_client", nil},
		{"public client", "", url.Values{"client_id": {"mcp-client"}}, 400, "unauthorized_client", nil},
		{"unknown scope", "demo-service:demo-secret", url.Values{"scope": {"everything"}}, 400, "invalid_scope", nil},
		{"bad resource", "demo-service:demo-secret", url.Values{"resource": {"mcp"}}, 400, "invalid_target", nil},
		{"two auth methods", "demo-service:demo-secret", url.Values{"client_secret": {"demo-secret"}}, 400, "invalid_request", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{"grant_type": {"client_credentials"}}
			for k, v := range tc.form {
				form[k] = v
			}
			status, h, body := postToken(t, srv, tc.basic, form)
			if status != tc.status || body["error"] != tc.error && tc.error != "" {
				t.Fatalf("status %d body %v, want %d %s", status, body, tc.status, tc.error)
			}
			if h.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q", h.Get("Cache-Control"))
			}
			if status == http.StatusUnauthorized && tc.basic != "" && h.Get("WWW-Authenticate") == "" {
				t.Errorf("401 to Basic auth without WWW-Authenticate")
			}
			if status != http.StatusOK {
				return
			}
			if body["refresh_token"] != nil || body["id_token"] != nil {
				t.Errorf("client_credentials returned refresh or ID token: %v", body)
			}
			claims, _ := verify(t, srv, body["access_token"].(string))
			raw := rawClaims(t, body["access_token"].(string))
			if mustJSON(t, raw["aud"]) != mustJSON(t, tc.aud) || raw["sub"] != claims["client_id"] || raw["email"] != nil {
				t.Errorf("claims %v, want aud %v and sub = client_id", raw, tc.aud)
			}
		})
	}
}

func TestClaimShapes(t *testing.T) {
	for _, tc := range []struct {
		shape   Shape
		present map[string]any
		absent  []string
	}{
		{ShapeStandard, map[string]any{"client_id": "demo-service", "scope": "tools:read tools:call", "aud": resourceURL},
			[]string{"cid", "scp", "token_use"}},
		{ShapeOkta, map[string]any{"cid": "demo-service", "scp": []any{"tools:read", "tools:call"}, "aud": resourceURL},
			[]string{"client_id", "scope", "token_use"}},
		{ShapeCognito, map[string]any{"client_id": "demo-service", "scope": "tools:read tools:call", "token_use": "access"},
			[]string{"aud", "cid", "scp"}},
	} {
		t.Run(tc.shape.String(), func(t *testing.T) {
			_, srv := start(t, "", WithClaimShape(tc.shape), WithAccessTokenTTL(5*time.Minute))
			status, _, body := postToken(t, srv, "demo-service:demo-secret", url.Values{
				"grant_type": {"client_credentials"}, "scope": {"tools:read tools:call"}, "resource": {resourceURL},
			})
			if status != http.StatusOK || body["expires_in"] != float64(300) {
				t.Fatalf("token: %d %v", status, body)
			}
			verify(t, srv, body["access_token"].(string))
			raw := rawClaims(t, body["access_token"].(string))
			for k, v := range tc.present {
				if mustJSON(t, raw[k]) != mustJSON(t, v) {
					t.Errorf("%s = %v, want %v", k, raw[k], v)
				}
			}
			for _, k := range tc.absent {
				if _, ok := raw[k]; ok {
					t.Errorf("%s present: %v", k, raw[k])
				}
			}
			if exp, iat := raw["exp"].(float64), raw["iat"].(float64); exp-iat != 300 {
				t.Errorf("lifetime %v, want 300s", exp-iat)
			}
		})
	}
	for name, want := range map[string]Shape{"standard": ShapeStandard, "Okta": ShapeOkta, "cognito": ShapeCognito} {
		if got, err := ParseShape(name); err != nil || got != want {
			t.Errorf("ParseShape(%q) = %v, %v", name, got, err)
		}
	}
	if _, err := ParseShape("auth0"); err == nil {
		t.Error("ParseShape(auth0) succeeded")
	}
}

func TestRotateKey(t *testing.T) {
	p, srv := start(t, "")
	first := p.ActiveKey().KeyID()
	oldTok, err := p.Mint(map[string]any{"sub": "a"})
	if err != nil {
		t.Fatal(err)
	}
	kids := []string{first}
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		kid, err := p.RotateKey(alg)
		if err != nil {
			t.Fatalf("RotateKey(%s): %v", alg, err)
		}
		kids = append(kids, kid)
		if p.ActiveKey().KeyID() != kid || p.ActiveKey().Algorithm().String() != alg {
			t.Fatalf("active key %s/%s, want %s/%s", p.ActiveKey().KeyID(), p.ActiveKey().Algorithm(), kid, alg)
		}
		tok, err := p.Mint(map[string]any{"sub": "a"})
		if err != nil {
			t.Fatalf("Mint with %s: %v", alg, err)
		}
		if _, hdr := verify(t, srv, tok); hdr.KeyID() != kid || hdr.Algorithm().String() != alg {
			t.Errorf("token header kid %s alg %s, want %s %s", hdr.KeyID(), hdr.Algorithm(), kid, alg)
		}
	}
	verify(t, srv, oldTok) // the old key is still published

	set := fetchJWKS(t, srv)
	var got []string
	for i := range set.Len() {
		k, _ := set.Key(i)
		got = append(got, k.KeyID())
		if private, err := jwk.IsPrivateKey(k); err != nil || private {
			t.Errorf("JWKS key %s is private (%v)", k.KeyID(), err)
		}
		if k.KeyUsage() != "sig" || k.Algorithm().String() == "" {
			t.Errorf("JWKS key %s: use %q alg %q", k.KeyID(), k.KeyUsage(), k.Algorithm())
		}
	}
	if !slices.Equal(got, kids) {
		t.Errorf("JWKS kids %v, want %v", got, kids)
	}
	_, _, doc := getJSON(t, srv.Client(), srv.URL+"/.well-known/openid-configuration")
	if mustJSON(t, doc["id_token_signing_alg_values_supported"]) != `["RS256","ES256","EdDSA"]` {
		t.Errorf("algs %v", doc["id_token_signing_alg_values_supported"])
	}
	if _, err := p.RotateKey("HS256"); err == nil {
		t.Error("RotateKey(HS256) succeeded")
	}
}

func TestSetDown(t *testing.T) {
	p, srv := start(t, "")
	paths := []struct{ method, path string }{
		{"GET", "/.well-known/openid-configuration"}, {"GET", "/.well-known/oauth-authorization-server"},
		{"GET", "/jwks"}, {"GET", "/authorize"}, {"POST", "/token"}, {"POST", "/register"},
	}
	call := func(method, path string) int {
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := noRedirect(srv).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	fetchJWKS(t, srv)
	p.SetDown(true)
	for _, pp := range paths {
		if got := call(pp.method, pp.path); got != http.StatusServiceUnavailable {
			t.Errorf("down: %s %s = %d, want 503", pp.method, pp.path, got)
		}
	}
	if n := p.JWKSFetches(); n != 1 {
		t.Errorf("JWKSFetches = %d after one served and one refused fetch, want 1", n)
	}
	p.SetDown(false)
	if got := call("GET", "/jwks"); got != http.StatusOK || p.JWKSFetches() != 2 {
		t.Errorf("up again: /jwks = %d, fetches %d", got, p.JWKSFetches())
	}
}

func TestMint(t *testing.T) {
	p, srv := start(t, "")
	activeKID := p.ActiveKey().KeyID()
	pub, err := p.ActiveKey().PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	var rawPub any
	if err := pub.Raw(&rawPub); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(rawPub)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	foreign, err := newSigningKey(jwa.ES256)
	if err != nil {
		t.Fatal(err)
	}
	foreignPub, err := foreign.jwk.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Minute).Truncate(time.Second)

	for _, tc := range []struct {
		name     string
		claims   map[string]any
		opts     []MintOption
		valid    bool
		header   map[string]any // expected header, exactly
		checkRaw func(map[string]any) bool
	}{
		{"defaults", map[string]any{"sub": "x"}, nil, true,
			map[string]any{"alg": "RS256", "kid": activeKID, "typ": "at+jwt"},
			func(c map[string]any) bool {
				return c["iss"] == p.Issuer() && c["iat"] != nil && c["exp"] != nil && c["jti"] != nil && c["nbf"] == nil
			}},
		{"claims as given, time.Time encoded", map[string]any{"iss": "https://evil", "aud": []string{"a"}, "exp": exp}, nil, true,
			map[string]any{"alg": "RS256", "kid": activeKID, "typ": "at+jwt"},
			func(c map[string]any) bool { return c["iss"] == "https://evil" && c["exp"] == float64(exp.Unix()) }},
		{"nil removes", map[string]any{"exp": nil, "jti": nil, "iat": nil, "iss": nil}, nil, true,
			map[string]any{"alg": "RS256", "kid": activeKID, "typ": "at+jwt"},
			func(c map[string]any) bool { return len(c) == 0 }},
		{"expired", map[string]any{"exp": time.Now().Add(-time.Hour)}, nil, false,
			map[string]any{"alg": "RS256", "kid": activeKID, "typ": "at+jwt"}, nil},
		{"last WithType wins", map[string]any{}, []MintOption{WithType(""), WithType("JWT")}, true,
			map[string]any{"alg": "RS256", "kid": activeKID, "typ": "JWT"}, nil},
		{"empty typ", map[string]any{}, []MintOption{WithType("")}, true,
			map[string]any{"alg": "RS256", "kid": activeKID}, nil},
		{"unknown kid", map[string]any{}, []MintOption{WithKID("unknown")}, false,
			map[string]any{"alg": "RS256", "kid": "unknown", "typ": "at+jwt"}, nil},
		{"without kid", map[string]any{}, []MintOption{WithoutKID()}, false,
			map[string]any{"alg": "RS256", "typ": "at+jwt"}, nil},
		{"extra headers", map[string]any{}, []MintOption{WithHeader("jku", "https://evil/jwks"), WithHeader("typ", nil)}, true,
			map[string]any{"alg": "RS256", "kid": activeKID, "jku": "https://evil/jwks"}, nil},
		{"HS256 with the public key", map[string]any{}, []MintOption{WithKey(jwa.HS256, pubPEM)}, false,
			map[string]any{"alg": "HS256", "kid": activeKID, "typ": "at+jwt"}, nil},
		{"foreign key with embedded jwk", map[string]any{}, []MintOption{WithKey(jwa.ES256, foreign.raw), WithHeader("jwk", foreignPub)}, false,
			map[string]any{"alg": "ES256", "kid": activeKID, "typ": "at+jwt", "jwk": mustMap(t, foreignPub)}, nil},
		{"foreign jwk.Key brings its kid", map[string]any{}, []MintOption{WithKey(jwa.ES256, foreign.jwk)}, false,
			map[string]any{"alg": "ES256", "kid": foreign.jwk.KeyID(), "typ": "at+jwt"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := p.Mint(tc.claims, tc.opts...)
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			if got := rawHeader(t, tok); mustJSON(t, got) != mustJSON(t, tc.header) {
				t.Errorf("header %s, want %s", mustJSON(t, got), mustJSON(t, tc.header))
			}
			if tc.checkRaw != nil && !tc.checkRaw(rawClaims(t, tok)) {
				t.Errorf("claims %v", rawClaims(t, tok))
			}
			_, err = jwt.Parse([]byte(tok), jwt.WithKeySet(fetchJWKS(t, srv)), jwt.WithValidate(true))
			if (err == nil) != tc.valid {
				t.Errorf("verification error %v, want valid=%v", err, tc.valid)
			}
		})
	}
}

func mustMap(t *testing.T, v any) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(mustJSON(t, v)), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestUnsignedToken(t *testing.T) {
	_, srv := start(t, "")
	for _, tc := range []struct {
		name    string
		header  map[string]any
		wantAlg string
	}{
		{"default", nil, "none"},
		{"with typ", map[string]any{"typ": "at+jwt", "kid": "k"}, "none"},
		{"alg variant", map[string]any{"alg": "None"}, "None"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := UnsignedToken(tc.header, map[string]any{"sub": "x", "exp": time.Now().Add(time.Hour), "gone": nil})
			if !strings.HasSuffix(tok, ".") || strings.Count(tok, ".") != 2 {
				t.Fatalf("token %q is not header.payload.", tok)
			}
			if h := rawHeader(t, tok); h["alg"] != tc.wantAlg || len(h) != len(tc.header)+btoi(tc.header["alg"] == nil) {
				t.Errorf("header %v", h)
			}
			if c := rawClaims(t, tok); c["sub"] != "x" || len(c) != 2 {
				t.Errorf("claims %v", c)
			}
			if _, err := jwt.Parse([]byte(tok), jwt.WithKeySet(fetchJWKS(t, srv)), jwt.WithValidate(true)); err == nil {
				t.Error("alg none token verified")
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestRegister(t *testing.T) {
	_, srv := start(t, "")
	register := func(body string) (int, map[string]any) {
		resp, err := srv.Client().Post(srv.URL+"/register", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		status, _, m := decode(t, resp)
		return status, m
	}
	for _, tc := range []struct {
		name   string
		body   string
		status int
		error  string
		secret bool
	}{
		{"public", `{"redirect_uris":["http://127.0.0.1:3000/cb"],"token_endpoint_auth_method":"none","client_name":"cli"}`, 201, "", false},
		{"confidential by default", `{"redirect_uris":["https://app.example/cb"]}`, 201, "", true},
		{"service", `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_post"}`, 201, "", true},
		{"http off loopback", `{"redirect_uris":["http://app.example/cb"],"token_endpoint_auth_method":"none"}`, 400, "invalid_redirect_uri", false},
		{"code without redirect", `{"token_endpoint_auth_method":"none"}`, 400, "invalid_redirect_uri", false},
		{"public client_credentials", `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"none"}`, 400, "invalid_client_metadata", false},
		{"implicit", `{"redirect_uris":["https://app.example/cb"],"response_types":["token"]}`, 400, "invalid_client_metadata", false},
		{"bad method", `{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"private_key_jwt"}`, 400, "invalid_client_metadata", false},
		{"not JSON", `redirect_uris=x`, 400, "invalid_client_metadata", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, m := register(tc.body)
			if status != tc.status || tc.error != "" && m["error"] != tc.error {
				t.Fatalf("status %d body %v, want %d %s", status, m, tc.status, tc.error)
			}
			if status != http.StatusCreated {
				return
			}
			if m["client_id"] == "" || (m["client_secret"] != nil) != tc.secret || m["token_endpoint_auth_method"] == nil {
				t.Errorf("registration %v", m)
			}
		})
	}

	// A registered public client runs the flow; a registered service gets client_credentials tokens.
	_, m := register(`{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"none","grant_types":["authorization_code"]}`)
	if mustJSON(t, m["grant_types"]) != `["authorization_code","refresh_token"]` {
		t.Errorf("grant_types %v", m["grant_types"])
	}
	id := m["client_id"].(string)
	verifier, challenge := pkce()
	code := authorize(t, srv, authorizeParams(id, "https://app.example/cb", challenge)).Get("code")
	if status, _, body := postToken(t, srv, "", url.Values{
		"grant_type": {"authorization_code"}, "client_id": {id}, "code": {code},
		"redirect_uri": {"https://app.example/cb"}, "code_verifier": {verifier},
	}); status != http.StatusOK {
		t.Errorf("registered client redeem: %d %v", status, body)
	}

	_, m = register(`{"grant_types":["client_credentials"]}`)
	status, _, body := postToken(t, srv, m["client_id"].(string)+":"+m["client_secret"].(string), url.Values{"grant_type": {"client_credentials"}})
	if status != http.StatusOK {
		t.Errorf("registered service: %d %v", status, body)
	}
	status, _, body = postToken(t, srv, m["client_id"].(string)+":"+m["client_secret"].(string), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}})
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("service refresh: %d %v", status, body)
	}
}

func TestTokenErrors(t *testing.T) {
	_, srv := start(t, "")
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		error  string
	}{
		{"no grant type", url.Values{"client_id": {"mcp-client"}}, 400, "invalid_request"},
		{"password grant", url.Values{"client_id": {"mcp-client"}, "grant_type": {"password"}}, 400, "unsupported_grant_type"},
		{"no client", url.Values{"grant_type": {"client_credentials"}}, 401, "invalid_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := postToken(t, srv, "", tc.form)
			if status != tc.status || body["error"] != tc.error || h.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d body %v, want %d %s", status, body, tc.status, tc.error)
			}
		})
	}
	resp, err := srv.Client().Get(srv.URL + "/token")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /token = %d, want 405", resp.StatusCode)
	}
}

func TestNewRejectsBadIssuer(t *testing.T) {
	for _, issuer := range []string{"", "127.0.0.1:9000", "ftp://h", "http://h/?q=1", "http://h/#f", "/relative"} {
		if _, err := New(issuer); err == nil {
			t.Errorf("New(%q) succeeded", issuer)
		}
	}
	if _, err := New("http://127.0.0.1:1", WithClient(Client{Secret: "x"})); err == nil {
		t.Error("New with an empty client ID succeeded")
	}
}
