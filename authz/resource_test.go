package authz

import (
	"testing"

	"github.com/mcp-authz/mcp-authz/config"
)

func resourceConfig(url string) config.Resource {
	return config.Resource{URL: url, AuthorizationServers: []string{"https://idp"}}
}

func TestResourceForRequest(t *testing.T) {
	rs, err := newResources(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"https://mcp.example.com/mcp", "https://mcp.example.com/mcp/admin", "https://other.example.com:8443/", "http://local:80/x/"} {
		r, err := newResource(resourceConfig(u))
		if err != nil {
			t.Fatal(err)
		}
		rs.list = append(rs.list, r)
		rs.byName[u] = r
	}
	tests := []struct {
		host, path, scheme, named string
		want                      string // "" = no match
	}{
		{host: "mcp.example.com", path: "/mcp", scheme: "https", want: "https://mcp.example.com/mcp"},
		{host: "MCP.example.com:443", path: "/mcp/tools?x=1", scheme: "https", want: "https://mcp.example.com/mcp"},
		{host: "mcp.example.com", path: "/mcp/admin/x", scheme: "https", want: "https://mcp.example.com/mcp/admin"},
		{host: "mcp.example.com", path: "/mcpx", scheme: "https"},
		{host: "mcp.example.com", path: "/", scheme: "https"},
		{host: "evil.example.com", path: "/mcp", scheme: "https"},
		{host: "other.example.com:8443", path: "/anything", scheme: "https", want: "https://other.example.com:8443/"},
		{host: "local", path: "/x", scheme: "http", want: "http://local:80/x/"},
		{host: "other.example.com", path: "/anything", scheme: "https", want: "https://other.example.com:8443/"},
		{host: "mcp.example.com:8443", path: "/mcp", scheme: "https", want: "https://mcp.example.com/mcp"},
		{host: "evil.example.com", path: "/", named: "https://mcp.example.com/mcp", want: "https://mcp.example.com/mcp"},
		{host: "mcp.example.com", path: "/mcp", named: "unknown"},
	}
	for _, tc := range tests {
		r, err := rs.forRequest(&Request{Host: tc.host, Path: tc.path, Scheme: tc.scheme, Resource: tc.named})
		got := ""
		if err == nil {
			got = r.cfg.URL
		}
		if got != tc.want {
			t.Errorf("%s %s %s (named %q): got %q (%v), want %q", tc.scheme, tc.host, tc.path, tc.named, got, err, tc.want)
		}
	}
}

func TestMetadataURL(t *testing.T) {
	tests := []struct{ url, path, metadata string }{
		{"https://h/mcp", "/.well-known/oauth-protected-resource/mcp", "https://h/.well-known/oauth-protected-resource/mcp"},
		{"https://h/public/mcp/", "/.well-known/oauth-protected-resource/public/mcp", "https://h/.well-known/oauth-protected-resource/public/mcp"},
		{"https://h", "/.well-known/oauth-protected-resource", "https://h/.well-known/oauth-protected-resource"},
		{"https://h:8443/", "/.well-known/oauth-protected-resource", "https://h:8443/.well-known/oauth-protected-resource"},
	}
	for _, tc := range tests {
		r, err := newResource(resourceConfig(tc.url))
		if err != nil {
			t.Fatal(err)
		}
		if r.metadataPath != tc.path || r.metadataURL != tc.metadata {
			t.Errorf("%s: path %q url %q, want %q %q", tc.url, r.metadataPath, r.metadataURL, tc.path, tc.metadata)
		}
	}
}
