// Package telemetry builds mcp-authz's OpenTelemetry providers from the configuration and the standard
// OTEL_* environment variables: a tracer provider exporting OTLP (gRPC or HTTP, per
// OTEL_EXPORTER_OTLP_PROTOCOL) or a no-op one when tracing is off, a meter provider read by a Prometheus
// registry of its own, and the propagator that continues the proxy's trace (W3C trace context and B3).
// Nothing here is global: the providers are handed to the packages that record, and shut down on exit.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/mcp-authz/mcp-authz/config"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Protocols accepted in OTEL_EXPORTER_OTLP_PROTOCOL / OTEL_EXPORTER_OTLP_TRACES_PROTOCOL.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// Providers holds the tracer and meter providers of one process. Hand them to the code that records; call
// Shutdown on exit to flush spans still buffered.
type Providers struct {
	tracerProvider trace.TracerProvider
	sdkTracer      *sdktrace.TracerProvider // nil when tracing is off
	meterProvider  metric.MeterProvider
	sdkMeter       *sdkmetric.MeterProvider // nil when metrics are off
	metrics        http.Handler             // nil when metrics are off
	propagator     propagation.TextMapPropagator
	traceSubject   bool
}

// Option changes how New builds the providers.
type Option func(*options)

type options struct {
	getenv    func(string) string
	processor sdktrace.SpanProcessor
}

// WithGetenv replaces os.Getenv in deciding whether tracing is on and over which protocol. The OTLP
// exporters themselves still read the process environment (endpoint, headers, TLS, timeout).
func WithGetenv(getenv func(string) string) Option { return func(o *options) { o.getenv = getenv } }

// WithSpanProcessor turns tracing on with sp instead of an OTLP exporter, whatever the environment says
// (benchmarks and tests that keep spans in memory).
func WithSpanProcessor(sp sdktrace.SpanProcessor) Option {
	return func(o *options) { o.processor = sp }
}

// New builds the providers. Tracing is on when an OTLP endpoint is configured
// (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT) and neither OTEL_SDK_DISABLED=true nor
// OTEL_TRACES_EXPORTER=none says otherwise; when off, the tracer provider is a no-op and costs nothing.
// Metrics are on unless cfg turns them off (or OTEL_SDK_DISABLED=true). An error names the variable at fault.
func New(ctx context.Context, cfg config.Telemetry, opts ...Option) (*Providers, error) {
	o := options{getenv: os.Getenv}
	for _, opt := range opts {
		opt(&o)
	}
	p := &Providers{
		tracerProvider: tracenoop.NewTracerProvider(),
		meterProvider:  metricnoop.NewMeterProvider(),
		propagator:     Propagator(),
		traceSubject:   cfg.SubjectTraced(),
	}
	disabled := strings.EqualFold(strings.TrimSpace(o.getenv("OTEL_SDK_DISABLED")), "true")
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", cfg.ServiceName)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override
	)
	if err != nil && res == nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	if cfg.MetricsOn() && !disabled {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
		if err != nil {
			return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
		}
		p.sdkMeter = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
		p.meterProvider = p.sdkMeter
		p.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	}
	sp := o.processor
	if sp == nil && !disabled {
		protocol, on, err := tracesExport(o.getenv)
		if err != nil {
			p.Shutdown(ctx)
			return nil, err
		}
		if on {
			exp, err := newExporter(ctx, protocol)
			if err != nil {
				p.Shutdown(ctx)
				return nil, fmt.Errorf("telemetry: OTLP %s trace exporter: %w", protocol, err)
			}
			sp = sdktrace.NewBatchSpanProcessor(exp) // OTEL_BSP_* apply
		}
	}
	if sp != nil {
		// The sampler comes from OTEL_TRACES_SAMPLER (default parentbased_always_on: Envoy's decision wins).
		p.sdkTracer = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sp), sdktrace.WithResource(res))
		p.tracerProvider = p.sdkTracer
	}
	return p, nil
}

// tracesExport reads whether spans are exported and over which protocol.
func tracesExport(getenv func(string) string) (protocol string, on bool, err error) {
	switch v := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); v {
	case "", "otlp":
	case "none":
		return "", false, nil
	default:
		return "", false, fmt.Errorf("telemetry: OTEL_TRACES_EXPORTER: %q is not supported (otlp or none)", v)
	}
	if getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" {
		return "", false, nil
	}
	name, protocol := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
	if protocol == "" {
		name, protocol = "OTEL_EXPORTER_OTLP_PROTOCOL", strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
	}
	switch protocol {
	case "":
		return ProtocolHTTP, true, nil // the specification's default
	case ProtocolGRPC, ProtocolHTTP:
		return protocol, true, nil
	default:
		return "", false, fmt.Errorf("telemetry: %s: %q is not supported (grpc or http/protobuf)", name, protocol)
	}
}

func newExporter(ctx context.Context, protocol string) (sdktrace.SpanExporter, error) {
	if protocol == ProtocolGRPC {
		return otlptracegrpc.New(ctx)
	}
	return otlptracehttp.New(ctx)
}

// Propagator reads and writes the trace context of a request: B3 (single `b3` and multi `x-b3-*` headers)
// and W3C `traceparent`; when a request carries both, `traceparent` wins.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(b3.New(), propagation.TraceContext{})
}

// Tracing reports whether spans are recorded and exported.
func (p *Providers) Tracing() bool { return p.sdkTracer != nil }

// TracerProvider starts spans; a no-op provider when tracing is off.
func (p *Providers) TracerProvider() trace.TracerProvider { return p.tracerProvider }

// MeterProvider creates instruments; a no-op provider when metrics are off.
func (p *Providers) MeterProvider() metric.MeterProvider { return p.meterProvider }

// Propagator continues the proxy's trace.
func (p *Providers) Propagator() propagation.TextMapPropagator { return p.propagator }

// TraceSubject reports whether spans may carry the token's subject.
func (p *Providers) TraceSubject() bool { return p.traceSubject }

// MetricsHandler serves the metrics in the Prometheus text format; nil when metrics are off.
func (p *Providers) MetricsHandler() http.Handler { return p.metrics }

// ForceFlush exports every span ended so far.
func (p *Providers) ForceFlush(ctx context.Context) error {
	if p.sdkTracer == nil {
		return nil
	}
	return p.sdkTracer.ForceFlush(ctx)
}

// Shutdown flushes buffered spans and stops the providers; later spans and measurements are dropped.
func (p *Providers) Shutdown(ctx context.Context) error {
	var errs []error
	if p.sdkTracer != nil {
		errs = append(errs, p.sdkTracer.Shutdown(ctx))
	}
	if p.sdkMeter != nil {
		errs = append(errs, p.sdkMeter.Shutdown(ctx))
	}
	return errors.Join(errs...)
}
