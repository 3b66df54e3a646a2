package exchange

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/config"
)

// fakeAS is an httptest authorization server: discovery, and a token endpoint answered by token.
type fakeAS struct {
	srv   *httptest.Server
	token func(w http.ResponseWriter, form url.Values, user, pass string)

	mu   sync.Mutex
	reqs []url.Values
}

func newFakeAS(t *testing.T) *fakeAS {
	t.Helper()
	as := &fakeAS{}
	as.token = func(w http.ResponseWriter, form url.Values, _, _ string) {
		answer(w, http.StatusOK, map[string]any{"access_token": "exchanged-" + form.Get("scope"), "token_type": "Bearer",
			"issued_token_type": config.TokenTypeAccessToken, "expires_in": 300})
	}
	as.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			answer(w, http.StatusOK, map[string]any{"issuer": as.srv.URL, "token_endpoint": as.srv.URL + "/token"})
		case "/token":
			if err := r.ParseForm(); err != nil {
				t.Error(err)
			}
			user, pass, _ := r.BasicAuth()
			as.mu.Lock()
			as.reqs = append(as.reqs, r.PostForm)
			as.mu.Unlock()
			as.token(w, r.PostForm, user, pass)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(as.srv.Close)
	return as
}

func (as *fakeAS) requests() []url.Values {
	as.mu.Lock()
	defer as.mu.Unlock()
	return append([]url.Values(nil), as.reqs...)
}

func answer(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

// writeFile writes content to a new file in the test's directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const resourceURL = "https://mcp.example.com/mcp"

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// setup builds an Exchanger for resourceURL with te (client secret "s3cret" unless te says otherwise),
// trusting as as the issuer.
func setup(t *testing.T, as *fakeAS, te *config.TokenExchange, clk *clock) *Exchanger {
	t.Helper()
	if te.ClientID == "" {
		te.ClientID = "mcp-authz"
	}
	if te.ClientSecretFile == "" && te.PrivateKeyJWT == nil {
		te.ClientSecretFile = writeFile(t, "secret", "s3cret\n")
	}
	if te.RequestedTokenType == "" {
		te.RequestedTokenType = config.TokenTypeAccessToken
	}
	if te.Timeout == 0 {
		te.Timeout = config.Duration(2 * time.Second)
	}
	if te.ActorToken != nil && te.ActorToken.TokenType == "" {
		te.ActorToken.TokenType = config.TokenTypeAccessToken
	}
	cfg := config.Config{
		Resources:          []config.Resource{{URL: resourceURL, TokenExchange: te}, {URL: "https://plain.example.com/mcp"}},
		Issuers:            []config.Issuer{{Issuer: as.srv.URL, DiscoveryURL: as.srv.URL + "/.well-known/openid-configuration"}},
		TokenExchangeCache: config.TokenExchangeCache{MaxEntries: 16},
	}
	o := Options{}
	if clk != nil {
		o.Now = clk.now
	}
	e, err := New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func grant(as *fakeAS, tok string) authz.Grant {
	return authz.Grant{Resource: resourceURL, Token: tok, Identity: &authz.Identity{Subject: "alice", Issuer: as.srv.URL}}
}

// subjectToken is a JWT-shaped client token.
const subjectToken = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"

func TestExchange(t *testing.T) {
	as := newFakeAS(t)
	e := setup(t, as, &config.TokenExchange{Audience: "https://api.example.com", Resource: "https://api.example.com/v1", Scope: "calendar.read"}, nil)
	var user, pass string
	as.token = func(w http.ResponseWriter, form url.Values, u, p string) {
		user, pass = u, p
		answer(w, http.StatusOK, map[string]any{"access_token": "exchanged", "token_type": "bearer", "expires_in": "300"})
	}
	for range 3 {
		hs, err := e.Credential(context.Background(), grant(as, subjectToken))
		if err != nil {
			t.Fatal(err)
		}
		if len(hs) != 1 || hs[0].Name != "authorization" || hs[0].Value != "Bearer exchanged" {
			t.Fatalf("headers = %v", hs)
		}
	}
	reqs := as.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d exchanges for one token, want 1 (cache)", len(reqs))
	}
	want := map[string]string{
		"grant_type":           "urn:ietf:params:oauth:grant-type:token-exchange",
		"subject_token":        subjectToken,
		"subject_token_type":   config.TokenTypeAccessToken,
		"requested_token_type": config.TokenTypeAccessToken,
		"audience":             "https://api.example.com",
		"resource":             "https://api.example.com/v1",
		"scope":                "calendar.read",
		"actor_token":          "",
	}
	for k, v := range want {
		if got := reqs[0].Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if user != "mcp-authz" || pass != "s3cret" {
		t.Errorf("basic auth = %q:%q", user, pass)
	}
	// Another token is another exchange; a resource without token_exchange gets nothing.
	if _, err := e.Credential(context.Background(), grant(as, subjectToken+"x")); err != nil {
		t.Fatal(err)
	}
	if n := len(as.requests()); n != 2 {
		t.Fatalf("%d exchanges for two tokens", n)
	}
	g := grant(as, subjectToken)
	g.Resource = "https://plain.example.com/mcp"
	if hs, err := e.Credential(context.Background(), g); hs != nil || err != nil {
		t.Fatalf("resource without token_exchange: %v %v", hs, err)
	}
}

// TestExchangeFailures checks every way an exchange fails: each refuses (503 when the IdP is down or
// answers badly, 502 with the OAuth error when it refuses), never with the client's token.
func TestExchangeFailures(t *testing.T) {
	var redirected atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { redirected.Add(1) }))
	defer elsewhere.Close()
	tests := []struct {
		name        string
		token       func(w http.ResponseWriter)
		down        bool
		status      int
		description string
	}{
		{"unreachable", nil, true, 503, "unreachable"},
		{"timeout", func(w http.ResponseWriter) { time.Sleep(time.Second) }, false, 503, "timeout"}, // timeout 300 ms
		{"500", func(w http.ResponseWriter) { answer(w, 500, map[string]any{"error": "server_error"}) }, false, 503, "answered 500 server_error"},
		{"503 not JSON", func(w http.ResponseWriter) { w.WriteHeader(503) }, false, 503, "answered 503"},
		{"invalid_grant", func(w http.ResponseWriter) {
			answer(w, 400, map[string]any{"error": "invalid_grant", "error_description": "subject token expired"})
		}, false, 502, "refused by the authorization server: invalid_grant (subject token expired)"},
		{"invalid_target", func(w http.ResponseWriter) { answer(w, 400, map[string]any{"error": "invalid_target"}) }, false, 502, "invalid_target"},
		{"unauthorized_client", func(w http.ResponseWriter) { answer(w, 400, map[string]any{"error": "unauthorized_client"}) }, false, 502, "unauthorized_client"},
		{"invalid_client 401", func(w http.ResponseWriter) { answer(w, 401, map[string]any{"error": "invalid_client"}) }, false, 502, "invalid_client"},
		{"4xx without OAuth error", func(w http.ResponseWriter) { w.WriteHeader(403) }, false, 502, "answered 403 without an OAuth error"},
		{"error echoing the token", func(w http.ResponseWriter) {
			answer(w, 400, map[string]any{"error": "invalid_grant", "error_description": "bad token " + subjectToken})
		}, false, 502, "invalid_grant"},
		{"200 not JSON", func(w http.ResponseWriter) { w.Write([]byte("<html>")) }, false, 503, "not a JSON token response"},
		{"no access_token", func(w http.ResponseWriter) { answer(w, 200, map[string]any{"token_type": "Bearer"}) }, false, 503, "no access_token"},
		{"not Bearer", func(w http.ResponseWriter) {
			answer(w, 200, map[string]any{"access_token": "x", "token_type": "N_A"})
		}, false, 503, `token_type "N_A" is not Bearer`},
		{"token that cannot be a header", func(w http.ResponseWriter) {
			answer(w, 200, map[string]any{"access_token": "a b\r\nx-evil: 1", "token_type": "Bearer"})
		}, false, 503, "cannot be sent as a bearer token"},
		{"answer too large", func(w http.ResponseWriter) {
			answer(w, 200, map[string]any{"access_token": strings.Repeat("a", maxResponseBytes), "token_type": "Bearer"})
		}, false, 503, "larger than"},
		{"204", func(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }, false, 503, "answered 204"},
		{"307 redirect not followed", func(w http.ResponseWriter) {
			w.Header().Set("Location", elsewhere.URL)
			w.WriteHeader(http.StatusTemporaryRedirect)
		}, false, 503, "answered 307"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			as := newFakeAS(t)
			te := &config.TokenExchange{Audience: "https://api.example.com", Timeout: config.Duration(300 * time.Millisecond)}
			if tc.down {
				te.TokenEndpoint = "http://127.0.0.1:1/token"
			}
			e := setup(t, as, te, nil)
			if tc.token != nil {
				as.token = func(w http.ResponseWriter, _ url.Values, _, _ string) { tc.token(w) }
			}
			hs, err := e.Credential(context.Background(), grant(as, subjectToken))
			if err == nil {
				t.Fatalf("exchange succeeded: %v", hs)
			}
			if hs != nil {
				t.Fatalf("headers with an error: %v", hs)
			}
			if err.Status != tc.status || err.Unavailable != (tc.status == 503) {
				t.Errorf("status %d unavailable %v, want %d", err.Status, err.Unavailable, tc.status)
			}
			if !strings.Contains(err.Description, tc.description) {
				t.Errorf("description %q does not say %q", err.Description, tc.description)
			}
			if strings.Contains(err.Description, "eyJ") || err.Code != "" {
				t.Errorf("error repeats a token or has an RFC 6750 code: %+v", err)
			}
			if e.cache.len() != 0 {
				t.Error("a failure was cached")
			}
		})
	}
	if n := redirected.Load(); n != 0 {
		t.Fatalf("a redirect was followed %d times: the token went elsewhere", n)
	}
}

// TestExchangeExpiry checks that an exchanged token is handed out until shortly before the earlier of
// expires_in and its exp, and never after the client's token expires.
func TestExchangeExpiry(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	jwtWithExp := func(exp time.Time) string {
		p := base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, `{"exp":%d}`, exp.Unix()))
		return "eyJhbGciOiJub25lIn0." + p + ".c2ln"
	}
	tests := []struct {
		name       string
		expiresIn  any
		token      string
		clientExp  time.Time
		fresh      time.Duration // how long a second request still hits
		notCached  bool
		stillFresh time.Duration
	}{
		{"expires_in 300: 30 s skew", 300, "opaque", time.Time{}, 270 * time.Second, false, 269 * time.Second},
		{"expires_in 100: 10 % skew", 100, "opaque", time.Time{}, 90 * time.Second, false, 89 * time.Second},
		{"JWT exp earlier than expires_in", 3600, jwtWithExp(start.Add(200 * time.Second)), time.Time{}, 180 * time.Second, false, 179 * time.Second},
		{"client token expires first", 300, "opaque", start.Add(60 * time.Second), 60 * time.Second, false, 59 * time.Second},
		{"no expiry: not cached", nil, "opaque", time.Time{}, 0, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			as := newFakeAS(t)
			clk := &clock{t: start}
			e := setup(t, as, &config.TokenExchange{Audience: "https://api.example.com"}, clk)
			as.token = func(w http.ResponseWriter, _ url.Values, _, _ string) {
				body := map[string]any{"access_token": tc.token, "token_type": "Bearer"}
				if tc.expiresIn != nil {
					body["expires_in"] = tc.expiresIn
				}
				answer(w, 200, body)
			}
			g := grant(as, subjectToken)
			g.Identity.Expiry = tc.clientExp
			call := func() {
				t.Helper()
				if _, err := e.Credential(context.Background(), g); err != nil {
					t.Fatal(err)
				}
			}
			call()
			if tc.notCached {
				call()
				if n := len(as.requests()); n != 2 {
					t.Fatalf("%d exchanges, want 2 (not cached)", n)
				}
				return
			}
			clk.add(tc.stillFresh)
			call()
			if n := len(as.requests()); n != 1 {
				t.Fatalf("%d exchanges at +%v, want 1", n, tc.stillFresh)
			}
			clk.add(tc.fresh - tc.stillFresh)
			call()
			if n := len(as.requests()); n != 2 {
				t.Fatalf("%d exchanges at +%v, want 2 (entry no longer fresh)", n, tc.fresh)
			}
		})
	}
}

// TestExchangeKeyedByParameters checks that two resources asking for another scope of the same API do not
// share an exchanged token, and that two asking for the same token do.
func TestExchangeKeyedByParameters(t *testing.T) {
	as := newFakeAS(t)
	secret := writeFile(t, "secret", "s3cret")
	cfg := config.Config{
		Resources: []config.Resource{
			{URL: resourceURL, TokenExchange: &config.TokenExchange{Audience: "https://api.example.com", Scope: "read", ClientID: "c", ClientSecretFile: secret,
				RequestedTokenType: config.TokenTypeAccessToken, Timeout: config.Duration(time.Second)}},
			{URL: "https://other.example.com/mcp", TokenExchange: &config.TokenExchange{Audience: "https://api.example.com", Scope: "write", ClientID: "c", ClientSecretFile: secret,
				RequestedTokenType: config.TokenTypeAccessToken, Timeout: config.Duration(time.Second)}},
			{URL: "https://same.example.com/mcp", TokenExchange: &config.TokenExchange{Audience: "https://api.example.com", Scope: "read", ClientID: "c", ClientSecretFile: secret,
				RequestedTokenType: config.TokenTypeAccessToken, Timeout: config.Duration(time.Second)}},
		},
		Issuers:            []config.Issuer{{Issuer: as.srv.URL, DiscoveryURL: as.srv.URL + "/.well-known/openid-configuration"}},
		TokenExchangeCache: config.TokenExchangeCache{MaxEntries: 16},
	}
	e, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ resource, want string }{
		{resourceURL, "Bearer exchanged-read"}, {"https://other.example.com/mcp", "Bearer exchanged-write"}, {resourceURL, "Bearer exchanged-read"},
		{"https://same.example.com/mcp", "Bearer exchanged-read"},
	} {
		g := grant(as, subjectToken)
		g.Resource = tc.resource
		hs, err := e.Credential(context.Background(), g)
		if err != nil || hs[0].Value != tc.want {
			t.Fatalf("%s: %v %v, want %s", tc.resource, hs, err, tc.want)
		}
	}
	if n := len(as.requests()); n != 2 {
		t.Fatalf("%d exchanges, want 2 (one per scope)", n)
	}
}

// TestExchangeSingleFlight checks that a burst of one user's requests makes one exchange.
func TestExchangeSingleFlight(t *testing.T) {
	as := newFakeAS(t)
	e := setup(t, as, &config.TokenExchange{Audience: "https://api.example.com"}, nil)
	release := make(chan struct{})
	inner := as.token
	as.token = func(w http.ResponseWriter, f url.Values, u, p string) { <-release; inner(w, f, u, p) }
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := e.Credential(context.Background(), grant(as, subjectToken)); err != nil {
				t.Error(err)
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := len(as.requests()); n != 1 {
		t.Fatalf("%d exchanges for a burst of one token, want 1", n)
	}
}

// TestExchangeDiscovery checks that the token endpoint comes from the issuer's discovery (the configured
// issuer, or the client token's), and that a discovery failure is a 503.
func TestExchangeDiscovery(t *testing.T) {
	as := newFakeAS(t)
	e := setup(t, as, &config.TokenExchange{Audience: "https://api.example.com"}, nil)
	g := grant(as, subjectToken)
	g.Identity.Issuer = "https://unknown.example.com"
	if _, err := e.Credential(context.Background(), g); err == nil || err.Status != 503 || !strings.Contains(err.Description, "not configured") {
		t.Fatalf("unknown issuer: %v", err)
	}
	if _, err := e.Credential(context.Background(), grant(as, subjectToken)); err != nil {
		t.Fatal(err)
	}
	if n := len(as.requests()); n != 1 {
		t.Fatalf("%d exchanges", n)
	}
}

func TestSecretFileReloaded(t *testing.T) {
	as := newFakeAS(t)
	secret := writeFile(t, "secret", "first")
	e := setup(t, as, &config.TokenExchange{Audience: "https://api.example.com", ClientSecretFile: secret}, nil)
	var got []string
	inner := as.token
	as.token = func(w http.ResponseWriter, f url.Values, u, p string) { got = append(got, p); inner(w, f, u, p) }
	e.Credential(context.Background(), grant(as, subjectToken))
	if err := os.WriteFile(secret, []byte("second-and-longer\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.Credential(context.Background(), grant(as, subjectToken+"2"))
	if len(got) != 2 || got[0] != "first" || got[1] != "second-and-longer" {
		t.Fatalf("secrets sent = %q", got)
	}
}

// TestPrivateKeyJWT checks the client assertion: signed with the configured key and kid, iss and sub the
// client id, aud the issuer (or the token endpoint, or a URL, as configured), a fresh jti, a short exp; and
// no secret.
func TestPrivateKeyJWT(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writeFile(t, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	for _, tc := range []struct{ audience, want string }{
		{"", "issuer"}, {"token_endpoint", "token endpoint"}, {"https://idp.example.com/custom", "https://idp.example.com/custom"},
	} {
		t.Run("audience "+tc.want, func(t *testing.T) {
			as := newFakeAS(t)
			want := map[string]string{"issuer": as.srv.URL, "token endpoint": as.srv.URL + "/token"}[tc.want]
			if want == "" {
				want = tc.want
			}
			e := setup(t, as, &config.TokenExchange{Audience: "https://api.example.com", ClientID: "mcp-authz",
				PrivateKeyJWT: &config.PrivateKeyJWT{KeyFile: keyFile, KeyID: "k1", Algorithm: "ES256", Audience: tc.audience}}, nil)
			var basic string
			inner := as.token
			as.token = func(w http.ResponseWriter, f url.Values, u, p string) { basic = u + p; inner(w, f, u, p) }
			for _, tok := range []string{subjectToken, subjectToken + "2"} {
				if _, err := e.Credential(context.Background(), grant(as, tok)); err != nil {
					t.Fatal(err)
				}
			}
			if basic != "" {
				t.Errorf("basic auth sent with private_key_jwt")
			}
			var jtis []string
			for _, r := range as.requests() {
				if r.Get("client_assertion_type") != assertionType || r.Get("client_id") != "mcp-authz" {
					t.Fatalf("form = %v", r)
				}
				tok, err := jwt.Parse([]byte(r.Get("client_assertion")), jwt.WithKey(jwa.ES256, &key.PublicKey), jwt.WithValidate(true),
					jwt.WithIssuer("mcp-authz"), jwt.WithSubject("mcp-authz"), jwt.WithAudience(want))
				if err != nil {
					t.Fatalf("assertion: %v", err)
				}
				if len(tok.Audience()) != 1 {
					t.Errorf("aud = %q, want one value", tok.Audience())
				}
				if life := tok.Expiration().Sub(tok.IssuedAt()); life <= 0 || life > 5*time.Minute {
					t.Errorf("assertion lifetime %v", life)
				}
				jtis = append(jtis, tok.JwtID())
			}
			if len(jtis) != 2 || jtis[0] == "" || jtis[0] == jtis[1] {
				t.Errorf("jti not fresh: %q", jtis)
			}
		})
	}
	if _, err := New(config.Config{Resources: []config.Resource{{URL: resourceURL, TokenExchange: &config.TokenExchange{ClientID: "c",
		PrivateKeyJWT: &config.PrivateKeyJWT{KeyFile: keyFile, Algorithm: "RS256"}}}}}, Options{}); err == nil ||
		!strings.Contains(err.Error(), "resources[0].token_exchange.private_key_jwt.algorithm") {
		t.Errorf("RS256 with an EC key: %v", err)
	}
}

// TestActorToken checks delegation: the actor token mcp-authz gets for itself with client_credentials is
// sent as actor_token and reused while fresh; one from a file is sent as read.
func TestActorToken(t *testing.T) {
	as := newFakeAS(t)
	e := setup(t, as, &config.TokenExchange{Audience: "https://api.example.com",
		ActorToken: &config.ActorToken{ClientCredentials: &config.ActorClientCredentials{Scope: "actor"}}}, nil)
	inner := as.token
	as.token = func(w http.ResponseWriter, f url.Values, u, p string) {
		if f.Get("grant_type") == "client_credentials" {
			answer(w, 200, map[string]any{"access_token": "actor-token", "token_type": "Bearer", "expires_in": 300})
			return
		}
		inner(w, f, u, p)
	}
	for _, tok := range []string{subjectToken, subjectToken + "2"} {
		if _, err := e.Credential(context.Background(), grant(as, tok)); err != nil {
			t.Fatal(err)
		}
	}
	var cc, ex int
	for _, r := range as.requests() {
		switch r.Get("grant_type") {
		case "client_credentials":
			cc++
			if r.Get("scope") != "actor" {
				t.Errorf("actor scope = %q", r.Get("scope"))
			}
		case grantTokenExchange:
			ex++
			if r.Get("actor_token") != "actor-token" || r.Get("actor_token_type") != config.TokenTypeAccessToken {
				t.Errorf("actor = %q %q", r.Get("actor_token"), r.Get("actor_token_type"))
			}
		}
	}
	if cc != 1 || ex != 2 {
		t.Fatalf("client_credentials %d, exchanges %d; want 1 and 2", cc, ex)
	}

	as2 := newFakeAS(t)
	file := writeFile(t, "actor", "file-actor-token\n")
	e2 := setup(t, as2, &config.TokenExchange{Audience: "https://api.example.com",
		ActorToken: &config.ActorToken{File: file, TokenType: config.TokenTypeJWT}}, nil)
	if _, err := e2.Credential(context.Background(), grant(as2, subjectToken)); err != nil {
		t.Fatal(err)
	}
	if r := as2.requests()[0]; r.Get("actor_token") != "file-actor-token" || r.Get("actor_token_type") != config.TokenTypeJWT {
		t.Fatalf("actor from file = %q %q", r.Get("actor_token"), r.Get("actor_token_type"))
	}

	// The IdP refusing the actor token refuses the request.
	as3 := newFakeAS(t)
	e3 := setup(t, as3, &config.TokenExchange{Audience: "https://api.example.com",
		ActorToken: &config.ActorToken{ClientCredentials: &config.ActorClientCredentials{}}}, nil)
	as3.token = func(w http.ResponseWriter, _ url.Values, _, _ string) {
		answer(w, 401, map[string]any{"error": "invalid_client"})
	}
	if _, err := e3.Credential(context.Background(), grant(as3, subjectToken)); err == nil || err.Status != 502 || !strings.Contains(err.Description, "actor token") {
		t.Fatalf("actor refused: %v", err)
	}
}

func TestNewWithoutTokenExchange(t *testing.T) {
	e, err := New(config.Config{Resources: []config.Resource{{URL: resourceURL}}}, Options{})
	if e != nil || err != nil {
		t.Fatalf("New = %v, %v; want nil, nil", e, err)
	}
	// Files that cannot be used are start-up errors naming their field.
	missing := filepath.Join(t.TempDir(), "missing")
	notKey := writeFile(t, "not-a-key", "hello")
	for _, tc := range []struct {
		te   config.TokenExchange
		want string
	}{
		{config.TokenExchange{ClientSecretFile: missing}, "resources[0].token_exchange.client_secret_file: "},
		{config.TokenExchange{PrivateKeyJWT: &config.PrivateKeyJWT{KeyFile: missing}}, "resources[0].token_exchange.private_key_jwt.key_file: "},
		{config.TokenExchange{PrivateKeyJWT: &config.PrivateKeyJWT{KeyFile: notKey}}, "resources[0].token_exchange.private_key_jwt.key_file: "},
		{config.TokenExchange{ClientSecretFile: notKey, ActorToken: &config.ActorToken{File: missing}}, "resources[0].token_exchange.actor_token.file: "},
	} {
		tc.te.ClientID = "c"
		_, err = New(config.Config{Resources: []config.Resource{{URL: resourceURL, TokenExchange: &tc.te}}}, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error = %v, want %q", err, tc.want)
		}
	}
}

// TestDiscoveryRefusals checks the discovery documents whose token endpoint is not used: another issuer's,
// one without a usable token_endpoint, and an https one naming a plain http endpoint elsewhere.
func TestDiscoveryRefusals(t *testing.T) {
	tests := []struct {
		name string
		doc  func(base string) map[string]any
		want string
	}{
		{"other issuer", func(string) map[string]any {
			return map[string]any{"issuer": "https://evil.example.com", "token_endpoint": "https://evil.example.com/token"}
		}, "is not"},
		{"no token endpoint", func(base string) map[string]any { return map[string]any{"issuer": base} }, "no usable token_endpoint"},
		{"relative token endpoint", func(base string) map[string]any { return map[string]any{"issuer": base, "token_endpoint": "/token"} }, "no usable token_endpoint"},
		{"plain http token endpoint", func(base string) map[string]any {
			return map[string]any{"issuer": base, "token_endpoint": "http://idp.example.com/token"}
		}, "plain http"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var srv *httptest.Server
			var tokenRequests int
			srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/.well-known/openid-configuration" {
					answer(w, 200, tc.doc(srv.URL))
					return
				}
				tokenRequests++
			}))
			defer srv.Close()
			secret := writeFile(t, "secret", "s")
			e, err := New(config.Config{
				Resources: []config.Resource{{URL: resourceURL, TokenExchange: &config.TokenExchange{Audience: "a", ClientID: "c", ClientSecretFile: secret,
					RequestedTokenType: config.TokenTypeAccessToken, Timeout: config.Duration(time.Second)}}},
				Issuers: []config.Issuer{{Issuer: srv.URL, DiscoveryURL: srv.URL + "/.well-known/openid-configuration"}},
			}, Options{Client: srv.Client()})
			if err != nil {
				t.Fatal(err)
			}
			_, xerr := e.Credential(context.Background(), authz.Grant{Resource: resourceURL, Token: subjectToken, Identity: &authz.Identity{Issuer: srv.URL}})
			if xerr == nil || xerr.Status != 503 || !strings.Contains(xerr.Description, tc.want) {
				t.Fatalf("err = %v, want 503 saying %q", xerr, tc.want)
			}
			if tokenRequests != 0 {
				t.Fatal("the token was sent")
			}
		})
	}
}

func TestFileValue(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"empty", " \n", "empty"},
		{"too large", strings.Repeat("a", maxSecretBytes+1), "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := newFileValue(writeFile(t, "f", tc.content)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// A file that disappears after a good read keeps its last content (a secret being rotated).
	p := writeFile(t, "f", "v1")
	f, err := newFileValue(p)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(p)
	if v, err := f.get(); v != "v1" || err != nil {
		t.Fatalf("get = %q, %v", v, err)
	}
}

// TestExchangeRefusesAnotherIssuersToken checks that a block configured for one issuer does not send a
// token of another trusted issuer to its IdP: 403, and the IdP is never asked.
func TestExchangeRefusesAnotherIssuersToken(t *testing.T) {
	as := newFakeAS(t)
	e := setup(t, as, &config.TokenExchange{Issuer: as.srv.URL, Audience: "https://api.example.com"}, nil)
	g := grant(as, subjectToken)
	g.Identity.Issuer = "https://other-idp.example.com"
	hs, xerr := e.Credential(t.Context(), g)
	if xerr == nil || xerr.Status != http.StatusForbidden || len(hs) != 0 {
		t.Fatalf("Credential = %v, %v; want 403", hs, xerr)
	}
	if n := len(as.requests()); n != 0 {
		t.Errorf("the IdP got %d requests, want none", n)
	}
}
