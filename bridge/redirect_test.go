package bridge

import (
	"errors"
	"testing"
)

func TestRedirectPolicy(t *testing.T) {
	p := newRedirectPolicy([]string{"https://claude.ai/api/mcp/auth_callback", "cursor://anysphere.cursor-retrieval/oauth/callback"}, true)
	noLoopback := newRedirectPolicy([]string{"https://claude.ai/api/mcp/auth_callback"}, false)
	tests := []struct {
		name string
		p    redirectPolicy
		uri  string
		ok   bool
	}{
		{"listed https", p, "https://claude.ai/api/mcp/auth_callback", true},
		{"listed private-use scheme", p, "cursor://anysphere.cursor-retrieval/oauth/callback", true},
		{"loopback IPv4 any port", p, "http://127.0.0.1:53123/callback", true},
		{"loopback IPv6", p, "http://[::1]:9000/cb", true},
		{"localhost", p, "http://localhost:3334/oauth/callback", true},
		{"loopback off", noLoopback, "http://127.0.0.1:53123/callback", false},
		{"unlisted https", p, "https://evil.example/cb", false},
		{"listed but other path", p, "https://claude.ai/api/mcp/auth_callback/x", false},
		{"listed with query added", p, "https://claude.ai/api/mcp/auth_callback?x=1", false},
		{"http not loopback", p, "http://claude.ai/api/mcp/auth_callback", false},
		{"fragment", p, "http://127.0.0.1:1/cb#x", false},
		{"user info", p, "http://user@127.0.0.1:1/cb", false},
		{"javascript", p, "javascript:alert(1)", false},
		{"relative", p, "/cb", false},
		{"loopback lookalike", p, "http://127.0.0.1.evil.example/cb", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.allows(tt.uri)
			if (err == nil) != tt.ok {
				t.Fatalf("allows(%q) = %v, want ok %v", tt.uri, err, tt.ok)
			}
		})
	}
	if err := p.allows("https://evil.example/cb"); !errors.Is(err, errRedirectNotAllowed) {
		t.Errorf("unlisted: %v, want errRedirectNotAllowed", err)
	}
}

func TestRegisteredMatch(t *testing.T) {
	reg := []string{"http://127.0.0.1/callback", "http://localhost:8080/cb", "https://app.example/cb"}
	tests := []struct {
		uri string
		ok  bool
	}{
		{"https://app.example/cb", true},
		{"http://127.0.0.1:51000/callback", true}, // RFC 8252: any port
		{"http://127.0.0.1/callback", true},
		{"http://localhost:9999/cb", true},
		{"http://127.0.0.1:51000/other", false},
		{"http://[::1]:51000/callback", false}, // another host than registered
		{"https://app.example/cb2", false},
		{"https://app.example:8443/cb", false}, // port variance is for loopback only
		{"http://127.0.0.1:51000/callback?x=1", false},
	}
	for _, tt := range tests {
		if got := registeredMatch(reg, tt.uri); got != tt.ok {
			t.Errorf("registeredMatch(%q) = %v, want %v", tt.uri, got, tt.ok)
		}
	}
}

// TestSameResource: a resource parameter names a configured resource as a token's audience would, by the
// verifier's rule (config.CanonicalURI): the next hop and the bridge agree on what is the same resource.
func TestSameResource(t *testing.T) {
	const configured = "https://mcp.example.com/mcp"
	for _, tc := range []struct {
		given string
		same  bool
	}{
		{"https://mcp.example.com/mcp", true},
		{"HTTPS://MCP.Example.com/mcp", true},
		{"https://mcp.example.com:443/mcp", true},
		{"https://mcp.example.com/mcp/", false},
		{"https://mcp.example.com/MCP", false},
		{"https://mcp.example.com/mcp#x", false},
		{"https://mcp.example.com/mcp?x=1", false},
		{"http://mcp.example.com/mcp", false},
	} {
		if got := sameResource(configured, tc.given); got != tc.same {
			t.Errorf("sameResource(%q) = %v, want %v", tc.given, got, tc.same)
		}
	}
}
