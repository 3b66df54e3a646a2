package authz_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"testing"

	"github.com/mcp-authz/mcp-authz/authz"
)

// stubCredential answers every Grant with fixed headers or a fixed refusal, and records the grants.
type stubCredential struct {
	headers []authz.Header
	err     *authz.Error
	grants  []authz.Grant
}

func (s *stubCredential) Credential(_ context.Context, g authz.Grant) ([]authz.Header, *authz.Error) {
	s.grants = append(s.grants, g)
	return s.headers, s.err
}

func TestCredentials(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tests := []struct {
		name        string
		cred        *stubCredential
		wantStatus  int
		wantCode    authz.ReasonCode
		wantSet     map[string]string
		wantRemoved []string
		keptAuth    bool // Authorization is not in the removed headers
	}{
		{"assertion header added", &stubCredential{headers: []authz.Header{{Name: "x-mcp-identity", Value: "signed"}}}, http.StatusOK, authz.ReasonAllowed,
			map[string]string{"x-mcp-identity": "signed", "x-mcp-subject": "alice"}, []string{"authorization"}, false},
		{"exchanged token replaces the client's", &stubCredential{headers: []authz.Header{{Name: "authorization", Value: "Bearer exchanged"}}}, http.StatusOK, authz.ReasonAllowed,
			map[string]string{"authorization": "Bearer exchanged"}, nil, true},
		{"credential replaces an identity header", &stubCredential{headers: []authz.Header{{Name: "x-mcp-subject", Value: "other"}}}, http.StatusOK, authz.ReasonAllowed,
			map[string]string{"x-mcp-subject": "other"}, []string{"authorization"}, false},
		{"unavailable refuses", &stubCredential{err: &authz.Error{Status: http.StatusServiceUnavailable, Description: "token exchange failed", Unavailable: true}},
			http.StatusServiceUnavailable, authz.ReasonUnavailable, nil, nil, false},
		{"IdP refusal is a bad gateway, not a policy deny", &stubCredential{err: &authz.Error{Status: http.StatusBadGateway, Description: "token exchange refused: invalid_target"}},
			http.StatusBadGateway, authz.ReasonUnavailable, nil, nil, false},
		{"refusal refuses", &stubCredential{err: &authz.Error{Status: http.StatusForbidden, Description: "exchange refused"}},
			http.StatusForbidden, authz.ReasonPolicyDeny, nil, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil, log, "", authz.WithCredentials(tc.cred))
			tok := h.token(t, nil)
			d := h.authz.Check(context.Background(), request(map[string]string{"authorization": "Bearer " + tok}, "/mcp", listTools))
			if d.Status != tc.wantStatus || d.Code != tc.wantCode {
				t.Fatalf("decision = %d %s (%s), want %d %s", d.Status, d.Code, d.Reason, tc.wantStatus, tc.wantCode)
			}
			if len(tc.cred.grants) != 1 {
				t.Fatalf("credential asked %d times, want once", len(tc.cred.grants))
			}
			if g := tc.cred.grants[0]; g.Token != tok || g.Resource != resourceURL || g.Identity.Subject != "alice" || g.RequestID != "req-1" {
				t.Errorf("grant = %+v", g)
			}
			if !d.Allow {
				return
			}
			for name, want := range tc.wantSet {
				n := 0
				for _, h := range d.Headers {
					if h.Name == name {
						n++
						if h.Value != want {
							t.Errorf("header %s = %q, want %q", name, h.Value, want)
						}
					}
				}
				if n != 1 {
					t.Errorf("header %s set %d times, want once", name, n)
				}
			}
			for _, name := range tc.wantRemoved {
				if !slices.Contains(d.RemoveHeaders, name) {
					t.Errorf("%s not removed: %v", name, d.RemoveHeaders)
				}
			}
			if tc.keptAuth && slices.Contains(d.RemoveHeaders, "authorization") {
				t.Errorf("authorization removed although a credential sets it: %v", d.RemoveHeaders)
			}
		})
	}
}

// TestCredentialsNotAskedOnDeny checks that a refused request never reaches a Credential.
func TestCredentialsNotAskedOnDeny(t *testing.T) {
	cred := &stubCredential{headers: []authz.Header{{Name: "x-mcp-identity", Value: "signed"}}}
	h := newHarness(t, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), "", authz.WithCredentials(cred))
	for _, req := range []*authz.Request{
		request(nil, "/mcp", listTools),
		request(map[string]string{"authorization": "Bearer " + h.token(t, map[string]any{"scope": "tools:read"})}, "/mcp", callTool("admin_reset")),
	} {
		if d := h.authz.Check(context.Background(), req); d.Allow {
			t.Fatalf("allowed: %+v", d)
		}
	}
	if len(cred.grants) != 0 {
		t.Fatalf("credential asked on a deny: %d grants", len(cred.grants))
	}
}
