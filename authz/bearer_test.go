package authz

import "testing"

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

func TestChallenge(t *testing.T) {
	tests := []struct {
		c    Challenge
		want string
	}{
		{Challenge{ResourceMetadata: "https://h/.well-known/oauth-protected-resource/mcp"}, `Bearer resource_metadata="https://h/.well-known/oauth-protected-resource/mcp"`},
		{Challenge{ResourceMetadata: "https://h/x", Error: "invalid_token", Description: "token expired"}, `Bearer resource_metadata="https://h/x", error="invalid_token", error_description="token expired"`},
		{Challenge{ResourceMetadata: "https://h/x", Error: "insufficient_scope", Description: "needs admin", Scope: "tools:admin tools:read"}, `Bearer resource_metadata="https://h/x", error="insufficient_scope", error_description="needs admin", scope="tools:admin tools:read"`},
		{Challenge{ResourceMetadata: "https://h/x", Error: "invalid_request", Description: "bad \"quote\" \\ and\nnewline é"}, `Bearer resource_metadata="https://h/x", error="invalid_request", error_description="bad 'quote' ' and'newline '"`},
	}
	for _, tc := range tests {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}
