package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/policy"
	"go.opentelemetry.io/otel/codes"
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
	// identity are the identity header names and the identity assertion's (when configured): removed when
	// the client sent them and mcp-authz does not set them, and never set by a policy.
	identity  []string
	maxBody   int
	log       *slog.Logger
	allowRate float64    // fraction of allows logged
	tel       *Telemetry // nil: no spans, no metrics
	// credentials add what the MCP server gets on an allow besides the identity headers (credential.go).
	credentials []Credential
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
	if ia := cfg.IdentityAssertion; ia != nil {
		a.identity = append(a.identity, ia.Header)
	}
	for _, o := range opts {
		o(a)
	}
	if err := a.tel.ObserveTokenCaches(v); err != nil { // once per Authorizer: its verifier's caches
		return nil, err
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
	d := a.allow(res, ident, msg, pd.Headers)
	if len(a.credentials) > 0 {
		g := Grant{Resource: res.cfg.URL, Token: raw, Identity: ident, RequestID: requestID(req),
			PolicyRevision: pd.Revision, AssertionClaims: pd.AssertionClaims}
		if e := a.addCredentials(ctx, g, d); e != nil {
			code, message := ReasonPolicyDeny, "Forbidden: "+e.Description
			if e.Unavailable || e.Status >= 500 { // the IdP failed or refused what the upstream needs: not the client's fault
				code, message = ReasonUnavailable, http.StatusText(e.Status)+": "+e.Description
			}
			return deny(code, e, "upstream credential: "+e.Error(), message, "")
		}
	}
	return d
}

// verify runs the Verifier inside a span.
func (a *Authorizer) verify(ctx context.Context, raw string, audiences []string) (*Identity, *Error) {
	t := a.tel
	if t == nil || t.tracer == nil {
		return a.verifier.verify(ctx, raw, audiences)
	}
	ctx, span := t.tracer.Start(ctx, spanVerify)
	defer span.End()
	id, e := a.verifier.verify(ctx, raw, audiences)
	if e != nil {
		span.SetAttributes(attrReason.String(redactTokens(e.Error())))
		if e.Unavailable {
			span.SetStatus(codes.Error, redactTokens(e.Description))
		}
		return id, e
	}
	span.SetAttributes(t.identityAttrs(nil, id)...)
	return id, nil
}

// evaluate runs the policy inside a span.
func (a *Authorizer) evaluate(ctx context.Context, req *Request, res *resource, id *Identity, msg *Message) (policy.Decision, error) {
	t := a.tel
	if t == nil || t.tracer == nil {
		return a.evaluatePolicy(ctx, req, res, id, msg)
	}
	ctx, span := t.tracer.Start(ctx, spanPolicy)
	defer span.End()
	decision, err := a.evaluatePolicy(ctx, req, res, id, msg)
	if err != nil {
		span.SetStatus(codes.Error, redactTokens(err.Error()))
		return decision, err
	}
	span.SetAttributes(attrAllow.Bool(decision.Allow), attrReason.String(redactTokens(decision.Reason)))
	return decision, nil
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
