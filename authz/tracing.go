package authz

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

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
	t.recordCheck(ctx, d, elapsed)
	if span == nil {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 12)
	code := d.Code
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
