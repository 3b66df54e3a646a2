package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/test/idp"
	"github.com/mcp-authz/mcp-authz/test/mcpserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestIdentityAssertion puts the example MCP server, verifying mcp-authz's signed identity assertion with
// the JWKS mcp-authz serves, behind the Envoy stand-in: the MCP Go SDK client calls a tool through the
// proxy (served, the server sees the verified subject); a request straight to the server with forged
// identity headers is refused 401; and a request through the route of another resource, whose assertion
// names that resource as audience, is refused 401 by the server too.
func TestIdentityAssertion(t *testing.T) {
	il := listen(t)
	prov, err := idp.New("http://" + il.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	serve(t, il, prov.Handler())

	gl, hl, al, bl := listen(t), listen(t), listen(t), listen(t)
	authzURL := "http://" + hl.Addr().String()
	resourceA, resourceB := "http://"+al.Addr().String()+"/mcp", "http://"+bl.Addr().String()+"/mcp"

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := mcpserver.NewIdentityVerifier(ctx, mcpserver.IdentityOptions{JWKSURL: authzURL + "/.well-known/jwks.json", Issuer: authzURL, Audience: resourceA})
	if err != nil {
		t.Fatal(err)
	}
	mcpSrv := mcpserver.New(mcpserver.WithIdentityVerifier(v))
	ml := listen(t)
	serve(t, ml, mcpSrv)
	upstream, _ := url.Parse("http://" + ml.Addr().String())

	dir, keys := t.TempDir(), t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	rego, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "policies", "authz.rego"))
	if err != nil {
		t.Fatal(err)
	}
	for file, body := range map[string]string{filepath.Join(dir, "authz.rego"): string(rego), filepath.Join(dir, "data.yaml"): policyData([]string{"mcp-client"}, true),
		filepath.Join(keys, "2026-11-30.pem"): string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))} {
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	az := startAuthz(t, fmt.Sprintf(`public_url: %s
resources:
  - {url: %q, identity_assertion: true, scopes_supported: [tools:read, tools:call]}
  - {url: %q, identity_assertion: true, scopes_supported: [tools:read, tools:call]}
issuers: [{discovery_url: %q}]
policy: {paths: [%q]}
identity_assertion: {signing_keys: [%q]}
`, authzURL, resourceA, resourceB, prov.Issuer()+"/.well-known/openid-configuration", dir, keys), gl, hl)
	startStandin(t, al, az, upstream, nil)
	startStandin(t, bl, az, upstream, nil)

	token, err := prov.Mint(map[string]any{"sub": "alice", "aud": []string{resourceA, resourceB}, "client_id": "mcp-client",
		"scope": "tools:read tools:call", "groups": []string{"mcp-users"}})
	if err != nil {
		t.Fatal(err)
	}
	httpClient := &http.Client{Timeout: 15 * time.Second, Transport: bearerTransport{token}}
	connect := func(ctx context.Context, endpoint string) (*mcp.ClientSession, error) {
		client := mcp.NewClient(&mcp.Implementation{Name: "mcp-authz-e2e", Version: "1.0.0"}, nil)
		return client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: httpClient, MaxRetries: -1, DisableStandaloneSSE: true}, nil)
	}

	t.Run("through the proxy", func(t *testing.T) {
		ctx := scenarioCtx(t)
		s, err := connect(ctx, resourceA)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer s.Close()
		before := len(mcpSrv.Records())
		if out, err := callTool(ctx, s, "echo", map[string]any{"message": "verified"}); err != nil || !strings.Contains(out, "verified") {
			t.Fatalf("echo: %q %v", out, err)
		}
		records := mcpSrv.Records()[before:]
		if len(records) == 0 {
			t.Fatal("the MCP server saw no request")
		}
		for _, r := range records {
			if r.Refusal != "" || r.Subject != "alice" || r.Header.Get("Authorization") != "" {
				t.Errorf("record: subject %q, refusal %q, authorization present %v", r.Subject, r.Refusal, r.Header.Get("Authorization") != "")
			}
		}
	})

	t.Run("bypassing the proxy with forged identity headers", func(t *testing.T) {
		req, _ := http.NewRequest("POST", upstream.String()+"/mcp", strings.NewReader(listJSON))
		for k, v := range map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
			"X-Mcp-Subject": "admin", "X-Mcp-Client-Id": "mcp-client", "X-Mcp-Scopes": "tools:read tools:call tools:admin"} {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d (%s), want 401 from the MCP server", resp.StatusCode, body)
		}
		if r := mcpSrv.Records(); r[len(r)-1].Refusal != "no identity assertion" {
			t.Errorf("refusal %q", r[len(r)-1].Refusal)
		}
	})

	t.Run("assertion for another resource", func(t *testing.T) {
		ctx := scenarioCtx(t)
		before := len(mcpSrv.Records())
		if s, err := connect(ctx, resourceB); err == nil {
			s.Close()
			t.Fatal("connected through the route of another resource")
		}
		records := mcpSrv.Records()[before:]
		if len(records) == 0 || !strings.Contains(records[0].Refusal, `"aud" not satisfied`) {
			t.Fatalf("records %+v, want the MCP server to refuse the audience", records)
		}
	})
}
