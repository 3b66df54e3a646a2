package bridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// decision is one bridge decision for the log: what happened, to which client, and why. It never holds a
// token, a code, a verifier, a state or a cookie value.
type decision struct {
	event    string // register, authorize, consent, callback, token, refresh, metadata
	outcome  string // allow, deny, error
	reason   string // why, for a deny or an error
	client   string // the client's label: its URL, or its name and a short hash
	redirect string // the host of the client's redirect URI
	idpError string // the error code the IdP answered, if any
}

// logDecision writes one structured line per bridge decision (info for an allow, warn for a deny, error for
// a failure of the bridge or the IdP) and counts it.
func (b *Bridge) logDecision(ctx context.Context, is *issuer, d decision) {
	if b.decisions != nil {
		b.decisions.Add(ctx, 1, metric.WithAttributes(attribute.String("event", d.event), attribute.String("outcome", d.outcome), attribute.String("bridge", is.id)))
	}
	level := slog.LevelInfo
	switch d.outcome {
	case "deny":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	attrs := []slog.Attr{slog.String("event", d.event), slog.String("outcome", d.outcome), slog.String("bridge", is.id)}
	for _, kv := range []struct{ k, v string }{{"reason", d.reason}, {"client", d.client}, {"redirect_host", d.redirect}, {"idp_error", d.idpError}} {
		if kv.v != "" {
			attrs = append(attrs, slog.String(kv.k, shorten(kv.v)))
		}
	}
	b.log.LogAttrs(ctx, level, "bridge decision", attrs...)
}

// shorten bounds a logged value: client names, URLs and reasons come from requests.
func shorten(s string) string {
	const max = 200
	if len(s) > max {
		return strings.ToValidUTF8(s[:max], "") + "..."
	}
	return s
}

// digest is a short, stable name of a value (a client id, a binding cookie): 16 bytes of its SHA-256, in
// hex.
func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}
