package authz

import "testing"

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
