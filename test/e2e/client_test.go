package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"
)

// userAgent is the user's browser for the Go SDK client: it opens the authorization URL, follows the IdP's
// redirects, fills in its login form (user name, a password when asked) and submits the consent form, then
// hands the client the code of the redirect to its redirect URI. It keeps cookies between flows, as a
// browser keeps the IdP session. (The mcp-remote scenario uses a real Chromium instead.)
type userAgent struct {
	user        string
	redirectURL string
	jar         http.CookieJar
	// extra are parameters added to the authorization request (as a client configured for the IdP would).
	extra url.Values

	mu     sync.Mutex
	flows  int
	scopes []string // scope parameter of each authorization request
}

func newUserAgent(t testing.TB, user, redirectURL string) *userAgent {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &userAgent{user: user, redirectURL: redirectURL, jar: jar}
}

// Flows returns how many authorization flows the user went through.
func (ua *userAgent) Flows() int {
	ua.mu.Lock()
	defer ua.mu.Unlock()
	return ua.flows
}

// Scopes returns the scope parameter of the last authorization request.
func (ua *userAgent) LastScope() string {
	ua.mu.Lock()
	defer ua.mu.Unlock()
	if len(ua.scopes) == 0 {
		return ""
	}
	return ua.scopes[len(ua.scopes)-1]
}

// fetch implements auth.AuthorizationCodeFetcher.
func (ua *userAgent) fetch(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
	ua.mu.Lock()
	ua.flows++
	if u, err := url.Parse(args.URL); err == nil {
		ua.scopes = append(ua.scopes, u.Query().Get("scope"))
	}
	ua.mu.Unlock()
	client := &http.Client{Jar: ua.jar, Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	authURL := args.URL
	if len(ua.extra) > 0 {
		u, err := url.Parse(authURL)
		if err != nil {
			return nil, err
		}
		q := u.Query()
		for k, vs := range ua.extra {
			q[k] = vs
		}
		u.RawQuery = q.Encode()
		authURL = u.String()
	}
	req, err := http.NewRequestWithContext(ctx, "GET", authURL, nil)
	if err != nil {
		return nil, err
	}
	for step := 0; step < 20; step++ {
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if loc, err := resp.Location(); err == nil {
			if strings.HasPrefix(loc.String(), ua.redirectURL) {
				q := loc.Query()
				if e := q.Get("error"); e != "" {
					return nil, fmt.Errorf("authorization failed: %s: %s", e, q.Get("error_description"))
				}
				return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
			}
			if req, err = http.NewRequestWithContext(ctx, "GET", loc.String(), nil); err != nil {
				return nil, err
			}
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("IdP answered %d at %s: %.300s", resp.StatusCode, resp.Request.URL.Redacted(), body)
		}
		if req, err = ua.submit(ctx, resp.Request.URL, string(body)); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("authorization did not finish in 20 steps")
}

// submit fills in the first form of page: text inputs named like a user name get the user, password
// inputs a password; hidden inputs keep their values.
func (ua *userAgent) submit(ctx context.Context, base *url.URL, page string) (*http.Request, error) {
	formRE := regexp.MustCompile(`(?is)<form[^>]*>.*?</form>`)
	actionRE := regexp.MustCompile(`(?i)action="([^"]*)"`)
	inputRE := regexp.MustCompile(`(?i)<input[^>]*>`)
	attrRE := regexp.MustCompile(`(?i)\b(name|value|type)="([^"]*)"`)
	form := formRE.FindString(page)
	if form == "" {
		return nil, fmt.Errorf("no form at %s: %.300s", base.Redacted(), page)
	}
	action := base
	if m := actionRE.FindStringSubmatch(form); m != nil {
		a, err := base.Parse(html.UnescapeString(m[1]))
		if err != nil {
			return nil, err
		}
		action = a
	}
	values := url.Values{}
	for _, in := range inputRE.FindAllString(form, -1) {
		attrs := map[string]string{}
		for _, m := range attrRE.FindAllStringSubmatch(in, -1) {
			attrs[strings.ToLower(m[1])] = html.UnescapeString(m[2])
		}
		name := attrs["name"]
		switch {
		case name == "":
		case attrs["type"] == "password":
			values.Set(name, "any-password")
		case name == "username" || name == "login" || name == "email":
			values.Set(name, ua.user)
		default:
			values.Set(name, attrs["value"])
		}
	}
	req, err := http.NewRequestWithContext(ctx, "POST", action.String(), strings.NewReader(values.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req, nil
}

// tokenLog records the distinct access tokens a client used, through the SDK's NewTokenSource hook.
type tokenLog struct {
	mu     sync.Mutex
	tokens []*oauth2.Token
}

func (l *tokenLog) newTokenSource(ctx context.Context, cfg *oauth2.Config, tok *oauth2.Token) (oauth2.TokenSource, error) {
	l.add(tok)
	return recordingSource{cfg.TokenSource(ctx, tok), l}, nil
}

func (l *tokenLog) add(tok *oauth2.Token) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, t := range l.tokens {
		if t.AccessToken == tok.AccessToken {
			return
		}
	}
	l.tokens = append(l.tokens, tok)
}

// All returns the distinct tokens, first used first.
func (l *tokenLog) All() []*oauth2.Token {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*oauth2.Token(nil), l.tokens...)
}

type recordingSource struct {
	ts  oauth2.TokenSource
	log *tokenLog
}

func (r recordingSource) Token() (*oauth2.Token, error) {
	tok, err := r.ts.Token()
	if err == nil {
		r.log.add(tok)
	}
	return tok, err
}

// goClient is one MCP Go SDK client with its OAuth handler.
type goClient struct {
	ua      *userAgent
	tokens  *tokenLog
	handler *auth.AuthorizationCodeHandler
}

// clientOptions configure newGoClient.
type clientOptions struct {
	clientID     string
	user         string
	redirectURL  string
	refresh      bool          // ask for a refresh token (offline_access)
	initialToken *oauth2.Token // a token the client already holds
	scopeFilter  func([]string) []string
	authParams   url.Values // added to authorization requests
}

func newGoClient(t testing.TB, o clientOptions) *goClient {
	t.Helper()
	c := &goClient{ua: newUserAgent(t, o.user, o.redirectURL), tokens: &tokenLog{}}
	c.ua.extra = o.authParams
	cfg := &auth.AuthorizationCodeHandlerConfig{
		PreregisteredClient:      &oauthex.ClientCredentials{ClientID: o.clientID},
		RedirectURL:              o.redirectURL,
		AuthorizationCodeFetcher: c.ua.fetch,
		RequestRefreshToken:      o.refresh,
		NewTokenSource:           c.tokens.newTokenSource,
		ScopeFilter:              o.scopeFilter,
		Client:                   &http.Client{Timeout: 15 * time.Second},
	}
	if o.initialToken != nil {
		cfg.InitialTokenSource = oauth2.StaticTokenSource(o.initialToken)
	}
	h, err := auth.NewAuthorizationCodeHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.handler = h
	return c
}

// connect opens an MCP session to endpoint through the SDK's streamable HTTP transport.
func (c *goClient) connect(ctx context.Context, endpoint string) (*mcp.ClientSession, error) {
	transport := &mcp.StreamableClientTransport{Endpoint: endpoint, OAuthHandler: c.handler, MaxRetries: -1}
	client := mcp.NewClient(&mcp.Implementation{Name: "mcp-authz-e2e", Version: "1.0.0"}, nil)
	return client.Connect(ctx, transport, nil)
}

// token returns the client's current access token.
func (c *goClient) token(t testing.TB) *oauth2.Token {
	t.Helper()
	ts, err := c.handler.TokenSource(context.Background())
	if err != nil || ts == nil {
		t.Fatalf("no token source: %v", err)
	}
	tok, err := ts.Token()
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	return tok
}

// callTool calls a tool and returns its structured result as JSON.
func callTool(ctx context.Context, s *mcp.ClientSession, name string, args any) (string, error) {
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return "", err
	}
	if res.IsError {
		return "", fmt.Errorf("tool %s failed: %v", name, res.Content)
	}
	b, err := json.Marshal(res.StructuredContent)
	return string(b), err
}

// rawResult is what a plain HTTP client sees.
type rawResult struct {
	status    int
	challenge map[string]string // WWW-Authenticate parameters
	body      string
}

// rawCall POSTs one JSON-RPC message to endpoint with token (none when empty), as an MCP client would.
func rawCall(t testing.TB, endpoint, token, body string) rawResult {
	t.Helper()
	req, err := http.NewRequest("POST", endpoint, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return rawResult{status: resp.StatusCode, challenge: parseChallenge(resp.Header.Values("WWW-Authenticate")), body: string(b)}
}

// parseChallenge reads the parameters of a single Bearer challenge; it returns nil when there is none and
// marks a repeated header with the key "repeated".
func parseChallenge(hs []string) map[string]string {
	if len(hs) == 0 {
		return nil
	}
	out := map[string]string{}
	if len(hs) > 1 {
		out["repeated"] = fmt.Sprint(len(hs))
	}
	if !strings.HasPrefix(hs[0], "Bearer ") {
		out["scheme"] = hs[0]
	}
	for _, m := range regexp.MustCompile(`([a-z_]+)="([^"]*)"`).FindAllStringSubmatch(hs[0], -1) {
		out[m[1]] = m[2]
	}
	return out
}

func callJSON(tool string) string {
	return `{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`
}

const listJSON = `{"jsonrpc":"2.0","id":40,"method":"tools/list"}`
