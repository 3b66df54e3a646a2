package service_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/service"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// startBridged runs mcp-authz on 127.0.0.1 with the test IdP's issuer bridged (extra is added to the
// document) and returns its public URL, a gRPC connection and the test's context.
func startBridged(t *testing.T, extra string) (string, *grpc.ClientConn, context.Context) {
	t.Helper()
	std := startIdP(t)
	dir := policyDir(t, testData, nil)
	key := make([]byte, 32)
	rand.Read(key)
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl, _ := net.Listen("tcp", "127.0.0.1:0")
	public := "http://" + hl.Addr().String()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
public_url: %s
resources:
  - url: %s
    scopes_supported: [tools:read, tools:call]
issuers:
  - discovery_url: %s/.well-known/openid-configuration
    bridge: {client_id: mcp-client, extra_scopes: [openid]}
policy: {paths: [%s]}
bridge:
  sealing_keys: [%s]
%s`, public, resourceURL, std.Issuer(), dir, keyFile, extra)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := service.New(ctx, cfg, slog.New(slog.NewJSONHandler(testWriter{t}, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { svc.Serve(ctx, gl, hl); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return public, conn, ctx
}

// TestBridgeNotLimited: with every Check slot taken, /authz is shed but the bridge still answers.
func TestBridgeNotLimited(t *testing.T) {
	public, _, _ := startBridged(t, "server: {max_concurrent_checks: 1}\n")
	// A forward-auth request whose body never completes holds the only slot.
	c, err := net.Dial("tcp", strings.TrimPrefix(public, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /authz HTTP/1.1\r\nHost: x\r\nX-Forwarded-Method: POST\r\nX-Forwarded-Uri: /mcp\r\nX-Forwarded-Host: mcp.example.com\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(public + "/authz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot is not taken: /authz answers %d", resp.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, p := range []string{"/.well-known/oauth-authorization-server/oauth/default", "/oauth/default/.well-known/openid-configuration"} {
		resp, err := http.Get(public + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s while Checks are shed: %d", p, resp.StatusCode)
		}
	}
	resp, err := http.Post(public+"/oauth/default/register", "application/json", strings.NewReader(`{"redirect_uris":["http://127.0.0.1:1/cb"]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("register while Checks are shed: %d", resp.StatusCode)
	}
}

// TestBridgeWired runs mcp-authz with a bridged issuer: the PRM names the bridge, a DCR client gets a token
// through the bridge from the IdP, and that token is allowed by a Check. The bridge's endpoints are served
// beside /readyz, which stays as it is.
func TestBridgeWired(t *testing.T) {
	public, conn, ctx := startBridged(t, "")

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	iss := public + "/oauth/default"

	// The PRM names the bridge as the authorization server.
	resp, body := get(public + "/.well-known/oauth-protected-resource/mcp")
	var prm struct {
		AuthorizationServers []string `json:"authorization_servers"`
	}
	json.Unmarshal([]byte(body), &prm)
	if resp.StatusCode != http.StatusOK || len(prm.AuthorizationServers) != 1 || prm.AuthorizationServers[0] != iss {
		t.Fatalf("PRM: %d %s", resp.StatusCode, body)
	}
	if resp, body := get(public + "/.well-known/oauth-authorization-server/oauth/default"); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"issuer":"`+iss+`"`) {
		t.Fatalf("AS metadata: %d %s", resp.StatusCode, body)
	}

	redirect := "http://127.0.0.1:4321/callback"
	resp, err := c.Post(iss+"/register", "application/json", strings.NewReader(`{"redirect_uris":["`+redirect+`"],"client_name":"wired"}`))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %v %v", resp, err)
	}
	var reg struct {
		ClientID string `json:"client_id"`
	}
	json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()

	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {reg.ClientID}, "redirect_uri": {redirect}, "state": {"s1"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"scope": {"tools:read tools:call"}, "resource": {resourceURL}}
	resp, body = get(iss + "/authorize?" + q.Encode())
	form := url.Values{"decision": {"allow"}}
	for _, m := range regexp.MustCompile(`name="(txn|csrf)" value="([^"]+)"`).FindAllStringSubmatch(body, -1) {
		form.Set(m[1], m[2])
	}
	if resp.StatusCode != http.StatusOK || form.Get("txn") == "" {
		t.Fatalf("consent page: %d %s", resp.StatusCode, body)
	}
	resp, err = c.PostForm(iss+"/consent", form)
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("consent: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, _ = get(resp.Header.Get("Location")) // the IdP approves at once
	resp, _ = get(resp.Header.Get("Location")) // the bridge's callback
	back, _ := url.Parse(resp.Header.Get("Location"))
	if !strings.HasPrefix(back.String(), redirect) || back.Query().Get("iss") != iss {
		t.Fatalf("callback: %d %v", resp.StatusCode, back)
	}
	resp, err = c.PostForm(iss+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")},
		"redirect_uri": {redirect}, "client_id": {reg.ClientID}, "code_verifier": {verifier}})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("token: %v %v", resp, err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()

	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, body := get(public + "/readyz")
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz: %d %s", resp.StatusCode, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	check, err := authv3.NewAuthorizationClient(conn).Check(ctx, checkRequest(bearer(tok.AccessToken), "/mcp", listTools))
	if err != nil || check.GetOkResponse() == nil {
		t.Fatalf("Check with the bridged token: %v %v", check, err)
	}
	if _, metrics := get(public + "/metrics"); !strings.Contains(metrics, `mcp_authz_bridge_decisions_total{bridge="default",event="token"`) {
		t.Errorf("no bridge decision metric in /metrics")
	}
}
