package authz

import (
	"strings"
	"testing"
)

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		headers map[string]string
		body    string
		want    string
		wantErr string // substring of the invalid_request description; "" = no error
	}{
		{name: "no credentials", path: "/mcp"},
		{name: "bearer", path: "/mcp", headers: map[string]string{"authorization": "Bearer abc.def.ghi"}, want: "abc.def.ghi"},
		{name: "scheme is case-insensitive", path: "/mcp", headers: map[string]string{"authorization": "bearer abc"}, want: "abc"},
		{name: "b64token padding", path: "/mcp", headers: map[string]string{"authorization": "Bearer abc=="}, want: "abc=="},
		{name: "basic", path: "/mcp", headers: map[string]string{"authorization": "Basic dXNlcjpwYXNz"}, wantErr: "not Bearer"},
		{name: "scheme only", path: "/mcp", headers: map[string]string{"authorization": "Bearer"}, wantErr: "empty"},
		{name: "empty token", path: "/mcp", headers: map[string]string{"authorization": "Bearer   "}, wantErr: "empty"},
		{name: "two credentials joined", path: "/mcp", headers: map[string]string{"authorization": "Bearer a,Bearer b"}, wantErr: "more than one"},
		{name: "space inside token", path: "/mcp", headers: map[string]string{"authorization": "Bearer a b"}, wantErr: "more than one"},
		{name: "bad characters", path: "/mcp", headers: map[string]string{"authorization": "Bearer a\"b"}, wantErr: "b64token"},
		{name: "padding in the middle", path: "/mcp", headers: map[string]string{"authorization": "Bearer a=b"}, wantErr: "b64token"},
		{name: "query token", path: "/mcp?access_token=x", wantErr: "query string"},
		{name: "escaped query token", path: "/mcp?a=1&access%5Ftoken=x", wantErr: "query string"},
		{name: "query token beside header", path: "/mcp?access_token=x", headers: map[string]string{"authorization": "Bearer abc"}, wantErr: "query string"},
		{name: "other query is fine", path: "/mcp?session=1&access_tokens=2", headers: map[string]string{"authorization": "Bearer abc"}, want: "abc"},
		{name: "form body token", path: "/mcp", headers: map[string]string{"content-type": "application/x-www-form-urlencoded"}, body: "access_token=x", wantErr: "request body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.headers
			if h == nil {
				h = map[string]string{}
			}
			got, err := bearerToken(&Request{Path: tc.path, Headers: h, Body: []byte(tc.body)})
			if tc.wantErr != "" {
				if err == nil || err.Status != 400 || err.Code != "invalid_request" || !contains(err.Description, tc.wantErr) {
					t.Fatalf("err = %v, want invalid_request mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

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
