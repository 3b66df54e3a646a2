package service_test

import (
	"encoding/json"
	"fmt"
	"testing"
)

// TestMCPRequestHeaders sends MCP 2026-07-28 requests shaped as Envoy sends them, through both transports:
// with the body, headers that disagree with it get 400 and JSON-RPC HeaderMismatch (-32020) echoing the id;
// without it, a resource with trust_mcp_headers decides the tool rules on the headers, and one without
// keeps refusing a body-less POST when tool rules exist.
func TestMCPRequestHeaders(t *testing.T) {
	idp := startIdP(t)
	inst := startService(t, fmt.Sprintf(`
resources:
  - url: %s
    trust_mcp_headers: true
    scopes_supported: [tools:read, tools:call, tools:admin]
  - url: %s
issuers: [{discovery_url: %q}]
policy: {paths: [%q]}
`, resourceURL, publicURL, idp.Issuer()+"/.well-known/openid-configuration", policyDir(t, testData, nil)), true)
	tokens := map[string]map[string]string{
		resourceURL: bearer(mint(t, idp, userClaims(nil))),
		publicURL:   bearer(mint(t, idp, userClaims(map[string]any{"aud": publicURL}))),
	}
	paths := map[string]string{resourceURL: "/mcp", publicURL: "/public/mcp"}
	const v = "2026-07-28"
	withHeaders := func(resource string, extra map[string]string) map[string]string {
		h := map[string]string{}
		for k, x := range tokens[resource] {
			h[k] = x
		}
		for k, x := range extra {
			h[k] = x
		}
		return h
	}
	call := func(tool string) string {
		return `{"jsonrpc":"2.0","id":"c-9","method":"tools/call","params":{"name":"` + tool + `","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"` + v + `"}}}`
	}
	tests := []struct {
		name     string
		resource string
		headers  map[string]string
		body     string
		status   int // 200: allowed
		rpcCode  int
	}{
		{"agreeing headers and body", resourceURL, map[string]string{"mcp-protocol-version": v, "mcp-method": "tools/call", "mcp-name": "echo"}, call("echo"), 200, 0},
		{"lying Mcp-Name hides the restricted tool", resourceURL, map[string]string{"mcp-protocol-version": v, "mcp-method": "tools/call", "mcp-name": "echo"}, call("admin_reset"), 400, -32020},
		{"lying Mcp-Method", resourceURL, map[string]string{"mcp-protocol-version": v, "mcp-method": "tools/list"}, call("admin_reset"), 400, -32020},
		{"2026-07-28 body without its headers", resourceURL, map[string]string{"mcp-protocol-version": v}, call("echo"), 400, -32020},
		{"headers only, trusted: allowed tool", resourceURL, map[string]string{"mcp-protocol-version": v, "mcp-method": "tools/call", "mcp-name": "echo"}, "", 200, 0},
		{"headers only, trusted: restricted tool steps up", resourceURL, map[string]string{"mcp-protocol-version": v, "mcp-method": "tools/call", "mcp-name": "admin_reset"}, "", 403, -32001},
		{"headers only, trusted, older version: no message", resourceURL, map[string]string{"mcp-protocol-version": "2025-11-25", "mcp-method": "tools/call", "mcp-name": "echo"}, "", 403, -32001},
		{"headers only, not trusted", publicURL, map[string]string{"mcp-protocol-version": v, "mcp-method": "tools/call", "mcp-name": "echo"}, "", 403, -32001},
	}
	for _, tr := range transports() {
		t.Run(tr.name, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					req := checkRequest(withHeaders(tc.resource, tc.headers), paths[tc.resource], tc.body)
					req.Attributes.ContextExtensions = map[string]string{"resource": tc.resource}
					o := tr.check(t, inst, req)
					if tc.status == 200 {
						if !o.allowed {
							t.Fatalf("want an allow, got %d %s", o.status, o.body)
						}
						return
					}
					if o.allowed || o.status != tc.status {
						t.Fatalf("allowed %v status %d (%s), want %d", o.allowed, o.status, o.body, tc.status)
					}
					var body struct {
						ID    json.RawMessage    `json:"id"`
						Error struct{ Code int } `json:"error"`
					}
					if err := json.Unmarshal([]byte(o.body), &body); err != nil || body.Error.Code != tc.rpcCode {
						t.Errorf("body %s: want JSON-RPC error %d", o.body, tc.rpcCode)
					}
					if tc.rpcCode == -32020 && string(body.ID) != `"c-9"` {
						t.Errorf("HeaderMismatch id %s, want the request's", body.ID)
					}
				})
			}
		})
	}
}
