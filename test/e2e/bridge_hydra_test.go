package e2e

import (
	"crypto/rand"
	"crypto/sha256"
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
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/mcp-authz/mcp-authz/bridge"
	"github.com/mcp-authz/mcp-authz/config"
)

// TestBridgeHydra puts the OAuth bridge in front of a real Ory Hydra with dynamic registration off and one
// pre-registered public client whose redirect URI is the bridge's callback. A Go HTTP user agent (no browser:
// Hydra's login/consent app accepts through the admin API) registers at the bridge by DCR, goes through the
// bridge's consent, Hydra's login and the callback, and redeems the code; the access token, Hydra's, is
// allowed by mcp-authz, and so is the one a refresh through the bridge gives. Then a replayed code fails, on the same replica (its replay cache) and on another one
// (Hydra refuses its own code's second use, and revokes what the code gave).
func TestBridgeHydra(t *testing.T) {
	const resource = "https://mcp.example.com/mcp"
	h := startHydra(t, []string{resource})
	hl, gl := listen(t), listen(t)
	public := "http://" + hl.Addr().String()
	iss := public + "/oauth/hydra"
	h.createClient(t, map[string]any{
		"client_id": "mcp-bridge", "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		"scope": "openid offline_access tools:read tools:call", "redirect_uris": []string{iss + "/callback"},
		"audience": []string{resource},
	}, 0)
	if resp, err := http.Post(h.issuer+"/oauth2/register", "application/json", strings.NewReader(`{"redirect_uris":["http://127.0.0.1:1/cb"]}`)); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusCreated {
			t.Fatal("Hydra accepts dynamic registration: the test needs it off")
		}
	}

	dir := t.TempDir()
	key := make([]byte, bridge.KeySize)
	rand.Read(key)
	keyFile := filepath.Join(dir, "bridge.key")
	rego, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "policies", "authz.rego"))
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{"bridge.key": key, "authz.rego": rego, "data.yaml": []byte(policyData([]string{"mcp-bridge"}, false))} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	yaml := fmt.Sprintf(`public_url: %s
resources: [{url: %q, scopes_supported: [tools:read, tools:call]}]
issuers:
  - discovery_url: %s/.well-known/openid-configuration
    bridge: {id: hydra, client_id: mcp-bridge, extra_scopes: [openid, offline_access]}
policy: {paths: [%q]}
bridge:
  sealing_keys: [%s]
`, public, resource, h.issuer, dir, keyFile)
	az := startAuthz(t, yaml, gl, hl)

	ua := newBridgeAgent(t)
	redirect := "http://127.0.0.1:47001/callback"
	var reg struct {
		ClientID string `json:"client_id"`
	}
	ua.postJSON(iss+"/register", `{"redirect_uris":["`+redirect+`"],"client_name":"Go agent","token_endpoint_auth_method":"none"}`, &reg)

	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {reg.ClientID}, "redirect_uri": {redirect}, "state": {"go-agent-state"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"scope": {"tools:read tools:call"}, "resource": {resource}}
	back := ua.authorize(iss+"/authorize?"+q.Encode(), redirect, "alice")
	if back.Query().Get("state") != "go-agent-state" || back.Query().Get("iss") != iss {
		t.Fatalf("answer to the client: %v", back)
	}
	code := back.Query().Get("code")
	redeem := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "client_id": {reg.ClientID}, "code_verifier": {verifier}}
	status, tok := ua.postForm(iss+"/token", redeem)
	if status != http.StatusOK {
		t.Fatalf("token: %d %v", status, tok)
	}
	at, _ := tok["access_token"].(string)
	bridgeCheck(t, az, at, true)

	rt, _ := tok["refresh_token"].(string)
	status, refreshed := ua.postForm(iss+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {reg.ClientID}})
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, refreshed)
	}
	at2, _ := refreshed["access_token"].(string)
	if at2 == "" || at2 == at {
		t.Fatalf("refresh gave no new access token: %v", refreshed)
	}
	bridgeCheck(t, az, at2, true)
	bridgeCheck(t, az, at2[:len(at2)-4]+"AAAA", false)

	status, again := ua.postForm(iss+"/token", redeem)
	if status != http.StatusBadRequest || again["error"] != "invalid_grant" || again["error_description"] != "the code was already used" {
		t.Errorf("replay on the same replica: %d %v", status, again)
	}
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	replica, err := bridge.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	replica.Routes(mux)
	other := httptest.NewServer(mux)
	t.Cleanup(other.Close)
	status, again = ua.postForm(other.URL+"/oauth/hydra/token", redeem)
	if desc, _ := again["error_description"].(string); status != http.StatusBadRequest || again["error"] != "invalid_grant" || !strings.Contains(desc, "identity provider") {
		t.Errorf("replay on another replica: %d %v", status, again)
	}

	// Hydra answers a code's second use by revoking what the code gave: the refresh token stops working.
	rt2, _ := refreshed["refresh_token"].(string)
	if status, after := ua.postForm(iss+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt2}, "client_id": {reg.ClientID}}); status != http.StatusBadRequest || after["error"] != "invalid_grant" {
		t.Errorf("refresh after the replay: %d %v", status, after)
	}
}

// bridgeCheck asks mcp-authz over gRPC whether tok may list the tools of the resource.
func bridgeCheck(t *testing.T, az *authzInstance, tok string, allow bool) {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
		Method: "POST", Path: "/mcp", Host: "mcp.example.com", Scheme: "https",
		Headers: map[string]string{":authority": "mcp.example.com", ":method": "POST", ":path": "/mcp", "content-type": "application/json", "authorization": "Bearer " + tok},
		RawBody: []byte(body), Size: int64(len(body)),
	}}}}
	resp, err := az.client.Check(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetOkResponse() != nil; got != allow {
		t.Fatalf("Check: allowed %v, want %v: %v", got, allow, resp.GetDeniedResponse())
	}
}

// bridgeAgent is a user agent that follows redirects itself, so it sees each step.
type bridgeAgent struct {
	t *testing.T
	c *http.Client
}

func newBridgeAgent(t *testing.T) *bridgeAgent {
	jar, _ := cookiejar.New(nil)
	return &bridgeAgent{t: t, c: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (a *bridgeAgent) do(req *http.Request) (*http.Response, string) {
	a.t.Helper()
	resp, err := a.c.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, string(b)
}

func (a *bridgeAgent) postJSON(u, body string, out any) {
	a.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, b := a.do(req)
	if resp.StatusCode/100 != 2 || json.Unmarshal([]byte(b), out) != nil {
		a.t.Fatalf("POST %s: %d %s", u, resp.StatusCode, b)
	}
}

func (a *bridgeAgent) postForm(u string, form url.Values) (int, map[string]any) {
	a.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, b := a.do(req)
	var m map[string]any
	if err := json.Unmarshal([]byte(b), &m); err != nil {
		a.t.Fatalf("POST %s: %d, not JSON: %s", u, resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

var (
	bridgeHidden = regexp.MustCompile(`name="(txn|csrf|login_challenge)" value="([^"]+)"`)
	bridgeAction = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
)

// authorize follows an authorization from start to the redirect to the client, approving the bridge's consent
// and logging in at the IdP as user, and returns that last redirect.
func (a *bridgeAgent) authorize(start, redirect, user string) *url.URL {
	a.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, start, nil)
	for range 20 {
		resp, body := a.do(req)
		switch {
		case resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther:
			loc, err := resp.Location()
			if err != nil {
				a.t.Fatal(err)
			}
			if strings.HasPrefix(loc.String(), redirect) {
				return loc
			}
			req, _ = http.NewRequest(http.MethodGet, loc.String(), nil)
		case resp.StatusCode == http.StatusOK:
			form := url.Values{}
			for _, m := range bridgeHidden.FindAllStringSubmatch(body, -1) {
				form.Set(m[1], m[2])
			}
			action := bridgeAction.FindStringSubmatch(body)
			if action == nil {
				a.t.Fatalf("page without a form at %s:\n%s", req.URL, body)
			}
			if form.Has("txn") {
				form.Set("decision", "allow")
			} else {
				form.Set("username", user)
			}
			target, err := req.URL.Parse(action[1])
			if err != nil {
				a.t.Fatal(err)
			}
			req, _ = http.NewRequest(http.MethodPost, target.String(), strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		default:
			a.t.Fatalf("%s %s: %d %s", req.Method, req.URL, resp.StatusCode, body)
		}
	}
	a.t.Fatal("authorization did not end within 20 steps")
	return nil
}
