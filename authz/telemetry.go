package authz

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mcp-authz/mcp-authz/policy"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// instrumentationName names the tracer and meter of this package.
const instrumentationName = "github.com/mcp-authz/mcp-authz/authz"

// Span names.
const (
	spanCheck   = "authz.Check"
	spanVerify  = "authz.VerifyToken"
	spanPolicy  = "policy.Evaluate"
	spanFetch   = "authz.FetchKeys"
	spanRefresh = "authz.RefreshKeys"
)

// Span and metric attribute keys. Values never hold a token or the Authorization header.
const (
	attrDecision   = attribute.Key("authz.decision")
	attrStatus     = attribute.Key("authz.status")
	attrReasonCode = attribute.Key("authz.reason_code")
	attrReason     = attribute.Key("authz.reason")
	attrResource   = attribute.Key("authz.resource")
	attrIssuer     = attribute.Key("authz.issuer")
	attrClientID   = attribute.Key("authz.client_id")
	attrSubject    = attribute.Key("enduser.id")
	attrRequestID  = attribute.Key("authz.request_id")
	attrMCPMethod  = attribute.Key("mcp.method.name")
	attrTool       = attribute.Key("gen_ai.tool.name")
	attrAllow      = attribute.Key("policy.allow")
	attrKeys       = attribute.Key("authz.keys")
)

// Telemetry is what an Authorizer and its key sets report to: spans (a server span per Check with child
// spans for token verification, policy evaluation and key fetches) and metrics. A nil *Telemetry reports
// nothing, and so does one without a tracer provider for spans: then no span is started and no trace
// header is parsed.
type Telemetry struct {
	tracer       trace.Tracer // nil: tracing off
	propagator   propagation.TextMapPropagator
	traceSubject bool
	meter        metric.Meter

	checks        metric.Int64Counter
	checkOutcome  map[ReasonCode]metric.AddOption // decision and reason_code of each code, built once
	duration      metric.Float64Histogram
	durationAttrs map[string]metric.RecordOption // by decision word
	fetches       metric.Int64Counter
	fetchFailures metric.Int64Counter
	keysSkipped   metric.Int64Counter
}

// TelemetryConfig says where an Authorizer's telemetry goes.
type TelemetryConfig struct {
	// TracerProvider starts the spans; nil turns tracing off at no cost.
	TracerProvider trace.TracerProvider
	// Propagator reads the proxy's trace context from request headers; nil means W3C trace context only.
	Propagator propagation.TextMapPropagator
	// MeterProvider creates the metric instruments; nil records no metrics.
	MeterProvider metric.MeterProvider
	// TraceSubject puts the token's subject on spans (enduser.id).
	TraceSubject bool
}

// checkBuckets are the latency histogram's bucket bounds, in seconds: 50µs to 2.5s.
var checkBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

// NewTelemetry creates the tracer and the metric instruments.
func NewTelemetry(c TelemetryConfig) (*Telemetry, error) {
	t := &Telemetry{propagator: c.Propagator, traceSubject: c.TraceSubject}
	if c.TracerProvider != nil {
		t.tracer = c.TracerProvider.Tracer(instrumentationName)
	}
	if t.propagator == nil {
		t.propagator = propagation.TraceContext{}
	}
	if c.MeterProvider == nil {
		return t, nil
	}
	t.meter = c.MeterProvider.Meter(instrumentationName)
	var err error
	if t.checks, err = t.meter.Int64Counter("mcp_authz.checks", metric.WithUnit("{check}"),
		metric.WithDescription("Check decisions by decision (allow, deny, error) and reason code.")); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	if t.duration, err = t.meter.Float64Histogram("mcp_authz.check.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to decide one Check, by decision."),
		metric.WithExplicitBucketBoundaries(checkBuckets...)); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	if t.fetches, err = t.meter.Int64Counter("mcp_authz.jwks.fetches", metric.WithUnit("{fetch}"),
		metric.WithDescription("Key set fetches (discovery and JWKS), by issuer.")); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	if t.fetchFailures, err = t.meter.Int64Counter("mcp_authz.jwks.fetch_failures", metric.WithUnit("{fetch}"),
		metric.WithDescription("Failed key set fetches, by issuer.")); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	if t.keysSkipped, err = t.meter.Int64Counter("mcp_authz.jwks.keys_skipped", metric.WithUnit("{key}"),
		metric.WithDescription("Keys of fetched key sets skipped as unusable (unknown kty, malformed, private), by issuer.")); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	t.checkOutcome = make(map[ReasonCode]metric.AddOption, len(ReasonCodes))
	for _, code := range ReasonCodes {
		t.checkOutcome[code] = metric.WithAttributeSet(attribute.NewSet(
			attribute.String("decision", code.Decision()), attribute.String("reason", string(code))))
	}
	t.durationAttrs = map[string]metric.RecordOption{}
	for _, w := range []string{"allow", "deny", "error"} {
		t.durationAttrs[w] = metric.WithAttributeSet(attribute.NewSet(attribute.String("decision", w)))
	}
	return t, nil
}

// Extract continues the trace carried by carrier (`traceparent`, `b3` or `x-b3-*` headers) in the returned
// context, unless ctx already holds a span context. Authorizer.Check does this itself with
// Request.Headers; an adapter calls it for trace headers that arrive elsewhere (gRPC metadata, the headers
// of an HTTP authorization sub-request). It does nothing when tracing is off.
func (t *Telemetry) Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	if t == nil || t.tracer == nil || trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	return t.propagator.Extract(ctx, carrier)
}

// headerCarrier reads trace headers from Request.Headers (lower-case keys).
type headerCarrier map[string]string

func (h headerCarrier) Get(key string) string { return h[key] }
func (h headerCarrier) Set(string, string)    {}
func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// startCheck starts the server span of one Check, continuing the trace of ctx or else of the request's
// headers. The span is nil when tracing is off.
func (t *Telemetry) startCheck(ctx context.Context, req *Request) (context.Context, trace.Span) {
	if t == nil || t.tracer == nil {
		return ctx, nil
	}
	ctx = t.Extract(ctx, headerCarrier(req.Headers))
	return t.tracer.Start(ctx, spanCheck, trace.WithSpanKind(trace.SpanKindServer))
}

// endCheck records the decision on the span and in the metrics.
func (t *Telemetry) endCheck(ctx context.Context, span trace.Span, req *Request, d *Decision, elapsed time.Duration) {
	if t == nil {
		return
	}
	code := d.Code
	if t.checks != nil {
		t.checks.Add(ctx, 1, t.checkOutcome[code])
		t.duration.Record(ctx, elapsed.Seconds(), t.durationAttrs[code.Decision()])
	}
	if span == nil {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 12)
	attrs = append(attrs,
		attrDecision.String(code.Decision()), attrStatus.Int(d.Status),
		attrReasonCode.String(string(code)), attrReason.String(redactTokens(d.Reason)))
	if d.Resource != "" {
		attrs = append(attrs, attrResource.String(d.Resource))
	}
	if id := requestID(req); id != "" {
		attrs = append(attrs, attrRequestID.String(id))
	}
	attrs = t.identityAttrs(attrs, d.Identity)
	if m := d.MCP; m != nil {
		if m.Method != "" {
			attrs = append(attrs, attrMCPMethod.String(m.Method))
		}
		if m.Tool != "" {
			attrs = append(attrs, attrTool.String(m.Tool))
		}
	}
	span.SetAttributes(attrs...)
	if d.Unavailable {
		span.SetStatus(codes.Error, redactTokens(d.Reason))
	}
	span.End()
}

func (t *Telemetry) identityAttrs(attrs []attribute.KeyValue, id *Identity) []attribute.KeyValue {
	if id == nil {
		return attrs
	}
	attrs = append(attrs, attrIssuer.String(id.Issuer), attrClientID.String(id.ClientID))
	if t.traceSubject && id.Subject != "" {
		attrs = append(attrs, attrSubject.String(id.Subject))
	}
	return attrs
}

// verify runs the Verifier inside a span.
func (a *Authorizer) verify(ctx context.Context, raw string, audiences []string) (*Identity, *Error) {
	t := a.tel
	if t == nil || t.tracer == nil {
		return a.verifier.Verify(ctx, raw, audiences)
	}
	ctx, span := t.tracer.Start(ctx, spanVerify)
	defer span.End()
	id, e := a.verifier.Verify(ctx, raw, audiences)
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

// ObserveFetch is a FetchObserver counting key set fetches, failures and skipped keys per issuer.
func (t *Telemetry) ObserveFetch(issuer string, err error, _, skipped int) {
	if t == nil || t.fetches == nil {
		return
	}
	opt := metric.WithAttributeSet(attribute.NewSet(attribute.String("issuer", issuer)))
	t.fetches.Add(context.Background(), 1, opt)
	if err != nil {
		t.fetchFailures.Add(context.Background(), 1, opt)
	}
	if skipped > 0 {
		t.keysSkipped.Add(context.Background(), int64(skipped), opt)
	}
}

// ObserveKeySets reports the age of each loaded key set (mcp_authz_keyset_age_seconds, by issuer).
func (t *Telemetry) ObserveKeySets(keys []*KeySet) error {
	if t == nil || t.meter == nil {
		return nil
	}
	_, err := t.meter.Float64ObservableGauge("mcp_authz.keyset.age", metric.WithUnit("s"),
		metric.WithDescription("Time since the key set in use was fetched, by issuer; absent until loaded."),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			now := time.Now()
			for _, k := range keys {
				if k.Ready() {
					o.Observe(k.Age(now).Seconds(), metric.WithAttributes(attribute.String("issuer", k.issuer)))
				}
			}
			return nil
		}))
	return err
}

// ObservePolicy reports the policy generation in use and whether the last load succeeded, as read from
// state at each collection (mcp_authz_policy_generation, mcp_authz_policy_last_load_success). A live
// reloader hands its own status function; a policy loaded once reports generation 1, loaded.
func (t *Telemetry) ObservePolicy(state func() (generation int64, ok bool)) error {
	if t == nil || t.meter == nil {
		return nil
	}
	gen, err := t.meter.Int64ObservableGauge("mcp_authz.policy.generation",
		metric.WithDescription("Generation of the policy in use; it grows with every successful load."))
	if err != nil {
		return err
	}
	loaded, err := t.meter.Int64ObservableGauge("mcp_authz.policy.last_load_success",
		metric.WithDescription("1 when the last policy load succeeded, else 0."))
	if err != nil {
		return err
	}
	_, err = t.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		g, ok := state()
		o.ObserveInt64(gen, g)
		v := int64(0)
		if ok {
			v = 1
		}
		o.ObserveInt64(loaded, v)
		return nil
	}, gen, loaded)
	return err
}

// startFetch starts the span of one key set fetch; a background refresh (root) starts a trace of its own.
func (t *Telemetry) startFetch(ctx context.Context, name, issuer string, root bool) (context.Context, trace.Span) {
	if t == nil || t.tracer == nil {
		return ctx, nil
	}
	opts := []trace.SpanStartOption{trace.WithAttributes(attrIssuer.String(issuer))}
	if root {
		opts = append(opts, trace.WithNewRoot())
	}
	return t.tracer.Start(ctx, name, opts...)
}

// endFetch ends a key set span with its outcome.
func endFetch(span trace.Span, err error, keys int) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, redactTokens(err.Error()))
	} else if keys > 0 {
		span.SetAttributes(attrKeys.Int(keys))
	}
	span.End()
}

// maxRequestIDBytes bounds the client-controlled `x-request-id` recorded in logs and spans.
const maxRequestIDBytes = 128

// requestID is the request's `x-request-id`, cut to maxRequestIDBytes and scrubbed of tokens.
func requestID(req *Request) string {
	id := req.Headers["x-request-id"]
	if len(id) > maxRequestIDBytes {
		id = id[:maxRequestIDBytes]
	}
	return redactTokens(id)
}

// redactTokens replaces anything shaped like a compact JWS/JWE (three or more dot-separated base64url
// segments, the first a JOSE header: base64url of `{"`, so starting "eyJ") in a free-text value. Reasons never carry a token
// by construction; this keeps a future mistake out of traces and logs.
func redactTokens(s string) string {
	if !mayHoldToken(s) {
		return s
	}
	out := make([]byte, 0, len(s))
	i := 0
	for i < len(s) {
		if !isB64URL(s[i]) {
			out = append(out, s[i])
			i++
			continue
		}
		j := i
		segs := 1
		for j < len(s) && (isB64URL(s[j]) || s[j] == '.') {
			if s[j] == '.' {
				segs++
			}
			j++
		}
		if segs >= 3 && strings.Contains(s[i:j], "eyJ") {
			out = append(out, "[redacted]"...)
		} else {
			out = append(out, s[i:j]...)
		}
		i = j
	}
	return string(out)
}

// mayHoldToken is the cheap test before redactTokens scans: two dots at least.
func mayHoldToken(s string) bool {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			if n++; n == 2 {
				return true
			}
		}
	}
	return false
}

func isB64URL(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '='
}
