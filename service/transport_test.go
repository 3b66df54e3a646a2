package service_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/mcp-authz/mcp-authz/forwardauth"
	"google.golang.org/genproto/googleapis/rpc/code"
)

// outcome is one decision as the proxy sees it, whichever transport carried it.
type outcome struct {
	allowed bool
	// unavailable: an error_response (gRPC) or a 503 (HTTP).
	unavailable bool
	status      int
	// headers: set upstream on an allow, sent to the client on a deny; lower-case names.
	headers map[string]string
	// removed: headers the proxy must remove upstream on an allow.
	removed []string
	body    string
	// metadata: dynamic metadata of an allow (gRPC only; nil over HTTP).
	metadata map[string]any
}

// transport sends one Envoy-shaped CheckRequest to a running instance and reports the outcome.
type transport struct {
	name  string
	check func(t *testing.T, inst *instance, req *authv3.CheckRequest) outcome
}

// transports are the two ways a proxy asks mcp-authz: ext_authz gRPC and HTTP authorization mode (Envoy
// http_service shape: the original request under /authz).
func transports() []transport {
	return []transport{{"grpc", grpcCheck}, {"http", httpCheck}}
}

// grpcCheck calls Check over gRPC and checks the CheckResponse's envelope (status code, append actions).
func grpcCheck(t *testing.T, inst *instance, req *authv3.CheckRequest) outcome {
	t.Helper()
	resp, err := inst.client.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	opts := func(hs []*corev3.HeaderValueOption) map[string]string {
		out := map[string]string{}
		for _, h := range hs {
			if !overwrites(h) {
				t.Errorf("header %s: append_action %v, want OVERWRITE_IF_EXISTS_OR_ADD and no append", h.GetHeader().GetKey(), h.GetAppendAction())
			}
			out[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		return out
	}
	rpc := resp.GetStatus().GetCode()
	switch {
	case resp.GetOkResponse() != nil:
		if rpc != int32(code.Code_OK) {
			t.Errorf("ok_response with gRPC status %d", rpc)
		}
		ok := resp.GetOkResponse()
		return outcome{allowed: true, status: 200, headers: opts(ok.GetHeaders()), removed: ok.GetHeadersToRemove(), metadata: resp.GetDynamicMetadata().AsMap()}
	case resp.GetDeniedResponse() != nil:
		if rpc == int32(code.Code_OK) {
			t.Errorf("gRPC status OK on a deny")
		}
		d := resp.GetDeniedResponse()
		return outcome{status: int(d.GetStatus().GetCode()), headers: opts(d.GetHeaders()), body: d.GetBody()}
	case resp.GetErrorResponse() != nil:
		if rpc != int32(code.Code_UNAVAILABLE) {
			t.Errorf("error_response with gRPC status %d, want UNAVAILABLE", rpc)
		}
		e := resp.GetErrorResponse()
		return outcome{unavailable: true, status: int(e.GetStatus().GetCode()), headers: opts(e.GetHeaders()), body: e.GetBody()}
	}
	t.Fatalf("CheckResponse without an http_response: %v", resp)
	return outcome{}
}

// httpCheck sends the same request as Envoy's ext_authz http_service does: the original method, the
// original path under /authz, the original headers (no pseudo-headers), Host, x-forwarded-proto and the
// body (with_request_body).
func httpCheck(t *testing.T, inst *instance, req *authv3.CheckRequest) outcome {
	t.Helper()
	h := req.GetAttributes().GetRequest().GetHttp()
	hreq, err := http.NewRequest(h.GetMethod(), inst.http+forwardauth.Prefix+h.GetPath(), bytes.NewReader(h.GetRawBody()))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h.GetHeaders() {
		if !strings.HasPrefix(k, ":") {
			hreq.Header.Set(k, v)
		}
	}
	hreq.Host = h.GetHost()
	hreq.Header.Set("X-Forwarded-Proto", h.GetScheme())
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatalf("HTTP check: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	o := outcome{status: resp.StatusCode, headers: map[string]string{}, body: string(body)}
	for name, values := range resp.Header {
		switch name = strings.ToLower(name); name {
		case "date", "content-length", "cache-control":
		case strings.ToLower(forwardauth.RemoveHeadersHeader):
			o.removed = strings.Split(values[0], ",")
		default:
			if len(values) != 1 {
				t.Errorf("response header %s repeated: %q", name, values)
			}
			o.headers[name] = values[0]
		}
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		o.allowed = true
		if len(body) != 0 {
			t.Errorf("allow with a body: %q", body)
		}
	case resp.StatusCode == http.StatusServiceUnavailable:
		o.unavailable = true
	}
	return o
}
