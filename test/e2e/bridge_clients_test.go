package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The real clients of the bridge scenarios and the user's browser they share.

// browserPage is one page the browser answered.
type browserPage struct {
	Kind   string `json:"kind"` // consent (the bridge's), login, idp-consent, error
	Host   string `json:"host"`
	Path   string `json:"path"`
	Status int    `json:"status"`
	// Text, Aria (the accessibility tree, a Playwright aria snapshot) and Lang of a consent page.
	Text string `json:"text"`
	Aria string `json:"aria"`
	Lang string `json:"lang"`
}

// navigation is a main-frame request of a flow; Params has the values of descriptive parameters (scope,
// audience, resource, code_challenge_method, ...) and "…" for the others.
type navigation struct {
	Host   string            `json:"host"`
	Path   string            `json:"path"`
	Params map[string]string `json:"params"`
}

// browserReport is what node/bridge-browser.mjs reports of one authorization flow.
type browserReport struct {
	Redirect    string        `json:"redirect"`
	Pages       []browserPage `json:"pages"`
	Navigations []navigation  `json:"navigations"`
	Codes       []string      `json:"codes"`
	States      []string      `json:"states"`
	ClientIDs   []string      `json:"clientIds"`
	Hosts       []string      `json:"hosts"`
	FinalURL    string        `json:"finalURL"`
	FinalStatus int           `json:"finalStatus"`
	FinalText   string        `json:"finalText"`
	Error       string        `json:"error"`
}

// shown says whether the flow went through a page of this kind.
func (r browserReport) shown(kind string) bool {
	for _, p := range r.Pages {
		if p.Kind == kind {
			return true
		}
	}
	return false
}

// secrets are the codes and states the flow carried: none may appear in a log.
func (r browserReport) secrets() []string {
	return append(append([]string(nil), r.Codes...), r.States...)
}

// page returns the flow's first page of this kind.
func (r browserReport) page(kind string) (browserPage, bool) {
	for _, p := range r.Pages {
		if p.Kind == kind {
			return p, true
		}
	}
	return browserPage{}, false
}

// chromiumUser is one user's Chromium, running for the test: every flow opens a page in it (over the
// DevTools protocol), so the bridge's consent cookie and the IdP's session live on between flows, as in a
// real browser, and no flow pays for a launch.
type chromiumUser struct {
	node, dir, chromium string
	// cdp is the running Chromium's DevTools websocket URL.
	cdp  string
	user string

	mu      sync.Mutex
	reports []browserReport
}

// devtoolsRE finds the DevTools endpoint Chromium prints when it listens.
var devtoolsRE = regexp.MustCompile(`DevTools listening on (ws://127\.0\.0\.1:\d+/devtools/browser/[0-9a-f-]+)`)

// newChromiumUser starts the user's Chromium (headless, its own profile, DevTools on a free 127.0.0.1
// port) until the test ends.
func newChromiumUser(t testing.TB, user string) *chromiumUser {
	t.Helper()
	node, dir, chromium := nodeTools(t, true)
	profile := t.TempDir()
	proc := start(t, "chromium", []string{"DISPLAY=", "WAYLAND_DISPLAY="}, profile, chromium,
		"--headless", "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--no-first-run", "--no-default-browser-check", "--user-data-dir="+profile,
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := devtoolsRE.FindStringSubmatch(proc.log.String()); m != nil {
			return &chromiumUser{node: node, dir: dir, chromium: chromium, cdp: m[1], user: user}
		}
		select {
		case <-proc.done:
			t.Fatalf("Chromium exited:\n%s", tail(proc.log.String(), 3000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("Chromium did not open its DevTools endpoint within 30s:\n%s", tail(proc.log.String(), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// env is the environment of bridge-browser.mjs for one flow.
func (b *chromiumUser) env(redirectPrefix, consent string) []string {
	return []string{"E2E_CDP=" + b.cdp, "E2E_USER=" + b.user, "E2E_CONSENT=" + consent,
		"E2E_REDIRECT_PREFIX=" + redirectPrefix, "E2E_CHROMIUM=" + b.chromium, "DISPLAY=", "WAYLAND_DISPLAY="}
}

// open runs one authorization flow from url until the redirect to redirectPrefix (or an error page),
// answering the bridge's consent page with consent (approve or deny).
func (b *chromiumUser) open(ctx context.Context, rawURL, redirectPrefix, consent string) (browserReport, error) {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.node, filepath.Join(b.dir, "bridge-browser.mjs"), rawURL)
	cmd.Dir = b.dir
	cmd.Env = append(os.Environ(), b.env(redirectPrefix, consent)...)
	var stdout bytes.Buffer
	stderr := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	err := cmd.Run()
	var rep browserReport
	if jerr := json.Unmarshal(lastLine(stdout.Bytes()), &rep); jerr != nil {
		return rep, fmt.Errorf("browser: %v (%v): %s", jerr, err, tail(stderr.String(), 2000))
	}
	b.record(rep)
	if rep.Error != "" {
		return rep, fmt.Errorf("browser: %s: %s", rep.Error, tail(stderr.String(), 2000))
	}
	return rep, nil
}

func (b *chromiumUser) record(rep browserReport) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reports = append(b.reports, rep)
}

// Reports returns the reports of the flows so far, first first.
func (b *chromiumUser) Reports() []browserReport {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]browserReport(nil), b.reports...)
}

// waitReports waits (at most d) until a browser run by another program has appended n reports to file (one
// JSON line each: it finishes after handing the client the redirect), adds them to b's and returns them.
func (b *chromiumUser) waitReports(t testing.TB, file string, n int, d time.Duration) []browserReport {
	t.Helper()
	deadline := time.Now().Add(d)
	var lines [][]byte
	for {
		data, err := os.ReadFile(file)
		if err != nil && !os.IsNotExist(err) {
			t.Fatalf("browser reports: %v", err)
		}
		lines = bytes.Split(bytes.TrimSpace(data), []byte("\n"))
		if len(data) > 0 && len(lines) >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the browser did not write %d reports within %s", n, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var out []browserReport
	for _, line := range lines {
		var rep browserReport
		if err := json.Unmarshal(line, &rep); err != nil {
			t.Fatalf("browser report: %v", err)
		}
		b.record(rep)
		out = append(out, rep)
	}
	return out
}

func lastLine(b []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return lines[len(lines)-1]
}

// bridgeGoClient is the MCP Go SDK client identified by a Client ID Metadata Document, its authorization
// code fetcher the user's Chromium.
type bridgeGoClient struct {
	handler *auth.AuthorizationCodeHandler
	tokens  *tokenLog
	// responses are the authorization responses (the redirects to the client), first first.
	mu        sync.Mutex
	responses []url.Values
}

// newBridgeGoClient configures the Go SDK client with CIMD (metadataURL) and redirect URI redirect; consent
// is the user's answer on the bridge's consent page.
func newBridgeGoClient(t testing.TB, b *chromiumUser, metadataURL, redirect, consent string) *bridgeGoClient {
	t.Helper()
	c := &bridgeGoClient{tokens: &tokenLog{}}
	fetch := func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
		rep, err := b.open(ctx, args.URL, redirect, consent)
		if err != nil {
			return nil, err
		}
		u, err := url.Parse(rep.Redirect)
		if err != nil {
			return nil, err
		}
		q := u.Query()
		c.mu.Lock()
		c.responses = append(c.responses, q)
		c.mu.Unlock()
		if e := q.Get("error"); e != "" {
			return nil, fmt.Errorf("authorization failed: %s: %s", e, q.Get("error_description"))
		}
		return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
	}
	h, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		ClientIDMetadataDocumentConfig: &auth.ClientIDMetadataDocumentConfig{URL: metadataURL},
		RedirectURL:                    redirect,
		AuthorizationCodeFetcher:       fetch,
		NewTokenSource:                 c.tokens.newTokenSource,
		Client:                         &http.Client{Timeout: 15 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.handler = h
	return c
}

// connect opens an MCP session to endpoint.
func (c *bridgeGoClient) connect(ctx context.Context, endpoint string) (*mcp.ClientSession, error) {
	transport := &mcp.StreamableClientTransport{Endpoint: endpoint, OAuthHandler: c.handler, MaxRetries: -1}
	return mcp.NewClient(&mcp.Implementation{Name: "mcp-authz-e2e-bridge", Version: "1.0.0"}, nil).Connect(ctx, transport, nil)
}

// Responses returns the authorization responses the client received.
func (c *bridgeGoClient) Responses() []url.Values {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]url.Values(nil), c.responses...)
}

// sdkResult is what node/sdk-client.mjs prints.
type sdkResult struct {
	OK           bool            `json:"ok"`
	Registration string          `json:"registration"`
	ClientID     string          `json:"clientId"`
	Tools        []string        `json:"tools"`
	Result       json.RawMessage `json:"result"`
	Claims       map[string]any  `json:"claims"`
	Browser      []browserReport `json:"browser"`
	// Flows counts the authorizations in the browser; Refreshed says the client got a new access token
	// with its refresh token (SDK_REFRESH), whose claims are RefreshedClaims.
	Flows           int            `json:"flows"`
	Refreshed       bool           `json:"refreshed"`
	RefreshedClaims map[string]any `json:"refreshedClaims"`
	Error           string         `json:"error"`
}

// runSDKClient runs the MCP TypeScript SDK client once against endpoint: it authorizes through the
// bridge in b's Chromium, lists the tools and calls echo with message. metadataURL, when set, is its CIMD;
// refresh makes it then refresh its access token and call again.
func runSDKClient(t testing.TB, b *chromiumUser, endpoint, redirect, metadataURL, message string, refresh bool) sdkResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.node, filepath.Join(b.dir, "sdk-client.mjs"))
	cmd.Dir = b.dir
	cmd.Env = append(os.Environ(), b.env(redirect, "approve")...)
	cmd.Env = append(cmd.Env, "SDK_SERVER_URL="+endpoint, "SDK_REDIRECT_URL="+redirect, "SDK_CLIENT_METADATA_URL="+metadataURL, "SDK_MESSAGE="+message)
	if refresh {
		cmd.Env = append(cmd.Env, "SDK_REFRESH=1")
	}
	var stdout bytes.Buffer
	stderr := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	err := cmd.Run()
	var res sdkResult
	if jerr := json.Unmarshal(lastLine(stdout.Bytes()), &res); jerr != nil {
		t.Fatalf("TypeScript SDK client: %v (%v): %s\n%s", jerr, err, stdout.String(), tail(stderr.String(), 3000))
	}
	for _, rep := range res.Browser {
		b.record(rep)
	}
	if !res.OK {
		t.Logf("TypeScript SDK client stderr:\n%s", tail(stderr.String(), 3000))
	}
	return res
}

// cimdHost serves Client ID Metadata Documents over https on 127.0.0.1 (the MCP SDKs accept only https
// client ids) with a self-signed certificate; the bridge trusts it through roots (bridge.WithCIMDRootCAs).
type cimdHost struct {
	base  string
	roots *x509.CertPool
	mu    sync.Mutex
	docs  map[string]map[string]any
	hits  map[string]int
}

func startCIMDHost(t testing.TB) *cimdHost {
	t.Helper()
	cert, err := loopbackCert()
	if err != nil {
		t.Fatalf("loopback certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	l := listen(t)
	h := &cimdHost{base: "https://" + l.Addr().String(), roots: roots, docs: map[string]map[string]any{}, hits: map[string]int{}}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
	return h
}

// add publishes a public client's document at path and returns its URL (the client id).
func (h *cimdHost) add(path, name string, redirects ...string) string {
	id := h.base + path
	h.mu.Lock()
	defer h.mu.Unlock()
	h.docs[path] = map[string]any{
		"client_id": id, "client_name": name, "redirect_uris": redirects,
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		"token_endpoint_auth_method": "none",
	}
	return id
}

func (h *cimdHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	doc, ok := h.docs[r.URL.Path]
	h.hits[r.URL.Path]++
	h.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(doc)
}

// Hits returns how often path was fetched.
func (h *cimdHost) Hits(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hits[path]
}

// loopbackCert makes a self-signed certificate for 127.0.0.1, valid for a day.
func loopbackCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "mcp-authz e2e loopback"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// scanLog fails the test when mcp-authz's log holds something that looks like a JWT or any of secrets
// (authorization codes the browser saw).
func scanLog(t testing.TB, logs string, secrets []string) {
	t.Helper()
	if strings.Contains(logs, "eyJ") {
		t.Errorf("mcp-authz logged something that looks like a JWT")
	}
	for _, s := range secrets {
		if len(s) >= 8 && strings.Contains(logs, s) {
			t.Errorf("mcp-authz logged an authorization code (%.6s...)", s)
		}
	}
}
