package bridge

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

func TestRegisterRefusals(t *testing.T) {
	e := newEnv(t, envOptions{})
	post := func(ct, body string) response {
		req, _ := http.NewRequest(http.MethodPost, e.iss+"/register", strings.NewReader(body))
		req.Header.Set("Content-Type", ct)
		return newBrowser(t).do(req)
	}
	tests := []struct {
		name, ct, body, code string
	}{
		{"redirect not on the allow-list", "application/json", `{"redirect_uris":["https://evil.example/cb"]}`, "invalid_redirect_uri"},
		{"one of two redirects not allowed", "application/json", `{"redirect_uris":["http://127.0.0.1:1/cb","https://evil.example/cb"]}`, "invalid_redirect_uri"},
		{"http redirect to a remote host", "application/json", `{"redirect_uris":["http://app.example/callback"]}`, "invalid_redirect_uri"},
		{"javascript redirect", "application/json", `{"redirect_uris":["javascript:alert(1)"]}`, "invalid_redirect_uri"},
		{"no redirect", "application/json", `{"client_name":"x"}`, "invalid_redirect_uri"},
		{"too many redirects", "application/json", `{"redirect_uris":[` + strings.Repeat(`"http://127.0.0.1/cb",`, maxRedirectURIs) + `"http://127.0.0.1/cb"]}`, "invalid_redirect_uri"},
		{"confidential client", "application/json", `{"redirect_uris":["http://127.0.0.1:1/cb"],"token_endpoint_auth_method":"client_secret_basic"}`, "invalid_client_metadata"},
		{"implicit grant", "application/json", `{"redirect_uris":["http://127.0.0.1:1/cb"],"grant_types":["implicit"]}`, "invalid_client_metadata"},
		{"token response type", "application/json", `{"redirect_uris":["http://127.0.0.1:1/cb"],"response_types":["token"]}`, "invalid_client_metadata"},
		{"not JSON", "application/json", `redirect_uris=x`, "invalid_client_metadata"},
		{"form content type", "application/x-www-form-urlencoded", `{"redirect_uris":["http://127.0.0.1:1/cb"]}`, "invalid_client_metadata"},
		{"oversized", "application/json", `{"client_name":"` + strings.Repeat("a", maxRegistrationBytes) + `","redirect_uris":["http://127.0.0.1:1/cb"]}`, "invalid_client_metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(tt.ct, tt.body)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.status, r.body)
			}
			if m := decodeJSON(t, r.body); m["error"] != tt.code {
				t.Errorf("error %v, want %s", m, tt.code)
			}
		})
	}
	if !strings.Contains(e.logs.String(), `"event":"register","outcome":"deny"`) {
		t.Error("refusals not in the decision log")
	}
}

func TestRegisterAnswer(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.postJSON("/register", map[string]any{"redirect_uris": []string{"https://app.example/callback", "http://localhost/cb"},
		"client_name": "Bell\x07 client", "grant_types": []string{"authorization_code", "refresh_token"}})
	if r.status != http.StatusCreated {
		t.Fatalf("%d %s", r.status, r.body)
	}
	m := decodeJSON(t, r.body)
	if m["token_endpoint_auth_method"] != "none" || m["client_name"] != "Bell client" || m["client_secret"] != nil {
		t.Errorf("answer %v", m)
	}
	id, _ := m["client_id"].(string)
	c, err := e.b.resolveClient(t.Context(), e.b.issuers[0], id)
	if err != nil || c.name != "Bell client" || len(c.redirectURIs) != 2 {
		t.Fatalf("client id does not open: %v %+v", err, c)
	}
	if !bytes.Contains([]byte(e.logs.String()), []byte(`"event":"register","outcome":"allow","bridge":"default","client":"Bell client (`)) {
		t.Errorf("log: %s", e.logs.String())
	}
}
