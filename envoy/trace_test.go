package envoy_test

import (
	"context"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/envoy"
	"github.com/mcp-authz/mcp-authz/telemetry"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
)

// recorder is a Checker remembering the span context it was called with.
type recorder struct{ sc trace.SpanContext }

func (r *recorder) Check(ctx context.Context, _ *authz.Request) *authz.Decision {
	r.sc = trace.SpanContextFromContext(ctx)
	return &authz.Decision{Status: 401}
}

func TestCheckContinuesTraceFromMetadata(t *testing.T) {
	const tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	tel, err := authz.NewTelemetry(authz.TelemetryConfig{TracerProvider: tp, Propagator: telemetry.Propagator()})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		tracing  bool
		md       metadata.MD
		wantSpan string // "" = no span context reaches the checker
	}{
		{"traceparent", true, metadata.Pairs("traceparent", "00-"+tid+"-"+sid+"-01"), sid},
		{"b3 single", true, metadata.Pairs("b3", tid+"-"+sid+"-1"), sid},
		{"b3 multi", true, metadata.Pairs("x-b3-traceid", tid, "x-b3-spanid", sid, "x-b3-sampled", "1"), sid},
		{"no trace metadata", true, metadata.Pairs("user-agent", "envoy"), ""},
		{"tracing off: metadata ignored", false, metadata.Pairs("traceparent", "00-"+tid+"-"+sid+"-01"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			var opts []envoy.Option
			if tc.tracing {
				opts = append(opts, envoy.WithTracing(tel))
			}
			ctx := metadata.NewIncomingContext(context.Background(), tc.md)
			if _, err := envoy.NewServer(rec, opts...).Check(ctx, &authv3.CheckRequest{}); err != nil {
				t.Fatal(err)
			}
			if tc.wantSpan == "" {
				if rec.sc.IsValid() {
					t.Errorf("span context %v reached the checker", rec.sc)
				}
				return
			}
			if rec.sc.TraceID().String() != tid || rec.sc.SpanID().String() != tc.wantSpan {
				t.Errorf("span context %s/%s, want %s/%s", rec.sc.TraceID(), rec.sc.SpanID(), tid, tc.wantSpan)
			}
		})
	}
}
