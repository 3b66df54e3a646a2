package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func bridgeBase(t *testing.T) string {
	t.Helper()
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte(strings.Repeat("k", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	return `public_url: https://authz.example.com
resources: [{url: "https://m/mcp"}, {url: "https://n/mcp"}]
issuers:
  - discovery_url: "https://i/.well-known/openid-configuration"
    bridge: {client_id: abc}
  - discovery_url: "https://j/.well-known/openid-configuration"
policy: {paths: ["."]}
bridge:
  sealing_keys: [` + key + `]
`
}

func TestBridgeDefaults(t *testing.T) {
	c, err := Parse([]byte(bridgeBase(t)))
	if err != nil {
		t.Fatal(err)
	}
	b, ib := c.Bridge, c.Issuers[0].Bridge
	if !b.LoopbackRedirects() || b.Consent() != 720*time.Hour || b.CIMD.MaxBytes != 16384 ||
		time.Duration(b.CIMD.Timeout) != 5*time.Second || b.CIMD.AllowPrivateNetworks || b.CIMD.AllowHTTPLoopback {
		t.Errorf("bridge defaults %+v", b)
	}
	// 0s is kept: ask every time (only an absent consent_ttl takes the default).
	if c, err := Parse([]byte(bridgeBase(t) + "  consent_ttl: 0s\n")); err != nil {
		t.Error(err)
	} else if c.Bridge.Consent() != 0 {
		t.Errorf("consent_ttl: 0s reads as %v, want 0 (ask every time)", c.Bridge.Consent())
	}
	if ib.ID != "default" || ib.Resource != "pass" {
		t.Errorf("issuer bridge defaults %+v", ib)
	}
	// The PRM names the bridge for the bridged issuer, the IdP for the other.
	want := "https://authz.example.com/oauth/default,https://j"
	if got := strings.Join(c.Resources[0].AuthorizationServers, ","); got != want {
		t.Errorf("authorization_servers = %s, want %s", got, want)
	}
	if got := BridgeIssuer(c.PublicURL, c.Issuers[0]); got != "https://authz.example.com/oauth/default" {
		t.Errorf("BridgeIssuer = %s", got)
	}
	if BridgeIssuer(c.PublicURL, c.Issuers[1]) != "" {
		t.Error("unbridged issuer has a bridge issuer")
	}
}

func TestBridgeErrorsNameTheField(t *testing.T) {
	tests := []struct{ name, old, new, want string }{
		{"no top-level block", "bridge:\n  sealing_keys:", "other:\n  sealing_keys:", `unknown field "other"`},
		{"no sealing keys", "sealing_keys: [", "sealing_keys: [] #", "bridge.sealing_keys"},
		{"missing key file", "sealing_keys: [", "sealing_keys: [/nonexistent/key, ", "bridge.sealing_keys[0]"},
		{"bad id", "{client_id: abc}", "{client_id: abc, id: Okta_1}", "issuers[0].bridge.id"},
		{"no client id", "{client_id: abc}", "{id: x}", "issuers[0].bridge.client_id"},
		{"bad resource mode", "{client_id: abc}", "{client_id: abc, resource: keep}", "issuers[0].bridge.resource"},
		{"audience without audience mode", "{client_id: abc}", "{client_id: abc, audience: x}", "issuers[0].bridge.audience"},
		{"reserved authorize param", "{client_id: abc}", "{client_id: abc, authorize_params: {redirect_uri: x}}", "issuers[0].bridge.authorize_params.redirect_uri"},
		{"bad extra scope", "{client_id: abc}", "{client_id: abc, extra_scopes: [\"a b\"]}", "issuers[0].bridge.extra_scopes[0]"},
		{"missing secret file", "{client_id: abc}", "{client_id: abc, client_secret_file: /nonexistent}", "issuers[0].bridge.client_secret_file"},
		{"duplicate id", `- discovery_url: "https://j/.well-known/openid-configuration"`, `- discovery_url: "https://j/.well-known/openid-configuration"` + "\n    bridge: {client_id: x}", "issuers[1].bridge.id"},
		{"http redirect to a remote host", "bridge:\n", "bridge:\n  redirect_uris: [http://app.example/cb]\n", "bridge.redirect_uris[0]"},
		{"javascript redirect", "bridge:\n", "bridge:\n  redirect_uris: [\"javascript:alert(1)\"]\n", "bridge.redirect_uris[0]"},
		{"redirect with fragment", "bridge:\n", "bridge:\n  redirect_uris: [\"https://app.example/cb#x\"]\n", "bridge.redirect_uris[0]"},
		{"tiny CIMD bound", "bridge:\n", "bridge:\n  cimd: {max_bytes: 10}\n", "bridge.cimd.max_bytes"},
		{"long CIMD timeout", "bridge:\n", "bridge:\n  cimd: {timeout: 6s}\n", "bridge.cimd.timeout"},
		{"negative consent ttl", "bridge:\n", "bridge:\n  consent_ttl: -1s\n", "bridge.consent_ttl"},
		{"plain http public url", "public_url: https://authz.example.com", "public_url: http://authz.example.com", "public_url"},
		{"public url under /authz", "public_url: https://authz.example.com", "public_url: https://authz.example.com/authz", "under /authz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := bridgeBase(t)
			if !strings.Contains(y, tt.old) {
				t.Fatalf("base lacks %q", tt.old)
			}
			_, err := Parse([]byte(strings.Replace(y, tt.old, tt.new, 1)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse = %v, want an error naming %s", err, tt.want)
			}
		})
	}
	t.Run("bridge block without a bridged issuer", func(t *testing.T) {
		_, err := Parse([]byte(strings.Replace(bridgeBase(t), "    bridge: {client_id: abc}\n", "", 1)))
		if err == nil || !strings.Contains(err.Error(), "config: bridge: no issuer has a bridge block") {
			t.Fatalf("Parse = %v", err)
		}
	})
	t.Run("bridged issuer without the bridge block", func(t *testing.T) {
		y := bridgeBase(t)
		_, err := Parse([]byte(y[:strings.Index(y, "bridge:\n")]))
		if err == nil || !strings.Contains(err.Error(), "config: bridge: required") {
			t.Fatalf("Parse = %v", err)
		}
	})
}

func TestCheckRedirectURI(t *testing.T) {
	for uri, ok := range map[string]bool{
		"https://claude.ai/api/mcp/auth_callback":   true,
		"http://127.0.0.1:33418/callback":           true,
		"http://[::1]/cb":                           true,
		"http://localhost:8080/cb":                  true,
		"cursor://anysphere.cursor-retrieval/oauth": true,
		"com.example.app:/oauth2redirect":           true,
		"http://example.com/cb":                     false,
		"https:///cb":                               false,
		"/relative":                                 false,
		"data:text/html,x":                          false,
		"javascript://x/%0aalert(1)":                false,
		"file:///etc/passwd":                        false,
		"https://user@example.com/cb":               false,
	} {
		if err := CheckRedirectURI(uri); (err == nil) != ok {
			t.Errorf("CheckRedirectURI(%q) = %v, want ok %v", uri, err, ok)
		}
	}
}
