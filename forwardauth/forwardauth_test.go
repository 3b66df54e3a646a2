package forwardauth

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/mcp-authz/mcp-authz/authz"
)

func TestRequest(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		target  string
		host    string
		headers map[string]string
		body    string
		family  Family
		want    authz.Request // Headers: only the ones listed are compared
		wantErr string
		status  int // of the error: 400 ambiguous, 500 missing (0: not a RequestError)
	}{
		{
			name: "envoy http_service", method: "POST", target: "/authz/mcp?x=1", host: "mcp.example.com",
			headers: map[string]string{"Authorization": "Bearer t", "X-Forwarded-Proto": "https", "Content-Type": "application/json"},
			body:    `{"jsonrpc":"2.0"}`,
			want:    authz.Request{Method: "POST", Scheme: "https", Host: "mcp.example.com", Path: "/mcp?x=1", Body: []byte(`{"jsonrpc":"2.0"}`), Headers: map[string]string{"authorization": "Bearer t", ":authority": "mcp.example.com"}},
		},
		{
			name: "envoy http_service, root path", method: "GET", target: "/authz/", host: "mcp.example.com",
			want: authz.Request{Method: "GET", Scheme: "http", Host: "mcp.example.com", Path: "/"},
		},
		{
			name: "envoy http_service ignores one client-sent forward-auth family", method: "POST", target: "/authz/mcp", host: "mcp.example.com",
			headers: map[string]string{"X-Original-URI": "/public/mcp", "X-Original-Method": "GET"},
			want:    authz.Request{Method: "POST", Scheme: "http", Host: "mcp.example.com", Path: "/mcp", Headers: map[string]string{":authority": "mcp.example.com"}},
		},
		{
			name: "envoy http_service refuses two disagreeing families", method: "POST", target: "/authz/mcp", host: "mcp.example.com",
			headers: map[string]string{"X-Original-URI": "/public/mcp", "X-Forwarded-Uri": "/x"},
			wantErr: "disagree", status: 400,
		},
		{
			name: "envoy http_service keeps the request-target as sent", method: "POST", target: "/authz/public/mcp/%2e%2e/%2e%2e/mcp", host: "h",
			want: authz.Request{Method: "POST", Scheme: "http", Host: "h", Path: "/public/mcp/%2e%2e/%2e%2e/mcp"},
		},
		{
			name: "nginx auth_request, original family", method: "GET", target: "/authz", host: "127.0.0.1:8080", family: Original,
			headers: map[string]string{"X-Original-Method": "POST", "X-Original-URI": "/mcp", "X-Forwarded-Host": "mcp.example.com:8443", "X-Forwarded-Proto": "https", "Authorization": "Bearer t"},
			want:    authz.Request{Method: "POST", Scheme: "https", Host: "mcp.example.com:8443", Path: "/mcp", Headers: map[string]string{"authorization": "Bearer t", ":authority": "mcp.example.com:8443"}},
		},
		{
			name: "shipped nginx config: both families, equal", method: "GET", target: "/authz", host: "127.0.0.1:8080",
			headers: map[string]string{"X-Original-Method": "POST", "X-Original-URI": "/mcp?a=1,2", "X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/mcp?a=1,2", "X-Forwarded-Host": "mcp.example.com"},
			want:    authz.Request{Method: "POST", Scheme: "http", Host: "mcp.example.com", Path: "/mcp?a=1,2"},
		},
		{
			name: "traefik forwardauth", method: "GET", target: "/authz", host: "authz:8080",
			headers: map[string]string{"X-Forwarded-Method": "DELETE", "X-Forwarded-Uri": "/mcp/sub?a=b", "X-Forwarded-Host": "mcp.example.com", "X-Forwarded-Proto": "HTTP"},
			want:    authz.Request{Method: "DELETE", Scheme: "http", Host: "mcp.example.com", Path: "/mcp/sub?a=b"},
		},
		{
			name: "client-added original URI behind traefik", method: "GET", target: "/authz", host: "authz:8080",
			headers: map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/mcp", "X-Original-URI": "/public/mcp"},
			wantErr: "X-Forwarded-Uri and X-Original-Uri disagree", status: 400,
		},
		{
			name: "client-added original method behind caddy", method: "GET", target: "/authz", host: "authz:8080",
			headers: map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/mcp", "X-Original-Method": "GET"},
			wantErr: "X-Forwarded-Method and X-Original-Method disagree", status: 400,
		},
		{
			name: "client-added forwarded URI behind nginx, original family", method: "GET", target: "/authz", host: "h", family: Original,
			headers: map[string]string{"X-Original-Method": "POST", "X-Original-URI": "/mcp", "X-Forwarded-Uri": "/public/mcp"},
			wantErr: "disagree", status: 400,
		},
		{
			name: "only the unconfigured family", method: "GET", target: "/authz", host: "h",
			headers: map[string]string{"X-Original-Method": "POST", "X-Original-URI": "/public/mcp"},
			wantErr: "lacks X-Forwarded-Uri or X-Forwarded-Method", status: 500,
		},
		{
			name: "forwarded host list", method: "GET", target: "/authz", host: "h",
			headers: map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/mcp", "X-Forwarded-Host": "evil.example.com, mcp.example.com"},
			wantErr: "X-Forwarded-Host holds more than one value", status: 400,
		},
		{
			name: "forwarded proto list", method: "GET", target: "/authz", host: "h",
			headers: map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/mcp", "X-Forwarded-Proto": "https,http"},
			wantErr: "X-Forwarded-Proto holds more than one value", status: 400,
		},
		{
			name: "envoy partial body", method: "POST", target: "/authz/mcp", host: "h",
			headers: map[string]string{"X-Envoy-Auth-Partial-Body": "true"}, body: "{",
			want: authz.Request{Method: "POST", Scheme: "http", Host: "h", Path: "/mcp", Body: []byte("{"), BodyTruncated: true},
		},
		{
			name: "body longer than the limit is cut one byte past it", method: "POST", target: "/authz/mcp", host: "h",
			body: strings.Repeat("x", 40),
			want: authz.Request{Method: "POST", Scheme: "http", Host: "h", Path: "/mcp", Body: []byte(strings.Repeat("x", 33))},
		},
		{
			name: "forward-auth without the original method", method: "GET", target: "/authz", host: "h",
			headers: map[string]string{"X-Forwarded-Uri": "/mcp"},
			wantErr: "X-Forwarded-Method", status: 500,
		},
		{
			name: "forward-auth without the original URI", method: "GET", target: "/authz", host: "h", family: Original,
			headers: map[string]string{"X-Original-Method": "POST"},
			wantErr: "X-Original-Uri", status: 500,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
			r.Host = tc.host
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			got, err := Request(r, Options{Prefix: Prefix, MaxBody: 32, Family: tc.family})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				var re *RequestError
				if errors.As(err, &re) != (tc.status != 0) || tc.status != 0 && re.Status != tc.status {
					t.Errorf("error %v: want a RequestError with status %d", err, tc.status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.want.Headers {
				if got.Headers[k] != v {
					t.Errorf("header %s = %q, want %q", k, got.Headers[k], v)
				}
			}
			got.Headers, tc.want.Headers = nil, nil
			if len(got.Body) == 0 {
				got.Body = nil
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("request\n got %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

// fixed is a Checker returning one decision and recording the request.
type fixed struct {
	d   *authz.Decision
	got *authz.Request
}

func (f *fixed) Check(_ context.Context, r *authz.Request) *authz.Decision { f.got = r; return f.d }

func TestServeHTTP(t *testing.T) {
	jsonCT := authz.Header{Name: "content-type", Value: "application/json"}
	tests := []struct {
		name       string
		decision   *authz.Decision
		headers    map[string]string
		wantStatus int
		wantHeader map[string]string
		wantBody   string
		noHeaders  []string
		noCheck    bool
	}{
		{
			name:       "allow",
			decision:   &authz.Decision{Allow: true, Status: 200, Headers: []authz.Header{{Name: "x-mcp-subject", Value: "alice"}}, RemoveHeaders: []string{"x-mcp-email", "authorization"}},
			headers:    map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/mcp"},
			wantStatus: 200,
			wantHeader: map[string]string{"X-Mcp-Subject": "alice", RemoveHeadersHeader: "x-mcp-email,authorization"},
			noHeaders:  []string{"Content-Type", "Www-Authenticate", BodyHeader},
		},
		{
			name: "an exchanged Authorization is sent, and the client's still listed for removal",
			decision: &authz.Decision{Allow: true, Status: 200, Headers: []authz.Header{{Name: "x-mcp-subject", Value: "alice"}, {Name: "authorization", Value: "Bearer exchanged"}},
				RemoveHeaders: []string{"x-mcp-email"}},
			headers:    map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/mcp"},
			wantStatus: 200,
			wantHeader: map[string]string{"Authorization": "Bearer exchanged", RemoveHeadersHeader: "x-mcp-email,authorization"},
		},
		{
			name:       "deny",
			decision:   &authz.Decision{Status: 401, Headers: []authz.Header{jsonCT, {Name: "www-authenticate", Value: `Bearer resource_metadata="m"`}}, Body: []byte(`{"jsonrpc":"2.0"}`)},
			headers:    map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/mcp"},
			wantStatus: 401,
			wantHeader: map[string]string{"Www-Authenticate": `Bearer resource_metadata="m"`, "Content-Type": "application/json", BodyHeader: `{"jsonrpc":"2.0"}`},
			wantBody:   `{"jsonrpc":"2.0"}`,
			noHeaders:  []string{RemoveHeadersHeader},
		},
		{
			name:       "unavailable",
			decision:   &authz.Decision{Status: 503, Unavailable: true, Headers: []authz.Header{jsonCT}, Body: []byte(`{}`)},
			headers:    map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/mcp"},
			wantStatus: 503,
			wantBody:   `{}`,
		},
		{
			name:       "a deny without an error status still denies",
			decision:   &authz.Decision{Status: 200, Body: []byte(`{}`)},
			headers:    map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/mcp"},
			wantStatus: 403,
			wantBody:   `{}`,
		},
		{
			name:       "disagreeing families are refused before any decision",
			decision:   &authz.Decision{Allow: true, Status: 200},
			headers:    map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/mcp", "X-Original-URI": "/public/mcp"},
			wantStatus: 400,
			wantHeader: map[string]string{"Content-Type": "application/json"},
			noHeaders:  []string{RemoveHeadersHeader},
			noCheck:    true,
		},
		{
			name:       "incomplete forward-auth request fails closed",
			decision:   &authz.Decision{Allow: true, Status: 200},
			headers:    map[string]string{"X-Forwarded-Uri": "/mcp"},
			wantStatus: 500,
			noCheck:    true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fixed{d: tc.decision}
			r := httptest.NewRequest("GET", "/authz", nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			New(f, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Prefix: Prefix, MaxBody: 1024}).ServeHTTP(w, r)
			if w.Code != tc.wantStatus {
				t.Errorf("status = %d, want %d", w.Code, tc.wantStatus)
			}
			for k, v := range tc.wantHeader {
				if got := w.Header().Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			for _, k := range tc.noHeaders {
				if got := w.Header().Get(k); got != "" {
					t.Errorf("header %s = %q, want none", k, got)
				}
			}
			if tc.wantBody != "" && w.Body.String() != tc.wantBody {
				t.Errorf("body = %q, want %q", w.Body.String(), tc.wantBody)
			}
			if (f.got == nil) != tc.noCheck {
				t.Errorf("checker called = %v, want %v", f.got != nil, !tc.noCheck)
			}
		})
	}
}
