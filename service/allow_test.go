package service_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/service"
	"github.com/mcp-authz/mcp-authz/test/idp"
)

type allowed struct {
	headers map[string]string // headers set upstream
	removed []string          // headers removed, in any order
}

func TestAllow(t *testing.T) {
	e := newEnv(t)
	spoofed := map[string]string{"x-mcp-email": "ceo@example.com", "x-mcp-subject": "root"}
	tests := []struct {
		name    string
		headers map[string]string
		body    string
		want    allowed
	}{
		{
			name:    "standard token, tools/list",
			headers: bearer(mint(t, e.std, userClaims(map[string]any{"email_verified": true}))),
			body:    listTools,
			want: allowed{
				headers: map[string]string{"x-mcp-subject": "alice", "x-mcp-client-id": "mcp-client", "x-mcp-scopes": "tools:read tools:call", "x-mcp-issuer": e.std.Issuer(), "x-mcp-email": "alice@example.com"},
				removed: []string{"authorization"},
			},
		},
		{
			name:    "client-sent identity headers are overwritten or removed",
			headers: merge(bearer(mint(t, e.std, userClaims(map[string]any{"email": nil}))), spoofed),
			body:    callTool("echo"),
			want: allowed{
				headers: map[string]string{"x-mcp-subject": "alice", "x-mcp-client-id": "mcp-client", "x-mcp-scopes": "tools:read tools:call", "x-mcp-issuer": e.std.Issuer()},
				removed: []string{"authorization", "x-mcp-email"},
			},
		},
		{
			name:    "unverified email is not sent",
			headers: merge(bearer(mint(t, e.std, userClaims(nil))), spoofed),
			body:    listTools,
			want: allowed{
				headers: map[string]string{"x-mcp-subject": "alice", "x-mcp-client-id": "mcp-client"},
				removed: []string{"authorization", "x-mcp-email"},
			},
		},
		{
			name:    "admin tool with its scope",
			headers: bearer(mint(t, e.std, userClaims(map[string]any{"scope": "tools:call tools:admin"}))),
			body:    callTool("admin_reset"),
			want: allowed{
				headers: map[string]string{"x-mcp-subject": "alice", "x-mcp-scopes": "tools:call tools:admin"},
				removed: []string{"authorization"},
			},
		},
		{
			name:    "okta shape: cid and scp",
			headers: bearer(mint(t, e.okta, map[string]any{"sub": "carol", "aud": "api://default", "cid": "okta-client", "scp": []string{"tools:read", "openid"}}, idp.WithType("JWT"))),
			body:    listTools,
			want: allowed{
				headers: map[string]string{"x-mcp-subject": "carol", "x-mcp-client-id": "okta-client", "x-mcp-scopes": "tools:read openid", "x-mcp-issuer": e.okta.Issuer()},
				removed: []string{"authorization", "x-mcp-email"},
			},
		},
		{
			name:    "cognito shape: client_id, scope string, no aud",
			headers: bearer(mint(t, e.cognito, map[string]any{"sub": "dave", "client_id": "cognito-client", "scope": "tools:call", "token_use": "access"}, idp.WithType(""))),
			body:    listTools,
			want: allowed{
				headers: map[string]string{"x-mcp-subject": "dave", "x-mcp-client-id": "cognito-client", "x-mcp-scopes": "tools:call"},
				removed: []string{"authorization", "x-mcp-email"},
			},
		},
		{
			name:    "GET stream without body",
			headers: merge(bearer(mint(t, e.std, userClaims(nil))), map[string]string{":method": "GET", "content-type": ""}),
			want:    allowed{headers: map[string]string{"x-mcp-subject": "alice"}, removed: []string{"authorization"}},
		},
	}
	for _, tr := range transports() {
		t.Run(tr.name, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					req := checkRequest(tc.headers, "/mcp", tc.body)
					if tc.body == "" {
						req.Attributes.Request.Http.Method = "GET"
					}
					assertAllowed(t, tr.check(t, e.inst, req), tc.want)
				})
			}
		})
	}
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// assertAllowed checks an allow: the identity headers set upstream (and no other header), the headers
// removed, and over gRPC the dynamic metadata.
func assertAllowed(t *testing.T, o outcome, want allowed) {
	t.Helper()
	if !o.allowed || o.status != 200 {
		t.Fatalf("want an allow, got %+v", o)
	}
	got := o.headers
	for name := range got {
		if !strings.HasPrefix(name, "x-mcp-") {
			t.Errorf("allow sets header %s, which is not an identity header", name)
		}
	}
	for k, v := range want.headers {
		if got[k] != v {
			t.Errorf("header %s = %q, want %q", k, got[k], v)
		}
	}
	if _, ok := got["authorization"]; ok {
		t.Error("authorization is set upstream")
	}
	removed := slices.Clone(o.removed)
	for _, name := range want.removed {
		if !slices.Contains(removed, name) {
			t.Errorf("headers_to_remove %v lacks %s", removed, name)
		}
	}
	for _, name := range removed {
		if _, set := got[name]; set {
			t.Errorf("%s is both set and removed", name)
		}
	}
	if o.metadata == nil { // HTTP mode has no dynamic metadata
		return
	}
	md := o.metadata
	if md["sub"] != want.headers["x-mcp-subject"] {
		t.Errorf("dynamic metadata sub = %v", md["sub"])
	}
	if _, ok := md["scopes"].([]any); !ok || md["iss"] == nil || md["client_id"] != o.headers["x-mcp-client-id"] || md["resource"] == nil {
		t.Errorf("dynamic metadata lacks the identity or the resource: %v", md)
	}
	if _, ok := md["claims"]; ok {
		t.Errorf("dynamic metadata has the claims, which dynamic_metadata.claims (default false) leaves out: %v", md)
	}
}

// TestKeyRotation: a token signed by a key the IdP publishes after start-up is accepted once the JWKS is
// refetched on the unknown kid; a kid the IdP never published stays refused.
func TestKeyRotation(t *testing.T) {
	e := newEnv(t)
	before := e.std.JWKSFetches()
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		if _, err := e.std.RotateKey(alg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // past min_refresh_interval (1ms)
		for _, tr := range transports() {
			o := tr.check(t, e.inst, checkRequest(bearer(mint(t, e.std, userClaims(nil))), "/mcp", listTools))
			assertAllowed(t, o, allowed{headers: map[string]string{"x-mcp-subject": "alice"}, removed: []string{"authorization"}})
		}
	}
	if got := e.std.JWKSFetches() - before; got < 3 {
		t.Errorf("JWKS fetched %d times after three rotations, want at least 3", got)
	}
}

// TestIdPDown: tokens keep working from cached keys while the IdP is down; a new kid cannot be found.
func TestIdPDown(t *testing.T) {
	e := newEnv(t)
	tok := mint(t, e.std, userClaims(nil))
	e.std.SetDown(true)
	for _, tr := range transports() {
		t.Run(tr.name, func(t *testing.T) {
			assertAllowed(t, tr.check(t, e.inst, checkRequest(bearer(tok), "/mcp", listTools)), allowed{headers: map[string]string{"x-mcp-subject": "alice"}})
			o := tr.check(t, e.inst, checkRequest(bearer(mint(t, e.std, userClaims(nil), idp.WithKID("rotated-while-down"))), "/mcp", listTools))
			assertDenied(t, o, denial{status: 401, errorCode: "invalid_token", description: "unknown signing key"})
		})
	}
}

// TestKeysUnavailable: an IdP never reached gives an error response (gRPC error_response UNAVAILABLE, HTTP
// 503), not an allow and not a 401, and the service is not ready.
func TestKeysUnavailable(t *testing.T) {
	p := startIdP(t)
	p.SetDown(true)
	inst := startService(t, fmt.Sprintf(`
resources: [{url: %s}]
issuers: [{discovery_url: %s/.well-known/openid-configuration}]
policy: {paths: [%s]}
`, resourceURL, p.Issuer(), policyDir(t, testData, nil)), false)
	for _, tr := range transports() {
		t.Run(tr.name, func(t *testing.T) {
			o := tr.check(t, inst, checkRequest(bearer(mint(t, p, userClaims(nil))), "/mcp", listTools))
			if !o.unavailable || o.allowed {
				t.Fatalf("want an unavailable error, got %+v", o)
			}
			if o.status != 503 || !strings.Contains(o.body, "unavailable") {
				t.Errorf("error response = %+v", o)
			}
		})
	}
	status, body := get(t, inst.http+"/readyz")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "not loaded") {
		t.Errorf("/readyz = %d %s", status, body)
	}
	if status, _ := get(t, inst.http+"/healthz"); status != http.StatusOK {
		t.Errorf("/healthz = %d", status)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestProtectedResourceMetadata(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		path, want string
		status     int
	}{
		{"/.well-known/oauth-protected-resource/mcp", `{"resource":"https://mcp.example.com/mcp","authorization_servers":[%q,%q,%q],"scopes_supported":["tools:read","tools:call","tools:admin"],"bearer_methods_supported":["header"],"resource_name":"tools"}`, 200},
		{"/.well-known/oauth-protected-resource/public/mcp", `{"resource":"https://mcp.example.com/public/mcp","authorization_servers":[%q,%q,%q],"bearer_methods_supported":["header"]}`, 200},
		{"/.well-known/oauth-protected-resource", `{"resource":"https://mcp.example.com/mcp","authorization_servers":[%q,%q,%q],"scopes_supported":["tools:read","tools:call","tools:admin"],"bearer_methods_supported":["header"],"resource_name":"tools"}`, 200},
		{"/.well-known/oauth-protected-resource/other", "", 404},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := http.Get(e.inst.http + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status != 200 {
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content-type %q", ct)
			}
			want := fmt.Sprintf(tc.want, e.std.Issuer(), e.okta.Issuer(), e.cognito.Issuer())
			if string(b) != want {
				t.Errorf("document\n got %s\nwant %s", b, want)
			}
		})
	}
}

// TestStartupErrors: broken policies and bad configuration stop start-up with a message naming the file
// and line, or the field.
func TestStartupErrors(t *testing.T) {
	p := startIdP(t)
	tests := []struct {
		name, rego, config, want string
	}{
		{name: "rego syntax error", rego: "package mcp.authz\n\ndecision := {\"allow\": true\n", want: "broken.rego:4"},
		{name: "rego type error", rego: "package mcp.authz\nimport rego.v1\n\nx := 1 + \"a\"\n", want: "broken.rego:4"},
		{name: "unknown config field", config: "resources: [{url: https://a/mcp, urll: x}]", want: `unknown field "resources[0].urll"`},
		{name: "resource without url", config: "resources: [{name: x}]", want: "resources[0].url"},
		{name: "symmetric algorithm", config: "resources: [{url: https://a/mcp}]\nissuers: [{discovery_url: https://i/.well-known/openid-configuration, algorithms: [HS256]}]\npolicy: {paths: [/]}", want: "issuers[0].algorithms[0]"},
		{name: "missing policy path", config: "resources: [{url: https://a/mcp}]\nissuers: [{discovery_url: https://i/.well-known/openid-configuration}]\npolicy: {paths: [/nonexistent]}", want: "policy.paths[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			yaml := tc.config
			if yaml == "" {
				dir := policyDir(t, testData, map[string]string{"broken.rego": tc.rego})
				yaml = fmt.Sprintf("resources: [{url: %s}]\nissuers: [{discovery_url: %s/.well-known/openid-configuration}]\npolicy: {paths: [%s]}\n", resourceURL, p.Issuer(), dir)
			}
			cfg, err := config.Parse([]byte(yaml))
			if err == nil {
				_, err = service.New(context.Background(), cfg, discardLogger())
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}
