package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/test/envoystandin"
	"github.com/mcp-authz/mcp-authz/test/idp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestMCPRequestHeaders runs the MCP Go SDK client at 2026-07-28 (it sends Mcp-Method, Mcp-Name and
// MCP-Protocol-Version) and at 2025-11-25 (it sends none) against the example server (MCP Go SDK, which
// validates the headers of 2026-07-28 requests), through the Envoy stand-in with and without the body and
// through nginx (headers only), all in front of resources with trust_mcp_headers and a tool rule. A hand-made client
// whose headers lie about its body is refused by mcp-authz where it sees the body, and by the MCP server
// where it does not.
func TestMCPRequestHeaders(t *testing.T) {
	nginxBin := lookProgram("nginx", "/usr/sbin/nginx")
	if nginxBin == "" {
		missing(t, "nginx not found (apt-get install -y nginx)")
	}
	il := listen(t)
	prov, err := idp.New("http://" + il.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	serve(t, il, prov.Handler())
	mcpSrv, upstream := startMCPServer(t)
	sl, nl := listen(t), listen(t)
	nginxPort := freePort(t)
	standin := "http://" + sl.Addr().String() + "/mcp"
	nobody := "http://" + nl.Addr().String() + "/mcp"
	nginx := fmt.Sprintf("http://127.0.0.1:%d/mcp", nginxPort)

	dir := t.TempDir()
	rego, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "policies", "authz.rego"))
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"authz.rego": string(rego), "data.yaml": policyData([]string{"mcp-client"}, true)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	yaml := fmt.Sprintf(`resources:
  - {url: %q, trust_mcp_headers: true, scopes_supported: [tools:read, tools:call]}
  - {url: %q, trust_mcp_headers: true, scopes_supported: [tools:read, tools:call]}
  - {url: %q, trust_mcp_headers: true, scopes_supported: [tools:read, tools:call]}
issuers: [{discovery_url: %q}]
policy: {paths: [%q]}
`, standin, nobody, nginx, prov.Issuer()+"/.well-known/openid-configuration", dir)
	startStandin(t, sl, startAuthz(t, yaml, listen(t), listen(t)), upstream, nil)
	az := startAuthz(t, yaml, listen(t), listen(t))
	meta, _ := url.Parse(az.httpURL)
	serve(t, nl, envoystandin.New(az.client, []envoystandin.Route{
		{Prefix: "/", Upstream: upstream},
		{Prefix: "/.well-known/oauth-protected-resource", Upstream: meta, CheckDisabled: true},
	}, envoystandin.Options{StatusOnError: http.StatusServiceUnavailable, WithoutBody: true}))
	startNginx(t, nginxBin, nginxPort, startAuthz(t, yaml, listen(t), listen(t)).httpURL, upstream.String())

	token, err := prov.Mint(map[string]any{"sub": "alice", "aud": []string{standin, nobody, nginx}, "client_id": "mcp-client",
		"scope": "tools:read tools:call", "groups": []string{"mcp-users"}})
	if err != nil {
		t.Fatal(err)
	}
	httpClient := &http.Client{Timeout: 15 * time.Second, Transport: bearerTransport{token}}

	for _, tc := range []struct {
		proxy, endpoint, version string
		connects                 bool // false: refused, as a body-less request that says nothing trustable
	}{
		{"envoy stand-in (body)", standin, "2026-07-28", true},
		{"envoy stand-in (body)", standin, "2025-11-25", true},
		{"envoy stand-in (no body)", nobody, "2026-07-28", true},
		{"envoy stand-in (no body)", nobody, "2025-11-25", false},
		{"nginx (headers only)", nginx, "2026-07-28", true},
		{"nginx (headers only)", nginx, "2025-11-25", false},
	} {
		t.Run(tc.proxy+"/"+tc.version, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			client := mcp.NewClient(&mcp.Implementation{Name: "mcp-authz-e2e", Version: "1.0.0"}, nil)
			s, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: tc.endpoint, HTTPClient: httpClient, MaxRetries: -1, DisableStandaloneSSE: true},
				&mcp.ClientSessionOptions{ProtocolVersion: tc.version})
			if !tc.connects {
				if err == nil {
					s.Close()
					t.Fatal("connected: a 2025-11-25 client behind a proxy that sends no body must be refused while tool rules exist")
				}
				return
			}
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer s.Close()
			if got := s.InitializeResult().ProtocolVersion; got != tc.version {
				t.Fatalf("negotiated %s, want %s", got, tc.version)
			}
			if out, err := callTool(ctx, s, "echo", map[string]any{"message": "hi"}); err != nil || !strings.Contains(out, "hi") {
				t.Errorf("echo: %q %v", out, err)
			}
			resets := mcpSrv.Resets()
			if out, err := callTool(ctx, s, "admin_reset", nil); err == nil {
				t.Errorf("admin_reset without tools:admin ran: %s", out)
			}
			if mcpSrv.Resets() != resets {
				t.Error("admin_reset reached the MCP server")
			}
		})
	}

	// The lying client: its headers name echo, its body calls admin_reset.
	lie := `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"admin_reset","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`
	for _, tc := range []struct {
		proxy, endpoint, refusedBy string
	}{
		{"envoy stand-in (body)", standin, "mcp-authz"},
		{"envoy stand-in (no body)", nobody, "the MCP server"},
		{"nginx (headers only)", nginx, "the MCP server"},
	} {
		t.Run("lying headers/"+tc.proxy, func(t *testing.T) {
			resets := mcpSrv.Resets()
			req, _ := http.NewRequest("POST", tc.endpoint, strings.NewReader(lie))
			for k, v := range map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
				"Authorization": "Bearer " + token, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "echo"} {
				req.Header.Set(k, v)
			}
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d (%s), want 400 from %s", resp.StatusCode, body, tc.refusedBy)
			}
			if tc.refusedBy == "mcp-authz" && !strings.Contains(string(body), "-32020") {
				t.Errorf("body %s, want mcp-authz's HeaderMismatch (-32020)", body)
			}
			if mcpSrv.Resets() != resets {
				t.Error("admin_reset ran")
			}
		})
	}
}

// bearerTransport adds a fixed bearer token to every request.
type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}
