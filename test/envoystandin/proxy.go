// Package envoystandin is a test-only stand-in for Envoy with its ext_authz HTTP filter (gRPC mode, or
// http_service mode with Options.HTTPService). Envoy
// itself cannot be installed on the machines this project builds on, so the end-to-end tests front the MCP
// server with this small reverse proxy instead. It is not Envoy: it reproduces, for one listener, what the
// filter does with the authorization service, and nothing else.
//
// For each request on a checked route it sends envoy.service.auth.v3.Authorization/Check a CheckRequest
// shaped as Envoy's (headers lower-cased with the pseudo-headers :authority, :method, :path and :scheme,
// x-forwarded-proto and x-request-id added, the body as raw_body as with `with_request_body {pack_as_bytes:
// true}`, the route's context_extensions, source and destination addresses) and applies the CheckResponse
// as the filter does:
//
//   - ok_response: headers set according to their append_action (OVERWRITE_IF_EXISTS_OR_ADD replaces),
//     headers_to_remove removed, then the request is proxied upstream with its body;
//   - denied_response: its status (403 when unset), headers and body go to the client;
//   - error_response, a failed RPC or a non-OK status without a response: the filter's status_on_error
//     (failure_mode_allow is false), or the error_response's own status and body when it has one;
//   - a body larger than max_request_bytes: 413, as with allow_partial_message false.
package envoystandin

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
)

// Route sends requests whose path starts with Prefix to Upstream.
type Route struct {
	// Prefix is the path prefix the route matches; the longest matching prefix wins.
	Prefix string
	// Upstream is the base URL requests are proxied to (path kept).
	Upstream *url.URL
	// CheckDisabled skips ext_authz on this route (ExtAuthzPerRoute{disabled: true}), as for the
	// well-known metadata routes.
	CheckDisabled bool
	// ContextExtensions are sent in the CheckRequest (per-route check_settings.context_extensions).
	ContextExtensions map[string]string
}

// Options are the ext_authz filter settings the stand-in honours.
type Options struct {
	// MaxRequestBytes is with_request_body.max_request_bytes. Default 1 MiB.
	MaxRequestBytes int
	// WithoutBody leaves with_request_body out: the check carries the headers only, as Envoy (and Istio's
	// CUSTOM action) does without it.
	WithoutBody bool
	// StatusOnError is status_on_error. Default 403, as in Envoy.
	StatusOnError int
	// Timeout is the gRPC call timeout. Default 2s.
	Timeout time.Duration
	// HTTPService, when set, switches the filter to http_service mode: instead of calling Check over gRPC
	// the stand-in sends the original method, path_prefix + path, headers and body (with_request_body) to
	// this server.
	HTTPService *HTTPService
}

// HTTPService is the ext_authz filter's http_service: where to ask, and which headers of its answer to use.
type HTTPService struct {
	// URL is the authorization server's base URL including path_prefix (for example http://h:8080/authz).
	URL string
	// AllowedUpstreamHeaders are copied (overwriting) from an OK answer onto the upstream request
	// (authorization_response.allowed_upstream_headers, exact lower-case names).
	AllowedUpstreamHeaders []string
	// AllowedHeaders are the client request headers sent along (ExtAuthz.allowed_headers, exact lower-case
	// names); Envoy always adds Host, Method, Path, Content-Length and Authorization.
	AllowedHeaders []string
	// AllowedClientHeaders are copied from a deny onto the client response
	// (authorization_response.allowed_client_headers); Envoy always copies WWW-Authenticate and Location.
	AllowedClientHeaders []string
	// Client sends the requests. Default: a client with the filter's timeout.
	Client *http.Client
}

// Proxy is the stand-in: an http.Handler.
type Proxy struct {
	client authv3.AuthorizationClient
	routes []Route
	opts   Options
}

// New returns a proxy asking client on every checked route.
func New(client authv3.AuthorizationClient, routes []Route, opts Options) *Proxy {
	if opts.MaxRequestBytes == 0 {
		opts.MaxRequestBytes = 1 << 20
	}
	if opts.StatusOnError == 0 {
		opts.StatusOnError = http.StatusForbidden
	}
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Second
	}
	return &Proxy{client: client, routes: routes, opts: opts}
}

func (p *Proxy) route(path string) (Route, bool) {
	best, found := Route{}, false
	for _, r := range p.routes {
		if strings.HasPrefix(path, r.Prefix) && (!found || len(r.Prefix) > len(best.Prefix)) {
			best, found = r, true
		}
	}
	return best, found
}

// ServeHTTP checks and proxies one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, ok := p.route(r.URL.Path)
	if !ok {
		http.Error(w, "no route", http.StatusNotFound)
		return
	}
	if r.Header.Get("X-Request-Id") == "" {
		r.Header.Set("X-Request-Id", rand.Text())
	}
	r.Header.Set("X-Forwarded-Proto", "http")
	if !rt.CheckDisabled {
		var body []byte
		if r.Body != nil {
			b, err := io.ReadAll(io.LimitReader(r.Body, int64(p.opts.MaxRequestBytes)+1))
			if err != nil {
				http.Error(w, "reading body", http.StatusBadRequest)
				return
			}
			if len(b) > p.opts.MaxRequestBytes {
				http.Error(w, "Payload Too Large", http.StatusRequestEntityTooLarge)
				return
			}
			body = b
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		sent := body
		if p.opts.WithoutBody {
			sent = nil
		}
		if !p.check(w, r, rt, sent) {
			return
		}
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(rt.Upstream)
			pr.Out.Host = r.Host // Envoy keeps the authority by default
			pr.Out.URL.Path, pr.Out.URL.RawPath = r.URL.Path, r.URL.RawPath
		},
		FlushInterval: -1, // stream SSE responses
	}
	rp.ServeHTTP(w, r)
}

// check runs ext_authz; it returns true when the request may go upstream, after editing its headers.
func (p *Proxy) check(w http.ResponseWriter, r *http.Request, rt Route, body []byte) bool {
	if p.opts.HTTPService != nil {
		return p.checkHTTP(w, r, body)
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.opts.Timeout)
	defer cancel()
	resp, err := p.client.Check(ctx, CheckRequest(r, body, rt.ContextExtensions))
	if err != nil {
		w.WriteHeader(p.opts.StatusOnError)
		return false
	}
	switch hr := resp.GetHttpResponse().(type) {
	case *authv3.CheckResponse_OkResponse:
		if resp.GetStatus().GetCode() != int32(code.Code_OK) {
			w.WriteHeader(http.StatusForbidden)
			return false
		}
		ok := hr.OkResponse
		for _, h := range ok.GetHeaders() {
			applyHeader(r.Header, h)
		}
		for _, name := range ok.GetHeadersToRemove() {
			r.Header.Del(name)
		}
		return true
	case *authv3.CheckResponse_DeniedResponse:
		writeResponse(w, hr.DeniedResponse.GetStatus().GetCode(), http.StatusForbidden, hr.DeniedResponse.GetHeaders(), hr.DeniedResponse.GetBody())
		return false
	case *authv3.CheckResponse_ErrorResponse:
		writeResponse(w, hr.ErrorResponse.GetStatus().GetCode(), p.opts.StatusOnError, hr.ErrorResponse.GetHeaders(), hr.ErrorResponse.GetBody())
		return false
	default:
		if resp.GetStatus().GetCode() == int32(code.Code_OK) {
			return true // OK without an http_response: allow unchanged
		}
		w.WriteHeader(http.StatusForbidden)
		return false
	}
}

// applyHeader edits h as Envoy applies one HeaderValueOption.
func applyHeader(h http.Header, o *corev3.HeaderValueOption) {
	k, v := o.GetHeader().GetKey(), o.GetHeader().GetValue()
	if v == "" {
		v = string(o.GetHeader().GetRawValue())
	}
	action := o.GetAppendAction()
	//lint:ignore SA1019 Envoy still honours the deprecated append when it is set; so must the stand-in
	deprecatedAppend := o.GetAppend()
	if deprecatedAppend != nil { // the deprecated bool wins when set
		action = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		if deprecatedAppend.GetValue() {
			action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		}
	}
	_, exists := h[http.CanonicalHeaderKey(k)]
	switch action {
	case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
		h.Add(k, v)
	case corev3.HeaderValueOption_ADD_IF_ABSENT:
		if !exists {
			h.Set(k, v)
		}
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
		h.Set(k, v)
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
		if exists {
			h.Set(k, v)
		}
	}
}

func writeResponse(w http.ResponseWriter, status typev3.StatusCode, def int, headers []*corev3.HeaderValueOption, body string) {
	code := int(status)
	if code == 0 {
		code = def
	}
	for _, h := range headers {
		applyHeader(w.Header(), h)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	io.WriteString(w, body)
}

// CheckRequest builds the CheckRequest Envoy's ext_authz filter sends for r with body (with_request_body,
// pack_as_bytes) and the route's context extensions.
func CheckRequest(r *http.Request, body []byte, ext map[string]string) *authv3.CheckRequest {
	headers := map[string]string{
		":authority": r.Host,
		":method":    r.Method,
		":path":      r.URL.RequestURI(),
		":scheme":    "http",
	}
	for k, vs := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:            peer(r.RemoteAddr),
		Destination:       peer(localAddr(r)),
		ContextExtensions: ext,
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id:       headers["x-request-id"],
			Method:   r.Method,
			Headers:  headers,
			Path:     r.URL.RequestURI(),
			Host:     r.Host,
			Scheme:   "http",
			Protocol: r.Proto,
			Size:     int64(len(body)),
			RawBody:  body,
		}},
	}}
}

func localAddr(r *http.Request) string {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return a.String()
	}
	return ""
}

func peer(addr string) *authv3.AttributeContext_Peer {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	n, _ := strconv.Atoi(port)
	return &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
		SocketAddress: &corev3.SocketAddress{Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(n)}}}}}
}

// checkHTTP is check in http_service mode. An OK (200) answer copies the allowed upstream headers and
// removes those named in x-envoy-auth-headers-to-remove; any other answer goes to the client with its
// status, headers and body; a failed call is status_on_error.
func (p *Proxy) checkHTTP(w http.ResponseWriter, r *http.Request, body []byte) bool {
	hs := p.opts.HTTPService
	client := hs.Client
	if client == nil {
		client = &http.Client{Timeout: p.opts.Timeout}
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, strings.TrimSuffix(hs.URL, "/")+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		w.WriteHeader(p.opts.StatusOnError)
		return false
	}
	for _, name := range append([]string{"authorization"}, hs.AllowedHeaders...) {
		if v := r.Header.Values(name); len(v) > 0 {
			req.Header[http.CanonicalHeaderKey(name)] = v
		}
	}
	req.Host = r.Host
	req.ContentLength = int64(len(body))
	resp, err := client.Do(req)
	if err != nil {
		w.WriteHeader(p.opts.StatusOnError)
		return false
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		w.WriteHeader(p.opts.StatusOnError)
		return false
	}
	if resp.StatusCode != http.StatusOK {
		for _, name := range append([]string{"www-authenticate", "location"}, hs.AllowedClientHeaders...) {
			if v := resp.Header.Values(name); len(v) > 0 {
				w.Header()[http.CanonicalHeaderKey(name)] = v
			}
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
		w.WriteHeader(resp.StatusCode)
		w.Write(answer)
		return false
	}
	for _, name := range hs.AllowedUpstreamHeaders {
		if v := resp.Header.Values(name); len(v) > 0 {
			r.Header[http.CanonicalHeaderKey(name)] = v
		}
	}
	for name := range strings.SplitSeq(resp.Header.Get("X-Envoy-Auth-Headers-To-Remove"), ",") {
		if name = strings.TrimSpace(name); name != "" {
			r.Header.Del(name)
		}
	}
	return true
}
