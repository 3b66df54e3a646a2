package authz

import "testing"

func TestRedactTokens(t *testing.T) {
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
	tests := []struct{ in, want string }{
		{"allowed", "allowed"},
		{"invalid_token: token expired", "invalid_token: token expired"},
		{"signing keys of https://idp.example.com/oauth2 unavailable", "signing keys of https://idp.example.com/oauth2 unavailable"},
		{"policy deny: saw " + jwt, "policy deny: saw [redacted]"},
		{"Bearer " + jwt + ", more", "Bearer [redacted], more"},
		{"JWE eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", "JWE [redacted]"},
		{"version 1.2.3", "version 1.2.3"},
	}
	for _, tc := range tests {
		if got := redactTokens(tc.in); got != tc.want {
			t.Errorf("redactTokens(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
