package authz

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
)

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
	case id != nil && id.memo != nil && id.repeat:
		// A cached token's later request: the attributes that depend on it alone (and, for an allow, on the
		// resource) are encoded once, by the handler (WithAttrs). A token's first request writes them as
		// they are: most tokens of a busy service are used once, and would never use that handler again.
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
