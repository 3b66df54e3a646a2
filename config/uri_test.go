package config

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
		if got := CanonicalURI(tc.in); got != tc.want {
			t.Errorf("CanonicalURI(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
