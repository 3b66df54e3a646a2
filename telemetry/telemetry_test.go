package telemetry

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestTracesExport(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		on       bool
		protocol string
		err      string // substring naming the variable at fault
	}{
		{"nothing set", nil, false, "", ""},
		{"endpoint, default protocol", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true, ProtocolHTTP, ""},
		{"traces endpoint, grpc", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, true, ProtocolGRPC, ""},
		{"traces protocol wins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, true, ProtocolHTTP, ""},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_TRACES_EXPORTER": "none"}, false, "", ""},
		{"exporter unsupported", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_TRACES_EXPORTER": "zipkin"}, false, "", "OTEL_TRACES_EXPORTER"},
		{"protocol unsupported", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, false, "", "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{"traces protocol unsupported", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "udp"}, false, "", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			protocol, on, err := tracesExport(env(tc.env))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil || on != tc.on || protocol != tc.protocol {
				t.Errorf("got (%q, %v, %v), want (%q, %v)", protocol, on, err, tc.protocol, tc.on)
			}
		})
	}
}

func TestNew(t *testing.T) {
	off := false
	tests := []struct {
		name        string
		cfg         config.Telemetry
		env         map[string]string
		wantTracing bool
		wantMetrics bool
	}{
		{"defaults: metrics only", config.Telemetry{ServiceName: "svc"}, nil, false, true},
		{"endpoint: tracing", config.Telemetry{ServiceName: "svc"}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, true, true},
		{"SDK disabled", config.Telemetry{ServiceName: "svc"}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "TRUE"}, false, false},
		{"metrics off", config.Telemetry{ServiceName: "svc", Metrics: &off}, nil, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(context.Background(), tc.cfg, WithGetenv(env(tc.env)))
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				// Nothing listens at the test endpoint: do not wait out the export timeout.
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				p.Shutdown(ctx)
			}()
			if p.Tracing() != tc.wantTracing {
				t.Errorf("Tracing() = %v, want %v", p.Tracing(), tc.wantTracing)
			}
			_, span := p.TracerProvider().Tracer("t").Start(context.Background(), "s")
			if span.IsRecording() != tc.wantTracing {
				t.Errorf("span recording = %v, want %v", span.IsRecording(), tc.wantTracing)
			}
			span.End()
			if (p.MetricsHandler() != nil) != tc.wantMetrics {
				t.Fatalf("metrics handler present = %v, want %v", p.MetricsHandler() != nil, tc.wantMetrics)
			}
			if tc.wantMetrics {
				c, _ := p.MeterProvider().Meter("t").Int64Counter("probe.count")
				c.Add(context.Background(), 3)
				rec := httptest.NewRecorder()
				p.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
				body, _ := io.ReadAll(rec.Body)
				if !strings.Contains(string(body), "probe_count_total 3") || !strings.Contains(string(body), `service_name="svc"`) {
					t.Errorf("metrics body lacks the probe counter or service name:\n%s", body)
				}
			}
		})
	}
}

func TestPropagator(t *testing.T) {
	const tid, w3cSpan, b3Span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "b7ad6b7169203331"
	tests := []struct {
		name     string
		headers  map[string]string
		wantSpan string
	}{
		{"traceparent", map[string]string{"traceparent": "00-" + tid + "-" + w3cSpan + "-01"}, w3cSpan},
		{"b3 single", map[string]string{"b3": tid + "-" + b3Span + "-1"}, b3Span},
		{"b3 multi", map[string]string{"x-b3-traceid": tid, "x-b3-spanid": b3Span, "x-b3-sampled": "1"}, b3Span},
		{"both: traceparent wins", map[string]string{"traceparent": "00-" + tid + "-" + w3cSpan + "-01", "b3": tid + "-" + b3Span + "-1"}, w3cSpan},
		{"none", map[string]string{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc := trace.SpanContextFromContext(Propagator().Extract(context.Background(), propagation.MapCarrier(tc.headers)))
			if tc.wantSpan == "" {
				if sc.IsValid() {
					t.Errorf("extracted %v from nothing", sc)
				}
				return
			}
			if sc.TraceID().String() != tid || sc.SpanID().String() != tc.wantSpan || !sc.IsRemote() {
				t.Errorf("extracted %s/%s remote=%v, want %s/%s", sc.TraceID(), sc.SpanID(), sc.IsRemote(), tid, tc.wantSpan)
			}
		})
	}
}
