package authz

import "testing"

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
