package authz

import (
	"strings"
	"testing"
)

// TestIsB64Token checks the b64token syntax of RFC 6750 on every single byte and on typical tokens.
func TestIsB64Token(t *testing.T) {
	for c := range 256 {
		s := string([]byte{byte(c)})
		want := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c < 128 && strings.IndexByte("-._~+/", byte(c)) >= 0
		if got := isB64Token(s); got != want {
			t.Errorf("isB64Token(%q) = %v, want %v", s, got, want)
		}
		if got := isB64Token("a" + s + "b"); got != want {
			t.Errorf("isB64Token(%q) = %v, want %v", "a"+s+"b", got, want)
		}
	}
	tests := []struct {
		token string
		want  bool
	}{
		{"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln-_", true},
		{"abc==", true},
		{"abc=", true},
		{"=", false},
		{"", false},
		{"ab=c", false},
		{"abc==x", false},
		{"a b", false},
		{"abc\u00e9", false},
		{"tok/en+~.", true},
	}
	for _, tc := range tests {
		if got := isB64Token(tc.token); got != tc.want {
			t.Errorf("isB64Token(%q) = %v, want %v", tc.token, got, tc.want)
		}
	}
}
