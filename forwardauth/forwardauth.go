// Package forwardauth adapts HTTP authorization requests from front proxies to package authz: an HTTP
// request describing the client's original request becomes an authz.Request, an authz.Decision becomes the
// HTTP response the proxy acts on. Like package envoy it never decides.
//
// Two shapes of request are understood, both under the handler's path prefix (service mounts it at /authz):
//
//   - Envoy ext_authz http_service: the original request itself, its path appended to the prefix
//     (`POST /authz/mcp`), with the original headers, Host and, when with_request_body is on, its body.
//     X-Original-* and X-Forwarded-Host/Uri/Method are ignored in this shape (only a client could set them).
//   - nginx auth_request, Traefik ForwardAuth, Caddy forward_auth: a request to the prefix itself
//     (`GET /authz`) carrying the original request in X-Original-Method / X-Forwarded-Method,
//     X-Original-URI / X-Forwarded-Uri, X-Forwarded-Host and X-Forwarded-Proto, plus the client's headers.
//
// An allow is 200 with the identity headers set and X-Envoy-Auth-Headers-To-Remove naming the headers the
// proxy must strip (Authorization among them). A deny has the decision's status, WWW-Authenticate,
// content-type and JSON-RPC body (repeated in X-MCP-Authz-Body for nginx). A decision mcp-authz cannot make (keys never loaded) is 503.
//
// The endpoint trusts the X-Original-* and X-Forwarded-* headers as the description of the original
// request. It is an internal endpoint for the front proxy only: it must never be reachable by clients, or
// they could describe a request other than the one they send. Bind the HTTP listener to a private address
// and do not route /authz from the public side of the proxy.
package forwardauth

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/mcp-authz/mcp-authz/authz"
)

// Prefix is the path under which service mounts the handler.
const Prefix = "/authz"

// RemoveHeadersHeader lists, on an allow, the request headers the proxy must remove before forwarding
// upstream (Envoy http_service honours it as x-envoy-auth-headers-to-remove).
const RemoveHeadersHeader = "X-Envoy-Auth-Headers-To-Remove"

// BodyHeader repeats, on a deny, the JSON-RPC error body as a response header: nginx auth_request drops the
// sub-request's body, but can copy a header (auth_request_set) and return it as the client's body.
const BodyHeader = "X-MCP-Authz-Body"

// partialBodyHeader is set by Envoy when it sent only part of the body (allow_partial_message).
const partialBodyHeader = "x-envoy-auth-partial-body"

// Headers that describe the original request in forward-auth mode.
const (
	hdrOriginalMethod  = "X-Original-Method"
	hdrForwardedMethod = "X-Forwarded-Method"
	hdrOriginalURI     = "X-Original-Uri"
	hdrForwardedURI    = "X-Forwarded-Uri"
	hdrForwardedHost   = "X-Forwarded-Host"
	hdrForwardedProto  = "X-Forwarded-Proto"
)

// Checker decides requests; *authz.Authorizer is one.
type Checker interface {
	Check(ctx context.Context, req *authz.Request) *authz.Decision
}

// Handler serves HTTP authorization requests under a path prefix.
type Handler struct {
	checker Checker
	prefix  string
	maxBody int
}

// New returns a Handler deciding with c for requests under prefix (for example "/authz"). maxBody is the
// largest body read; a longer one is read one byte past it so that the authorizer refuses it (413).
func New(c Checker, prefix string, maxBody int) *Handler {
	return &Handler{checker: c, prefix: strings.TrimSuffix(prefix, "/"), maxBody: maxBody}
}

// errBadForward is a forward-auth request that does not describe an original request completely.
var errBadForward = errors.New("forward-auth request lacks X-Original-URI / X-Forwarded-Uri or X-Original-Method / X-Forwarded-Method")

// ServeHTTP decides the original request described by r and writes the decision.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, err := Request(r, h.prefix, h.maxBody)
	if err != nil {
		// A proxy configuration error: fail closed, without deciding anything.
		http.Error(w, "mcp-authz: "+err.Error(), http.StatusInternalServerError)
		return
	}
	Write(w, h.checker.Check(r.Context(), req))
}

// Request translates an HTTP authorization request into the authz.Request it describes.
func Request(r *http.Request, prefix string, maxBody int) (*authz.Request, error) {
	headers := make(map[string]string, len(r.Header)+1)
	for name, values := range r.Header {
		headers[strings.ToLower(name)] = strings.Join(values, ",")
	}
	req := &authz.Request{Headers: headers}
	rest, ok := strings.CutPrefix(r.URL.RequestURI(), prefix)
	if !ok {
		return nil, errors.New("request is not under " + prefix)
	}
	if rest == "" || rest[0] == '?' {
		// nginx auth_request / Traefik / Caddy ask at the prefix itself and describe the original request
		// in headers the proxy sets.
		req.Path = firstHeader(r.Header, hdrOriginalURI, hdrForwardedURI)
		req.Method = firstHeader(r.Header, hdrOriginalMethod, hdrForwardedMethod)
		if req.Path == "" || req.Method == "" {
			return nil, errBadForward
		}
		req.Host = r.Host
		if fh := firstHeader(r.Header, hdrForwardedHost); fh != "" {
			req.Host = strings.TrimSpace(strings.Split(fh, ",")[0])
		}
	} else {
		// Envoy http_service: the original request itself, its path under the prefix. Here X-Original-* and
		// X-Forwarded-Host/Uri/Method can only come from the client, so they are not read: the method, path
		// and Host of this request are the original ones.
		req.Method, req.Path, req.Host = r.Method, rest, r.Host
	}
	req.Scheme = "http"
	if r.TLS != nil {
		req.Scheme = "https"
	}
	if fp := firstHeader(r.Header, hdrForwardedProto); fp != "" {
		req.Scheme = strings.ToLower(strings.TrimSpace(strings.Split(fp, ",")[0]))
	}
	headers[":authority"] = req.Host
	req.BodyTruncated = headers[partialBodyHeader] == "true"
	if r.Body != nil && r.ContentLength != 0 {
		body, err := io.ReadAll(io.LimitReader(r.Body, int64(maxBody)+1))
		if err != nil {
			return nil, errors.New("reading the request body: " + err.Error())
		}
		req.Body = body
	}
	return req, nil
}

func firstHeader(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}

// Write renders a decision as the HTTP response a front proxy acts on.
func Write(w http.ResponseWriter, d *authz.Decision) {
	out := w.Header()
	for _, hv := range d.Headers {
		out.Set(hv.Name, hv.Value)
	}
	if d.Allow {
		if len(d.RemoveHeaders) > 0 {
			out.Set(RemoveHeadersHeader, strings.Join(d.RemoveHeaders, ","))
		}
		out.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	status := d.Status
	switch {
	case d.Unavailable:
		status = http.StatusServiceUnavailable
	case status < 400 || status > 599: // a deny must never look like an allow to the proxy
		status = http.StatusForbidden
	}
	out.Set(BodyHeader, string(d.Body))
	out.Set("Content-Length", strconv.Itoa(len(d.Body)))
	out.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(d.Body)
}
