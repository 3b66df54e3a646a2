package authz

import (
	"fmt"

	"go.opentelemetry.io/otel/attribute"
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
	checkOutcome  map[ReasonCode][]metric.AddOption // decision and reason_code of each code, built once (a slice: passing one option allocates)
	duration      metric.Float64Histogram
	durationAttrs map[string][]metric.RecordOption // by decision word
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
	t.checkOutcome = make(map[ReasonCode][]metric.AddOption, len(ReasonCodes))
	for _, code := range ReasonCodes {
		t.checkOutcome[code] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
			attribute.String("decision", code.Decision()), attribute.String("reason", string(code))))}
	}
	t.durationAttrs = map[string][]metric.RecordOption{}
	for _, w := range []string{"allow", "deny", "error"} {
		t.durationAttrs[w] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("decision", w)))}
	}
	return t, nil
}
