package envoy

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	grpcmd "google.golang.org/grpc/metadata"
)

// Tracing continues a trace from carried headers; *authz.Telemetry is one.
type Tracing interface {
	Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context
}

// Option changes a Server built by NewServer.
type Option func(*Server)

// WithTracing continues the trace Envoy sends in the Check call's gRPC metadata (`traceparent`, `b3`,
// `x-b3-*`: the span of Envoy's ext_authz client). Without it, or when the metadata carries none, the
// Check span continues the trace in the checked request's own headers.
func WithTracing(t Tracing) Option { return func(s *Server) { s.tracing = t } }

// WithClaimsMetadata adds the token's claims to the dynamic metadata of allows (config
// dynamic_metadata.claims).
func WithClaimsMetadata(on bool) Option { return func(s *Server) { s.claims = on } }

// traceContext returns ctx continuing the trace in the incoming gRPC metadata, if any.
func (s *Server) traceContext(ctx context.Context) context.Context {
	if s.tracing == nil {
		return ctx
	}
	md, ok := grpcmd.FromIncomingContext(ctx)
	if !ok {
		return ctx
	}
	return s.tracing.Extract(ctx, metadataCarrier(md))
}

// metadataCarrier reads trace headers from gRPC metadata.
type metadataCarrier grpcmd.MD

func (m metadataCarrier) Get(key string) string {
	if v := grpcmd.MD(m).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (m metadataCarrier) Set(key, value string) { grpcmd.MD(m).Set(key, value) }

func (m metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}
