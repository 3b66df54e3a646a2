package bridge

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/test/idp"
)

const testResource = "https://mcp.example.com/mcp"

// clock is a settable clock shared by the bridge and the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// env is a bridge in front of the test IdP, both on 127.0.0.1.
type env struct {
	t      *testing.T
	idp    *idp.Provider
	idpSrv *httptest.Server
	srv    *httptest.Server
	b      *Bridge
	cfg    config.Config
	clock  *clock
	logs   *syncBuffer
	iss    string // the bridge's issuer identifier
}

type envOptions struct {
	bridgeYAML string // extra lines of the issuer's bridge block
	topYAML    string // extra lines of the top-level bridge block
	cimdYAML   string // the bridge's cimd block; default: private networks and loopback http allowed
	publicPath string // the path of public_url (the front proxy forwards it unchanged)
	idpOpts    []idp.Option
	bridgeOpts []Option
	keys       [][]byte
	idpHandler func(http.Handler) http.Handler // wraps the IdP's handler
}

func writeKey(t *testing.T, dir, name string, key []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{t: t, clock: &clock{t: time.Now()}, logs: &syncBuffer{}}
	e.idpSrv = httptest.NewUnstartedServer(nil)
	var err error
	if e.idp, err = idp.New("http://"+e.idpSrv.Listener.Addr().String(), o.idpOpts...); err != nil {
		t.Fatal(err)
	}
	var h http.Handler = e.idp.Handler()
	if o.idpHandler != nil {
		h = o.idpHandler(h)
	}
	e.idpSrv.Config.Handler = h
	e.idpSrv.Start()
	t.Cleanup(e.idpSrv.Close)

	e.srv = httptest.NewUnstartedServer(nil)
	dir := t.TempDir()
	if o.cimdYAML == "" {
		o.cimdYAML = "{allow_private_networks: true, allow_http_loopback: true, timeout: 2s}"
	}
	if o.keys == nil {
		k := make([]byte, KeySize)
		rand.Read(k)
		o.keys = [][]byte{k}
	}
	var keyFiles []string
	for i, k := range o.keys {
		keyFiles = append(keyFiles, writeKey(t, dir, fmt.Sprintf("key%d", i), k))
	}
	public := "http://" + e.srv.Listener.Addr().String() + o.publicPath
	yaml := fmt.Sprintf(`
public_url: %s
resources: [{url: %q, name: Example tools, scopes_supported: [tools:read, tools:call]}]
issuers:
  - discovery_url: %s/.well-known/openid-configuration
    bridge:
      client_id: mcp-client
      extra_scopes: [openid, offline_access]
%s
policy: {paths: [%q]}
bridge:
  sealing_keys: [%s]
  redirect_uris: [https://app.example/callback]
  cimd: %s
%s
`, public, testResource, e.idp.Issuer(), indent(o.bridgeYAML, "      "), dir, strings.Join(keyFiles, ", "), o.cimdYAML, indent(o.topYAML, "  "))
	if e.cfg, err = config.Parse([]byte(yaml)); err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	opts := append([]Option{WithClock(e.clock.now)}, o.bridgeOpts...)
	if e.b, err = New(e.cfg, slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), opts...); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	e.b.Routes(mux)
	e.srv.Config.Handler = mux
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	e.iss = public + "/oauth/default"
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bridge log:\n%s", e.logs.String())
		}
	})
	return e
}

func indent(s, pre string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		lines[i] = pre + l
	}
	return strings.Join(lines, "\n")
}

// browser is a user agent with a cookie jar that follows no redirect by itself.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// response is a read answer.
type response struct {
	status   int
	header   http.Header
	body     string
	location *url.URL
}

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, body: string(body)}
	if l := resp.Header.Get("Location"); l != "" {
		if r.location, err = url.Parse(l); err != nil {
			b.t.Fatal(err)
		}
	}
	return r
}

func (b *browser) get(u string) response {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

func (b *browser) postForm(u string, form url.Values) response {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func (e *env) postJSON(path string, v any) response {
	e.t.Helper()
	body, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, e.iss+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return newBrowser(e.t).do(req)
}

// register registers a DCR client with redirect and returns its client id.
func (e *env) register(redirect string) string {
	e.t.Helper()
	r := e.postJSON("/register", map[string]any{"redirect_uris": []string{redirect}, "client_name": "Test client", "token_endpoint_auth_method": "none"})
	if r.status != http.StatusCreated {
		e.t.Fatalf("register: %d %s", r.status, r.body)
	}
	var reg registered
	json.Unmarshal([]byte(r.body), &reg)
	return reg.ClientID
}

// pkcePair returns a verifier and its S256 challenge.
func pkcePair() (string, string) {
	v := rand.Text() + rand.Text()
	return v, s256(v)
}

// authzParams is a valid authorization request of client.
func authzParams(clientID, redirect, challenge string) url.Values {
	return url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect}, "state": {"client-state"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "scope": {"tools:read"}, "resource": {testResource}}
}

var hiddenField = regexp.MustCompile(`name="(txn|csrf)" value="([^"]+)"`)

// consentForm reads the hidden fields of a consent page.
func consentForm(t *testing.T, page string) url.Values {
	t.Helper()
	f := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(page, -1) {
		f.Set(m[1], m[2])
	}
	if f.Get("txn") == "" || f.Get("csrf") == "" {
		t.Fatalf("no consent form in:\n%s", page)
	}
	return f
}

// flow is one authorization in progress, step by step.
type flow struct {
	e        *env
	br       *browser
	clientID string
	redirect string
	verifier string
	params   url.Values
}

func (e *env) newFlow(clientID, redirect string) *flow {
	v, c := pkcePair()
	return &flow{e: e, br: newBrowser(e.t), clientID: clientID, redirect: redirect, verifier: v, params: authzParams(clientID, redirect, c)}
}

// authorize sends the authorization request.
func (f *flow) authorize() response {
	f.e.t.Helper()
	return f.br.get(f.e.iss + "/authorize?" + f.params.Encode())
}

// consent approves (or refuses) on the consent page got from authorize.
func (f *flow) consent(page response, decision string) response {
	f.e.t.Helper()
	if page.status != http.StatusOK {
		f.e.t.Fatalf("consent page: %d %s", page.status, page.body)
	}
	form := consentForm(f.e.t, page.body)
	form.Set("decision", decision)
	return f.br.postForm(f.e.iss+"/consent", form)
}

// toCallback follows the redirect to the IdP and returns the IdP's redirect to the bridge's callback.
func (f *flow) toCallback(toIdP response) *url.URL {
	f.e.t.Helper()
	if toIdP.status != http.StatusFound || !strings.HasPrefix(toIdP.location.String(), f.e.idp.Issuer()) {
		f.e.t.Fatalf("want a redirect to the IdP, got %d %v %s", toIdP.status, toIdP.location, toIdP.body)
	}
	r := f.br.get(toIdP.location.String())
	if r.status != http.StatusFound || !strings.HasPrefix(r.location.String(), f.e.iss+"/callback") {
		f.e.t.Fatalf("want the IdP to redirect to the callback, got %d %v %s", r.status, r.location, r.body)
	}
	return r.location
}

// code runs authorize, consent, IdP and callback, and returns the client's redirect.
func (f *flow) code() *url.URL {
	f.e.t.Helper()
	cb := f.toCallback(f.consent(f.authorize(), "allow"))
	r := f.br.get(cb.String())
	if r.status != http.StatusFound || !strings.HasPrefix(r.location.String(), f.redirect) {
		f.e.t.Fatalf("want a redirect to the client, got %d %v %s", r.status, r.location, r.body)
	}
	return r.location
}

// redeem posts the token request for code.
func (f *flow) redeem(code string) response {
	f.e.t.Helper()
	return f.br.postForm(f.e.iss+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {f.redirect}, "client_id": {f.clientID}, "code_verifier": {f.verifier}})
}

func decodeJSON(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, body)
	}
	return m
}

// jwtClaims decodes a JWT's claims without verifying it (the IdP's tests verify its tokens).
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64URLDecode(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return decodeJSON(t, string(b))
}

func base64URLDecode(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
