// Package forwardauth adapts HTTP authorization requests from front proxies to package authz: an HTTP
// request describing the client's original request becomes an authz.Request, an authz.Decision becomes the
// HTTP response the proxy acts on. Like package envoy it never decides.
//
// Two shapes of request are understood, both under the handler's path prefix (service mounts it at /authz):
//
//   - Envoy ext_authz http_service: the original request itself, its path appended to the prefix
//     (`POST /authz/mcp`), with the original headers, Host and, when with_request_body is on, its body.
//   - Forward auth (nginx auth_request, Traefik ForwardAuth, Caddy forward_auth): a request to the prefix
//     itself (`GET /authz`) describing the original request in headers the proxy sets. Which headers is
//     configured, never guessed: the forwarded family (X-Forwarded-Method, X-Forwarded-Uri, as Traefik and
//     Caddy send them and the shipped nginx config does) or the original family (X-Original-Method,
//     X-Original-URI). Host and scheme come from X-Forwarded-Host and X-Forwarded-Proto in both.
//
// Proxies pass the client's own headers along, so a client can add the family the proxy does not set. A
// request whose two families disagree (or that repeats one of these headers) is refused with 400 in either
// shape: there is no telling which one describes the request the proxy routes.
//
// An allow is 200 with the identity headers set and X-Envoy-Auth-Headers-To-Remove naming the headers the
// proxy must strip (Authorization among them). A deny has the decision's status, WWW-Authenticate,
// content-type and JSON-RPC body (repeated in X-MCP-Authz-Body for nginx). A decision mcp-authz cannot make
// (keys never loaded) is 503.
//
// The endpoint trusts the headers of the configured family as the description of the original request. It
// is an internal endpoint for the front proxy only: it must never be reachable by clients. Bind the HTTP
// listener to a private address and do not route /authz from the public side of the proxy.
package forwardauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
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

// Family is the set of headers that describes the original request in the forward-auth shape.
type Family string

// The header families.
const (
	// Forwarded is X-Forwarded-Method and X-Forwarded-Uri (Traefik, Caddy, the shipped nginx config).
	Forwarded Family = "forwarded"
	// Original is X-Original-Method and X-Original-URI (nginx auth_request configurations).
	Original Family = "original"
)

// headers are the method and URI headers of the family, then those of the other one.
func (f Family) headers() (method, uri, otherMethod, otherURI string) {
	if f == Original {
		return hdrOriginalMethod, hdrOriginalURI, hdrForwardedMethod, hdrForwardedURI
	}
	return hdrForwardedMethod, hdrForwardedURI, hdrOriginalMethod, hdrOriginalURI
}

// Checker decides requests; *authz.Authorizer is one.
type Checker interface {
	Check(ctx context.Context, req *authz.Request) *authz.Decision
}

// Options configure a Handler.
type Options struct {
	// Prefix is the path the handler is mounted at (for example "/authz").
	Prefix string
	// MaxBody is the largest body read; a longer one is read one byte past it so that the authorizer refuses
	// it (413).
	MaxBody int
	// Family names the headers that describe the original request in the forward-auth shape. Default
	// Forwarded.
	Family Family
}

// Handler serves HTTP authorization requests under a path prefix.
type Handler struct {
	checker Checker
	log     *slog.Logger
	opts    Options
}

// New returns a Handler deciding with c; refusals of requests that do not describe an original request
// are logged to log.
func New(c Checker, log *slog.Logger, opts Options) *Handler {
	opts.Prefix = strings.TrimSuffix(opts.Prefix, "/")
	if opts.Family == "" {
		opts.Family = Forwarded
	}
	return &Handler{checker: c, log: log, opts: opts}
}

// RequestError is a forward-auth request that does not describe one original request. Status is 400 when
// the description is ambiguous (a client may have added headers) and 500 when a header the proxy must set
// is missing (a proxy configuration error).
type RequestError struct {
	Status int
	Reason string
}

func (e *RequestError) Error() string { return e.Reason }

func badRequest(format string, a ...any) error {
	return &RequestError{Status: http.StatusBadRequest, Reason: fmt.Sprintf(format, a...)}
}

// ServeHTTP decides the original request described by r and writes the decision.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, err := Request(r, h.opts)
	if err != nil {
		status := http.StatusInternalServerError
		var re *RequestError
		if errors.As(err, &re) {
			status = re.Status
		}
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "forward-auth request refused", slog.Int("status", status),
			slog.String("reason", err.Error()), slog.String("remote", r.RemoteAddr))
		writeRefusal(w, status, err.Error())
		return
	}
	Write(w, h.checker.Check(r.Context(), req))
}

// writeRefusal answers a request that could not be decided, without deciding anything.
func writeRefusal(w http.ResponseWriter, status int, reason string) {
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": nil,
		"error": map[string]any{"code": -32600, "message": "mcp-authz: " + reason}})
	out := w.Header()
	out.Set("Content-Type", "application/json")
	out.Set("Cache-Control", "no-store")
	out.Set(BodyHeader, string(body))
	out.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// Request translates an HTTP authorization request into the authz.Request it describes.
func Request(r *http.Request, opts Options) (*authz.Request, error) {
	if opts.Family == "" {
		opts.Family = Forwarded
	}
	method, uri, otherMethod, otherURI := opts.Family.headers()
	if err := agree(r.Header, method, otherMethod); err != nil {
		return nil, err
	}
	if err := agree(r.Header, uri, otherURI); err != nil {
		return nil, err
	}
	headers := make(map[string]string, len(r.Header)+1)
	for name, values := range r.Header {
		headers[strings.ToLower(name)] = strings.Join(values, ",")
	}
	req := &authz.Request{Headers: headers}
	target := r.RequestURI // the request-target as received, not re-encoded
	if target == "" {
		target = r.URL.RequestURI()
	}
	rest, ok := strings.CutPrefix(target, opts.Prefix)
	if !ok {
		return nil, errors.New("request is not under " + opts.Prefix)
	}
	var err error
	if rest == "" || rest[0] == '?' {
		// Forward auth: the proxy asks at the prefix itself and describes the original request in headers.
		if req.Path, err = single(r.Header, uri, false); err != nil {
			return nil, err
		}
		if req.Method, err = single(r.Header, method, false); err != nil {
			return nil, err
		}
		if req.Path == "" || req.Method == "" {
			return nil, &RequestError{Status: http.StatusInternalServerError,
				Reason: fmt.Sprintf("forward-auth request lacks %s or %s (forward_auth.request_headers is %q)", uri, method, opts.Family)}
		}
		req.Host = r.Host
		if fh, err := single(r.Header, hdrForwardedHost, true); err != nil {
			return nil, err
		} else if fh != "" {
			req.Host = fh
		}
	} else {
		// Envoy http_service: the original request itself, its path under the prefix.
		req.Method, req.Path, req.Host = r.Method, rest, r.Host
	}
	req.Scheme = "http"
	if r.TLS != nil {
		req.Scheme = "https"
	}
	if fp, err := single(r.Header, hdrForwardedProto, true); err != nil {
		return nil, err
	} else if fp != "" {
		req.Scheme = strings.ToLower(fp)
	}
	headers[":authority"] = req.Host
	req.BodyTruncated = headers[partialBodyHeader] == "true"
	if r.Body != nil && r.ContentLength != 0 {
		body, err := io.ReadAll(io.LimitReader(r.Body, int64(opts.MaxBody)+1))
		if err != nil {
			return nil, fmt.Errorf("reading the request body: %w", err)
		}
		req.Body = body
	}
	return req, nil
}

// agree refuses a request in which two headers naming the same thing in the two families are both present
// and differ.
func agree(h http.Header, name, other string) error {
	a, b := h.Values(name), h.Values(other)
	if len(a) > 0 && len(b) > 0 && strings.Join(a, ",") != strings.Join(b, ",") {
		return badRequest("%s and %s disagree", name, other)
	}
	return nil
}

// single is the one value of header name ("" when absent). A repeated header is refused, and so is a
// comma-separated list where the header is a list (X-Forwarded-Host and -Proto, to which proxies append):
// which element a proxy added and which the client sent cannot be told apart.
func single(h http.Header, name string, list bool) (string, error) {
	vs := h.Values(name)
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1 || list && strings.Contains(vs[0], ","):
		return "", badRequest("%s holds more than one value", name)
	}
	return strings.TrimSpace(vs[0]), nil
}

// Write renders a decision as the HTTP response a front proxy acts on.
func Write(w http.ResponseWriter, d *authz.Decision) {
	out := w.Header()
	for _, hv := range d.Headers {
		out.Set(hv.Name, hv.Value)
	}
	if d.Allow {
		remove := d.RemoveHeaders
		if out.Get("Authorization") != "" && !slices.Contains(remove, "authorization") {
			// A credential (an exchanged token) replaced the client's Authorization. A proxy that copies
			// the answer's Authorization (nginx auth_request_set, Traefik authResponseHeaders, Caddy
			// copy_headers, Envoy allowed_upstream_headers) sends the new token; one that does not must
			// still drop the client's, so authorization stays in the list: with Envoy's http_service,
			// which removes after copying, the exchanged token is dropped too, failing closed.
			remove = append(slices.Clip(remove), "authorization")
		}
		if len(remove) > 0 {
			out.Set(RemoveHeadersHeader, strings.Join(remove, ","))
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
