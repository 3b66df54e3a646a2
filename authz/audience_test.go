package authz

import "testing"

func TestCanonicalURI(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://mcp.example.com/mcp", "https://mcp.example.com/mcp"},
		{"HTTPS://MCP.Example.COM/mcp", "https://mcp.example.com/mcp"},
		{"HTTP://H:8000/MCP", "http://h:8000/MCP"}, // the path stays exact
		{"https://h/mcp/", "https://h/mcp/"},
		{"https://H", "https://h"},
		{"https://h:443/mcp", "https://h/mcp"},
		{"HTTP://h:80/mcp", "http://h/mcp"},
		{"https://h:8443/mcp", "https://h:8443/mcp"},
		{"api://default", "api://default"},
		{"urn:x:y", "urn:x:y"},
		{"https://user@H/x", "https://user@H/x"},
	}
	for _, tc := range tests {
		if got := canonicalURI(tc.in); got != tc.want {
			t.Errorf("canonicalURI(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestAudienceCanonical: a token naming the resource with an uppercase scheme or host is for that
// resource; another path, a trailing slash, or another host is not.
func TestAudienceCanonical(t *testing.T) {
	r, err := newResource(resourceConfig("https://MCP.example.com/mcp"))
	if err != nil {
		t.Fatal(err)
	}
	issuer := &trustedIssuer{}
	tests := []struct {
		aud  string
		want bool
	}{
		{"https://mcp.example.com/mcp", true},
		{"HTTPS://MCP.EXAMPLE.COM/mcp", true},
		{"https://MCP.example.com/mcp", true},
		{"https://mcp.example.com:443/mcp", true},
		{"https://mcp.example.com/MCP", false},
		{"https://mcp.example.com/mcp/", false},
		{"https://other.example.com/mcp", false},
	}
	for _, tc := range tests {
		err := issuer.checkAudience([]string{tc.aud}, "", r.audiences)
		if (err == nil) != tc.want {
			t.Errorf("aud %q: %v, want accepted=%v", tc.aud, err, tc.want)
		}
	}
}
