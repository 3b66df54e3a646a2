package authz

import "testing"

func TestHeaderValue(t *testing.T) {
	tests := []struct {
		value string
		ok    bool
	}{
		{"", true},
		{"alice", true},
		{"https://idp.example.com/realms/a b", true},
		{"a\tb", true},
		{"José Müller", true},
		{"eve\r\nX-Injected: yes", false},
		{"eve\nX-Injected: yes", false},
		{"eve\r", false},
		{"eve\x00", false},
		{"eve\x01", false},
		{"eve\x7f", false},
		{" alice", false},
		{"alice ", false},
		{"\talice", false},
		{"alice\t", false},
		{"caf\xe9", false},
	}
	for _, tc := range tests {
		if got := headerValue(tc.value); got != tc.ok {
			t.Errorf("headerValue(%q) = %v, want %v", tc.value, got, tc.ok)
		}
	}
}

func TestSafeHeader(t *testing.T) {
	tests := []struct {
		name, value string
		ok          bool
	}{
		{"x-tenant", "acme", true},
		{"x-tenant", "", true},
		{"x-tenant", "acme\r\nx-admin: yes", false},
		{"x-tenant", "acme\x00", false},
		{"x-tenant", "acme\x7f", false},
		{"x-tenant", " acme", false},
		{"x-tenant", "caf\xe9", false},
		{"authorization", "Bearer x", false},
		{"cookie", "a=b", false},
		{"transfer-encoding", "chunked", false},
		{":authority", "evil", false},
		{"proxy-authorization", "Basic x", false},
		{"keep-alive", "x", false},
		{"content-type", "text/plain", false},
		{"x-envoy-auth-headers-to-remove", "x-mcp-identity", false},
		{"", "x", false},
		{"x tenant", "x", false},
		{"x-tenant:", "x", false},
		{"x-tenant\r\nx-admin", "x", false},
		{"x-tenänt", "x", false},
		{"x-(tenant)", "x", false},
	}
	for _, tc := range tests {
		if got := safeHeader(tc.name, tc.value); got != tc.ok {
			t.Errorf("safeHeader(%q, %q) = %v, want %v", tc.name, tc.value, got, tc.ok)
		}
	}
}
