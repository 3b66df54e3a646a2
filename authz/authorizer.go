package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/policy"
	"go.opentelemetry.io/otel/trace"
)

// Policy decides one request's input document (built only as far as the policy reads it, and only when its
// decision cache misses); a *policy.Policy is one, and so is a *policy.Live that swaps generations of them.
type Policy interface {
	Evaluate(ctx context.Context, in policy.Input) (policy.Decision, error)
}

// Authorizer turns a Request into a Decision. It is safe for concurrent use.
type Authorizer struct {
	resources *resources
	verifier  *Verifier
	policy    Policy
	headers   config.IdentityHeaders
	identity  []string // identity header names, removed when the client sent them and we do not set them
	maxBody   int
	log       *slog.Logger
	allowRate float64    // fraction of allows logged
	tel       *Telemetry // nil: no spans, no metrics
}

// Option changes an Authorizer built by New.
type Option func(*Authorizer)

// WithTelemetry reports spans and metrics to t.
func WithTelemetry(t *Telemetry) Option { return func(a *Authorizer) { a.tel = t } }

// New returns an Authorizer for the configured resources, verifying tokens with v and deciding with p.
func New(cfg config.Config, v *Verifier, p Policy, log *slog.Logger, opts ...Option) (*Authorizer, error) {
	rs, err := newResources(cfg.Resources)
	if err != nil {
		return nil, err
	}
	h := cfg.IdentityHeaders
	a := &Authorizer{
		resources: rs,
		verifier:  v,
		policy:    p,
		headers:   h,
		identity:  []string{h.Subject, h.ClientID, h.Scopes, h.Issuer, h.Email},
		maxBody:   cfg.MaxBodyBytes,
		log:       log,
		allowRate: cfg.Log.AllowRate(),
	}
	for _, o := range opts {
		o(a)
	}
	return a, nil
}

// Check decides one request, records it (span, metrics) and logs the decision. The span continues the
// trace in ctx, or else the one in the request's `traceparent` / `b3` / `x-b3-*` headers.
func (a *Authorizer) Check(ctx context.Context, req *Request) *Decision {
	start := time.Now()
	ctx, span := a.tel.startCheck(ctx, req)
	d := a.decide(ctx, req)
	elapsed := time.Since(start)
	a.logDecision(ctx, req, d, elapsed)
	a.tel.endCheck(ctx, span, req, d, elapsed)
	return d
}

func (a *Authorizer) decide(ctx context.Context, req *Request) *Decision {
	if err := checkPath(req.Path); err != nil {
		return &Decision{Status: http.StatusBadRequest, Code: ReasonInvalidRequest, Reason: err.Error(),
			Headers: []Header{{"content-type", "application/json"}},
			Body:    errorBody(nil, 0, "Bad Request: ambiguous request path")}
	}
	res, err := a.resources.forRequest(req)
	if err != nil {
		return &Decision{Status: http.StatusForbidden, Code: ReasonNoResource, Reason: err.Error(),
			Headers: []Header{{"content-type", "application/json"}},
			Body:    errorBody(nil, 0, "Forbidden: no protected resource matches this request")}
	}
	msg, bodyErr := readMessage(req, a.maxBody, res.cfg.TrustMCPHeaders)
	var id []byte
	if msg != nil {
		id = msg.ID
	}
	var ident *Identity // set once the token is verified
	// deny builds a refusal: the status and challenge of e (scope for a step-up), the JSON-RPC error with
	// message, and reason for logs and traces (e's own text when empty).
	deny := func(code ReasonCode, e *Error, reason, message, scope string) *Decision {
		if reason == "" {
			reason = e.Error()
		}
		ch := Challenge{ResourceMetadata: res.metadataURL, Error: e.Code, Description: e.Description, Scope: scope}
		return &Decision{Status: e.Status, Unavailable: e.Unavailable, Code: code, Reason: reason, Resource: res.cfg.URL,
			MCP: msg, Identity: ident,
			Headers: []Header{{"content-type", "application/json"}, {"www-authenticate", ch.String()}},
			Body:    errorBody(id, e.RPCCode, message)}
	}
	if origin, ok := req.Headers["origin"]; ok && res.origins != nil && !res.origins[strings.ToLower(origin)] {
		return deny(ReasonOrigin, &Error{Status: http.StatusForbidden, Description: "origin not allowed"}, "", "Forbidden: origin not allowed", "")
	}
	raw, e := bearerToken(req)
	if e != nil {
		return deny(ReasonInvalidRequest, e, "", "Bad Request: "+e.Description, "")
	}
	if raw == "" {
		// No credentials: no error and no error_description (RFC 6750 section 3.1), and the scopes the resource
		// needs, which clients take as what to ask for.
		return deny(ReasonMissingToken, &Error{Status: http.StatusUnauthorized}, "missing bearer token", "Missing Bearer token", res.challengeScope)
	}
	ident, e = a.verify(ctx, raw, res.audiences)
	if e != nil {
		if e.Unavailable {
			return deny(ReasonUnavailable, e, "", "Service Unavailable: "+e.Description, "")
		}
		return deny(ReasonInvalidToken, e, "", "Invalid Bearer token: "+e.Description, "")
	}
	if claim := ident.unsendable; claim != "" {
		// A value the identity headers cannot carry as it is: the token cannot be used here.
		e := errInvalidToken("token claim " + claim + " cannot be sent as a header")
		return deny(ReasonInvalidToken, e, "", "Invalid Bearer token: "+e.Description, "")
	}
	if bodyErr != nil {
		code := ReasonInvalidRequest
		if bodyErr.Status == http.StatusRequestEntityTooLarge {
			code = ReasonBodyTooLarge
		}
		return deny(code, bodyErr, "", "Bad Request: "+bodyErr.Description, "")
	}
	pd, err := a.evaluate(ctx, req, res, ident, msg)
	if err != nil {
		if errors.Is(err, policy.ErrNoPolicy) { // a bundle not yet downloaded: mcp-authz cannot decide yet
			return deny(ReasonUnavailable, errUnavailable("no policy loaded yet"), "", "Service Unavailable: no policy loaded yet", "")
		}
		return deny(ReasonPolicyError, &Error{Status: http.StatusForbidden, Description: "policy evaluation failed"},
			fmt.Sprintf("policy error: %v", err), "Forbidden: policy evaluation failed", "")
	}
	if !pd.Allow {
		reason := pd.Reason
		if reason == "" {
			reason = "denied by policy"
		}
		e := &Error{Status: http.StatusForbidden, Description: reason}
		if len(pd.RequiredScopes) > 0 {
			e.Code = "insufficient_scope"
			return deny(ReasonInsufficientScope, e, "insufficient scope: "+reason, "Forbidden: "+reason,
				stepUpScope(pd.RequiredScopes, ident.Scopes, res.cfg.ScopesSupported))
		}
		return deny(ReasonPolicyDeny, e, "policy deny: "+reason, "Forbidden: "+reason, "")
	}
	return a.allow(res, ident, msg, pd.Headers)
}

// stepUpScope is the scope a client should ask for: what the policy requires plus the relevant scopes the
// token already holds (those the resource advertises, or all of them when it advertises none).
func stepUpScope(required, held, supported []string) string {
	out := slices.Clone(required)
	for _, s := range held {
		if (len(supported) == 0 || slices.Contains(supported, s)) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}

// allow builds the allow decision: identity headers set, the client's Authorization and any copy of an
// identity header we do not set removed, the policy's own headers added.
func (a *Authorizer) allow(res *resource, id *Identity, msg *Message, extra map[string]string) *Decision {
	d := &Decision{Allow: true, Status: http.StatusOK, Code: ReasonAllowed, Reason: "allowed", Identity: id, Resource: res.cfg.URL, MCP: msg}
	d.Headers, d.RemoveHeaders = a.allowHeaders(res, id, extra)
	return d
}

// allowHeaders builds the header lists of an allow of id to res, with the policy's headers extra: the
// headers to set, and those to remove (identity headers not set, so that no client copy passes, and
// Authorization unless the resource keeps it).
func (a *Authorizer) allowHeaders(res *resource, id *Identity, extra map[string]string) (set []Header, remove []string) {
	set = make([]Header, 0, len(a.identity)+len(extra))
	remove = make([]string, 0, len(a.identity)+1)
	add := func(name, value string) {
		if value != "" {
			set = append(set, Header{name, value})
		}
	}
	add(a.headers.Subject, id.Subject)
	add(a.headers.ClientID, id.ClientID)
	add(a.headers.Scopes, strings.Join(id.Scopes, " "))
	add(a.headers.Issuer, id.Issuer)
	add(a.headers.Email, id.Email)
	for name, value := range extra {
		name = strings.ToLower(name)
		if !safeHeader(name, value) || slices.Contains(a.identity, name) {
			a.log.Warn("policy header ignored", "header", name)
			continue
		}
		add(name, value)
	}
	for _, name := range a.identity {
		if !slices.ContainsFunc(set, func(s Header) bool { return s.Name == name }) {
			remove = append(remove, name)
		}
	}
	if !res.cfg.KeepAuthorization {
		remove = append(remove, "authorization")
	}
	return set, remove
}

// Ready reports why the Authorizer cannot decide yet (keys not loaded), or nil.
func (a *Authorizer) Ready() error { return a.verifier.Ready() }

// logDecision writes the one structured line per decision (the audit trail; every field is documented in
// the README). Denies and errors are always logged, allows at the configured sample rate. It never holds
// the token, and the path is logged without its query string.
func (a *Authorizer) logDecision(ctx context.Context, req *Request, d *Decision, elapsed time.Duration) {
	level := slog.LevelInfo
	if d.Unavailable {
		level = slog.LevelError
	}
	if d.Allow && a.allowRate < 1 && (a.allowRate <= 0 || rand.Float64() >= a.allowRate) {
		return
	}
	h := a.log.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	var buf [20]slog.Attr
	attrs := buf[:0]
	switch id := d.Identity; {
	case id != nil && id.memo != nil:
		// A cached token: the attributes that depend on it alone (and, for an allow, on the resource) are
		// encoded once, by the handler (WithAttrs).
		h = a.cachedTokenHandler(h, id, d)
		if !d.Allow {
			attrs = append(attrs, outcomeAttrs(d)...)
		}
	case id != nil:
		attrs = append(append(attrs, outcomeAttrs(d)...), identityAttrs(id)...)
	default:
		attrs = append(attrs, outcomeAttrs(d)...)
	}
	if m := d.MCP; m != nil {
		attrs = append(attrs, slog.String("mcp_method", m.Method))
		if m.Tool != "" {
			attrs = append(attrs, slog.String("tool", m.Tool))
		}
	}
	path, _, _ := strings.Cut(req.Path, "?")
	attrs = append(attrs, slog.String("request_id", requestID(req)),
		slog.String("http_method", req.Method), slog.String("host", req.Host), slog.String("path", path),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000))
	if d.Allow && a.allowRate < 1 {
		attrs = append(attrs, slog.Float64("sample_rate", a.allowRate))
	}
	if sc := trace.SpanFromContext(ctx); sc.IsRecording() {
		attrs = append(attrs, slog.String("trace_id", sc.SpanContext().TraceID().String()),
			slog.String("span_id", sc.SpanContext().SpanID().String()))
	}
	r := slog.NewRecord(time.Now(), level, "decision", 0) // pc 0: no source location, no runtime.Callers
	r.AddAttrs(attrs...)
	_ = h.Handle(ctx, r) // a log that cannot be written does not change the decision
}

// outcomeAttrs are the decision-log attributes of the outcome: decision, status, reason code and reason,
// resource. An allow's are the same for every allow of a resource.
func outcomeAttrs(d *Decision) []slog.Attr {
	return []slog.Attr{slog.String("decision", d.Code.Decision()), slog.Int("status", d.Status),
		slog.String("reason_code", string(d.Code)), slog.String("reason", redactTokens(d.Reason)),
		slog.String("resource", d.Resource)}
}

// identityAttrs are the decision-log attributes of an identity.
func identityAttrs(id *Identity) []slog.Attr {
	return []slog.Attr{slog.String("sub", id.Subject), slog.String("client_id", id.ClientID), slog.String("iss", id.Issuer)}
}

// cachedTokenHandler is h with the attributes of a cached token added, and for an allow the outcome's too
// (allows of a resource all log the same outcome): built once per cached token (and resource).
func (a *Authorizer) cachedTokenHandler(h slog.Handler, id *Identity, d *Decision) slog.Handler {
	key := identityLogKey{a: a}
	if d.Allow {
		key.allow = outcome{d.Resource, d.Code, d.Reason}
	}
	if v, ok := id.Memoized(key); ok {
		return v.(slog.Handler)
	}
	return id.Memo(key, func() any {
		attrs := identityAttrs(id)
		if d.Allow {
			attrs = append(outcomeAttrs(d), attrs...)
		}
		return h.WithAttrs(attrs)
	}).(slog.Handler)
}

// identityLogKey keys, in Identity.Memo, the decision-log handler of a cached token: the Authorizer's
// handler with the identity's attributes added, and for allows the outcome's (zero for denies).
type identityLogKey struct {
	a     *Authorizer
	allow outcome
}

// outcome is what the outcome attributes of an allow depend on (its status is always 200).
type outcome struct {
	resource string
	code     ReasonCode
	reason   string
}
