package service_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestAmbiguousPathsRefused sends, through both transports and with no route naming the resource, paths
// that select the public resource by their prefix but the protected one once normalized (as nginx, Istio
// and many servers normalize): each is refused with 400 before a token is even looked at.
func TestAmbiguousPathsRefused(t *testing.T) {
	e := newEnv(t)
	publicToken := bearer(mint(t, e.std, userClaims(map[string]any{"aud": publicURL})))
	paths := []string{
		"/public/mcp/../../mcp",
		"/public/mcp/%2e%2e/%2e%2e/mcp",
		"/public/mcp/..%2f..%2fmcp",
		"/public/mcp/./../../mcp",
		"/public/mcp/..%5c..%5cmcp",
		"/public/mcp;/../../mcp",
		"/public//mcp",
		"/public/mcp/%2E%2E/%2E%2E/mcp",
	}
	for _, tr := range transports() {
		t.Run(tr.name, func(t *testing.T) {
			control := checkRequest(publicToken, "/public/mcp", listTools)
			control.Attributes.ContextExtensions = nil
			if o := tr.check(t, e.inst, control); !o.allowed {
				t.Fatalf("control request to /public/mcp: %+v", o)
			}
			for _, p := range paths {
				req := checkRequest(publicToken, p, listTools)
				req.Attributes.ContextExtensions = nil
				o := tr.check(t, e.inst, req)
				if o.allowed || o.status != http.StatusBadRequest {
					t.Errorf("%s: allowed %v status %d, want 400", p, o.allowed, o.status)
					continue
				}
				var body struct {
					Error struct{ Message string } `json:"error"`
				}
				if err := json.Unmarshal([]byte(o.body), &body); err != nil || !strings.Contains(body.Error.Message, "ambiguous request path") {
					t.Errorf("%s: body %s", p, o.body)
				}
				if _, ok := o.headers["x-mcp-subject"]; ok {
					t.Errorf("%s: identity header on a refusal", p)
				}
			}
		})
	}
}

// TestForwardAuthFamilies asks /authz in the forward-auth shape as Traefik and Caddy do (X-Forwarded-*),
// with a client that adds the other family to pick the public resource and a GET.
func TestForwardAuthFamilies(t *testing.T) {
	e := newEnv(t)
	token := "Bearer " + mint(t, e.std, userClaims(nil))
	publicToken := "Bearer " + mint(t, e.std, userClaims(map[string]any{"aud": publicURL}))
	tests := []struct {
		name    string
		headers map[string]string
		status  int
	}{
		{"traefik-shaped allow (a GET: no body needed)", map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/mcp", "Authorization": token}, 200},
		{"client adds X-Original-URI to pick the public resource", map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/mcp", "X-Original-Uri": "/public/mcp", "X-Original-Method": "GET", "Authorization": publicToken}, 400},
		{"client adds X-Original-Method only", map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/mcp", "X-Original-Method": "GET", "Authorization": token}, 400},
		{"only the unconfigured family (proxy misconfigured)", map[string]string{"X-Original-Method": "POST", "X-Original-Uri": "/mcp", "Authorization": token}, 500},
		{"ambiguous path described by the proxy", map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/public/mcp/../../mcp", "Authorization": publicToken}, 400},
		{"appended X-Forwarded-Host", map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/mcp", "X-Forwarded-Host": "evil.example.com, mcp.example.com", "Authorization": token}, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", e.inst.http+"/authz", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "mcp.example.com"
			req.Header.Set("X-Forwarded-Proto", "https")
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d (%s)", resp.StatusCode, tc.status, body)
			}
			if tc.status != 200 && resp.Header.Get("X-Mcp-Subject") != "" {
				t.Errorf("identity header on a refusal")
			}
		})
	}
}
