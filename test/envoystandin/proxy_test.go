package envoystandin

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// fakeAuth answers Check with a fixed response (or error) and keeps the last request.
type fakeAuth struct {
	authv3.UnimplementedAuthorizationServer
	mu   sync.Mutex
	resp *authv3.CheckResponse
	err  error
	last *authv3.CheckRequest
}

func (f *fakeAuth) Check(_ context.Context, r *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last = r
	return f.resp, f.err
}

func set(k, v string, action corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: action}
}

func TestProxy(t *testing.T) {
	fa := &fakeAuth{}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, fa)
	go gs.Serve(gl)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	var upstreamSaw http.Header
	var upstreamBody string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamSaw = r.Header.Clone()
		b, _ := io.ReadAll(r.Body)
		upstreamBody = string(b)
		io.WriteString(w, "upstream")
	}))
	t.Cleanup(upstream.Close)
	up, _ := url.Parse(upstream.URL)
	p := New(authv3.NewAuthorizationClient(conn), []Route{
		{Prefix: "/", Upstream: up, ContextExtensions: map[string]string{"resource": "r1"}},
		{Prefix: "/.well-known/", Upstream: up, CheckDisabled: true},
	}, Options{MaxRequestBytes: 64, StatusOnError: 503})
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)

	okStatus := &rpcstatus.Status{Code: int32(code.Code_OK)}
	tests := []struct {
		name       string
		path, body string
		resp       *authv3.CheckResponse
		rpcErr     error
		wantStatus int
		wantBody   string
		wantHeader map[string]string // response headers to the client
		upstream   map[string]string // request headers upstream ("" = absent)
		noCheck    bool
	}{
		{
			name: "allow: headers overwritten, added, removed; body forwarded", path: "/mcp", body: `{"jsonrpc":"2.0"}`,
			resp: &authv3.CheckResponse{Status: okStatus, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers: []*corev3.HeaderValueOption{
					set("x-mcp-subject", "alice", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
					set("x-added", "1", corev3.HeaderValueOption_ADD_IF_ABSENT),
					set("x-only-if-present", "no", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS),
				},
				HeadersToRemove: []string{"authorization"},
			}}},
			wantStatus: 200, wantBody: "upstream",
			upstream: map[string]string{"X-Mcp-Subject": "alice", "X-Added": "1", "X-Only-If-Present": "", "Authorization": ""},
		},
		{
			name: "deprecated append=true appends", path: "/mcp",
			resp: &authv3.CheckResponse{Status: okStatus, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-mcp-subject", Value: "alice"}, Append: wrapperspb.Bool(true)}},
			}}},
			wantStatus: 200, upstream: map[string]string{"X-Mcp-Subject": "root,alice"},
		},
		{
			name: "denied: status, headers and body to the client", path: "/mcp",
			resp: &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(code.Code_UNAUTHENTICATED)}, HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
				Status:  &typev3.HttpStatus{Code: typev3.StatusCode_Unauthorized},
				Headers: []*corev3.HeaderValueOption{set("www-authenticate", `Bearer resource_metadata="m"`, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)},
				Body:    `{"error":1}`,
			}}},
			wantStatus: 401, wantBody: `{"error":1}`, wantHeader: map[string]string{"Www-Authenticate": `Bearer resource_metadata="m"`},
		},
		{
			name: "denied without a status is 403", path: "/mcp",
			resp:       &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(code.Code_PERMISSION_DENIED)}, HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{}}},
			wantStatus: 403,
		},
		{
			name: "error_response keeps its status and body", path: "/mcp",
			resp: &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(code.Code_UNAVAILABLE)}, HttpResponse: &authv3.CheckResponse_ErrorResponse{ErrorResponse: &authv3.DeniedHttpResponse{
				Status: &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable}, Body: "down",
			}}},
			wantStatus: 503, wantBody: "down",
		},
		{
			name: "non-OK status without a response is 403", path: "/mcp",
			resp:       &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(code.Code_PERMISSION_DENIED)}},
			wantStatus: 403,
		},
		{
			name: "failed RPC: status_on_error", path: "/mcp", rpcErr: errors.New("boom"),
			wantStatus: 503,
		},
		{
			name: "body over max_request_bytes: 413 without a check", path: "/mcp", body: strings.Repeat("x", 65),
			wantStatus: 413, noCheck: true,
		},
		{
			name: "check disabled on the well-known route", path: "/.well-known/oauth-protected-resource/mcp",
			wantStatus: 200, wantBody: "upstream", noCheck: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fa.mu.Lock()
			fa.resp, fa.err, fa.last = tc.resp, tc.rpcErr, nil
			fa.mu.Unlock()
			upstreamSaw, upstreamBody = nil, ""
			req, _ := http.NewRequest("POST", front.URL+tc.path+"?q=1", strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer t")
			req.Header.Set("X-Mcp-Subject", "root")
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status = %d, want %d (%s)", resp.StatusCode, tc.wantStatus, b)
			}
			if tc.wantBody != "" && string(b) != tc.wantBody {
				t.Errorf("body = %q, want %q", b, tc.wantBody)
			}
			for k, v := range tc.wantHeader {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("response header %s = %q, want %q", k, got, v)
				}
			}
			for k, v := range tc.upstream {
				if got := strings.Join(upstreamSaw.Values(k), ","); got != v {
					t.Errorf("upstream header %s = %q, want %q", k, got, v)
				}
			}
			if tc.wantStatus != 200 && upstreamSaw != nil {
				t.Errorf("a refused request reached upstream")
			}
			if tc.wantStatus == 200 && upstreamBody != tc.body {
				t.Errorf("upstream body = %q, want %q", upstreamBody, tc.body)
			}
			fa.mu.Lock()
			last := fa.last
			fa.mu.Unlock()
			if tc.noCheck {
				if last != nil {
					t.Errorf("Check was called")
				}
				return
			}
			if last == nil {
				t.Fatal("Check was not called")
			}
			h := last.GetAttributes().GetRequest().GetHttp()
			if h.GetHeaders()[":method"] != "POST" || h.GetHeaders()[":path"] != tc.path+"?q=1" || h.GetHeaders()[":authority"] == "" ||
				h.GetHeaders()["authorization"] != "Bearer t" || h.GetHeaders()["x-request-id"] == "" || h.GetPath() != tc.path+"?q=1" {
				t.Errorf("CheckRequest headers = %v, path %q", h.GetHeaders(), h.GetPath())
			}
			if string(h.GetRawBody()) != tc.body || h.GetBody() != "" {
				t.Errorf("raw_body = %q, body = %q", h.GetRawBody(), h.GetBody())
			}
			if last.GetAttributes().GetContextExtensions()["resource"] != "r1" {
				t.Errorf("context_extensions = %v", last.GetAttributes().GetContextExtensions())
			}
		})
	}
}

func TestHTTPService(t *testing.T) {
	// The authorization server: allows when the body says "ok", else denies with a challenge.
	var authzSaw *http.Request
	var authzBody string
	authzSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		authzSaw = r.Clone(context.Background())
		b, _ := io.ReadAll(r.Body)
		authzBody = string(b)
		if authzBody == "ok" {
			w.Header().Set("X-Mcp-Subject", "alice")
			w.Header().Set("X-Not-Allowed", "leak")
			w.Header().Set("X-Envoy-Auth-Headers-To-Remove", "authorization,x-mcp-email")
			return
		}
		w.Header().Set("Www-Authenticate", "Bearer x")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Secret", "internal")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"denied":true}`)
	}))
	t.Cleanup(authzSrv.Close)
	var upstreamSaw http.Header
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { upstreamSaw = r.Header.Clone() }))
	t.Cleanup(upstream.Close)
	up, _ := url.Parse(upstream.URL)
	p := New(nil, []Route{{Prefix: "/", Upstream: up}}, Options{HTTPService: &HTTPService{
		URL: authzSrv.URL + "/authz", AllowedHeaders: []string{"content-type"},
		AllowedUpstreamHeaders: []string{"x-mcp-subject"}, AllowedClientHeaders: []string{"content-type"},
	}})
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	tests := []struct {
		name, body string
		wantStatus int
		upstream   map[string]string
		client     map[string]string
	}{
		{"allow", "ok", 200, map[string]string{"X-Mcp-Subject": "alice", "X-Not-Allowed": "", "Authorization": "", "X-Mcp-Email": "", "Cookie": "c=1"}, nil},
		{"deny", "no", 401, nil, map[string]string{"Www-Authenticate": "Bearer x", "Content-Type": "application/json", "X-Secret": ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			upstreamSaw = nil
			req, _ := http.NewRequest("POST", front.URL+"/mcp?a=b", strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer t")
			req.Header.Set("Cookie", "c=1")
			req.Header.Set("X-Mcp-Email", "spoof@example.com")
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if authzSaw.Method != "POST" || authzSaw.URL.RequestURI() != "/authz/mcp?a=b" || authzBody != tc.body ||
				authzSaw.Header.Get("Authorization") != "Bearer t" || authzSaw.Header.Get("Cookie") != "" {
				t.Errorf("authorization request %s %s body %q headers %v", authzSaw.Method, authzSaw.URL.RequestURI(), authzBody, authzSaw.Header)
			}
			for k, v := range tc.upstream {
				if got := upstreamSaw.Get(k); got != v {
					t.Errorf("upstream %s = %q, want %q", k, got, v)
				}
			}
			for k, v := range tc.client {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("client %s = %q, want %q", k, got, v)
				}
			}
			if tc.wantStatus != 200 && (upstreamSaw != nil || string(b) != `{"denied":true}`) {
				t.Errorf("deny reached upstream or lost its body %q", b)
			}
		})
	}
}
