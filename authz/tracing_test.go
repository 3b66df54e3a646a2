package authz_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/policy"
	"github.com/mcp-authz/mcp-authz/telemetry"
	"github.com/mcp-authz/mcp-authz/test/idp"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const resourceURL = "https://mcp.example.com/mcp"

// harness is an Authorizer on the shipped policies, trusting one test IdP served on 127.0.0.1.
type harness struct {
	idp   *idp.Provider
	authz *authz.Authorizer
}

// newHarness builds the harness; extra is appended to the configuration document, opts to the Authorizer's.
func newHarness(tb testing.TB, tel *authz.Telemetry, log *slog.Logger, extra string, opts ...authz.Option) *harness {
	tb.Helper()
	srv := httptest.NewUnstartedServer(nil)
	p, err := idp.New("http://" + srv.Listener.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	srv.Config.Handler = p.Handler()
	srv.Start()
	tb.Cleanup(srv.Close)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
resources: [{url: %s, scopes_supported: [tools:read, tools:call, tools:admin], allowed_origins: [https://app.example.com]}]
issuers: [{discovery_url: %s/.well-known/openid-configuration}]
policy: {paths: [../deploy/policies]}
%s`, resourceURL, p.Issuer(), extra)))
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	ks := authz.NewKeySet(cfg.Issuers[0], srv.Client(), log, tel)
	if _, err := ks.Keys(ctx, ""); err != nil {
		tb.Fatal(err)
	}
	v, err := authz.NewVerifier(cfg.Issuers, map[string]*authz.KeySet{p.Issuer(): ks}, 0, time.Now)
	if err != nil {
		tb.Fatal(err)
	}
	pol, err := policy.Load(ctx, cfg.Policy.Paths, cfg.Policy.Query)
	if err != nil {
		tb.Fatal(err)
	}
	a, err := authz.New(cfg, v, pol, log, append([]authz.Option{authz.WithTelemetry(tel)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	return &harness{idp: p, authz: a}
}

func (h *harness) token(tb testing.TB, extra map[string]any) string {
	tb.Helper()
	c := map[string]any{"sub": "alice", "aud": resourceURL, "client_id": "mcp-client", "scope": "tools:read tools:call"}
	for k, v := range extra {
		c[k] = v
	}
	tok, err := h.idp.Mint(c)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func request(headers map[string]string, path, body string) *authz.Request {
	h := map[string]string{":authority": "mcp.example.com", "content-type": "application/json", "x-request-id": "req-1"}
	for k, v := range headers {
		h[k] = v
	}
	return &authz.Request{Method: "POST", Scheme: "https", Host: "mcp.example.com", Path: path, Headers: h, Body: []byte(body)}
}

func callTool(name string) string {
	return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + name + `"}}`
}

const listTools = `{"jsonrpc":"2.0","id":7,"method":"tools/list"}`

// tracing returns telemetry recording every span synchronously into an in-memory exporter.
func tracing(tb testing.TB, traceSubject bool) (*authz.Telemetry, *tracetest.InMemoryExporter) {
	tb.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	tb.Cleanup(func() { tp.Shutdown(context.Background()) })
	tel, err := authz.NewTelemetry(authz.TelemetryConfig{TracerProvider: tp, Propagator: telemetry.Propagator(), TraceSubject: traceSubject})
	if err != nil {
		tb.Fatal(err)
	}
	return tel, exp
}

var jwtLike = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*`)

func TestCheckSpans(t *testing.T) {
	const (
		traceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
		parentID = "00f067aa0ba902b7"
		otherID  = "b7ad6b7169203331"
	)
	remote := func() context.Context {
		tid, _ := trace.TraceIDFromHex(traceID)
		sid, _ := trace.SpanIDFromHex(otherID)
		return trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true}))
	}
	tests := []struct {
		name         string
		ctx          func() context.Context
		headers      map[string]string
		body         string
		traceSubject bool
		wantParent   string // "" = a new root
		want         map[attribute.Key]any
	}{
		{"traceparent", context.Background, map[string]string{"traceparent": "00-" + traceID + "-" + parentID + "-01"}, callTool("echo"), true, parentID,
			map[attribute.Key]any{"authz.decision": "allow", "authz.reason_code": "allowed", "authz.status": int64(200), "enduser.id": "alice", "authz.client_id": "mcp-client", "mcp.method.name": "tools/call", "gen_ai.tool.name": "echo", "authz.request_id": "req-1", "authz.resource": resourceURL}},
		{"b3 multi", context.Background, map[string]string{"x-b3-traceid": traceID, "x-b3-spanid": parentID, "x-b3-sampled": "1"}, listTools, true, parentID,
			map[attribute.Key]any{"authz.decision": "allow", "mcp.method.name": "tools/list", "gen_ai.tool.name": nil}},
		{"b3 single", context.Background, map[string]string{"b3": traceID + "-" + parentID + "-1"}, listTools, false, parentID,
			map[attribute.Key]any{"authz.decision": "allow", "enduser.id": nil, "authz.client_id": "mcp-client"}},
		{"context wins over headers", remote, map[string]string{"traceparent": "00-" + traceID + "-" + parentID + "-01"}, listTools, true, otherID,
			map[attribute.Key]any{"authz.decision": "allow"}},
		{"no trace headers: new root", context.Background, nil, callTool("admin_reset"), true, "",
			map[attribute.Key]any{"authz.decision": "deny", "authz.reason_code": "insufficient_scope", "authz.status": int64(403)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tel, exp := tracing(t, tc.traceSubject)
			h := newHarness(t, tel, slog.New(slog.DiscardHandler), "")
			exp.Reset() // the key fetch span
			tok := h.token(t, nil)
			headers := map[string]string{"authorization": "Bearer " + tok}
			for k, v := range tc.headers {
				headers[k] = v
			}
			h.authz.Check(tc.ctx(), request(headers, "/mcp", tc.body))
			spans := exp.GetSpans()
			byName := map[string]tracetest.SpanStub{}
			for _, s := range spans {
				byName[s.Name] = s
				for _, kv := range s.Attributes {
					if v := kv.Value.String(); strings.Contains(v, tok) || jwtLike.MatchString(v) {
						t.Errorf("span %s attribute %s holds a token", s.Name, kv.Key)
					}
				}
			}
			check, ok := byName["authz.Check"]
			if !ok || len(spans) != 3 {
				t.Fatalf("spans = %v, want authz.Check, authz.VerifyToken, policy.Evaluate", names(spans))
			}
			if check.SpanKind != trace.SpanKindServer {
				t.Errorf("span kind = %v", check.SpanKind)
			}
			if tc.wantParent == "" {
				if check.Parent.IsValid() {
					t.Errorf("parent = %v, want a root span", check.Parent.SpanID())
				}
			} else if check.Parent.TraceID().String() != traceID || check.Parent.SpanID().String() != tc.wantParent {
				t.Errorf("parent = %s/%s, want %s/%s", check.Parent.TraceID(), check.Parent.SpanID(), traceID, tc.wantParent)
			}
			for _, child := range []string{"authz.VerifyToken", "policy.Evaluate"} {
				if got := byName[child].Parent.SpanID(); got != check.SpanContext.SpanID() {
					t.Errorf("%s parent = %s, want authz.Check %s", child, got, check.SpanContext.SpanID())
				}
			}
			attrs := map[attribute.Key]any{}
			for _, kv := range check.Attributes {
				attrs[kv.Key] = kv.Value.AsInterface()
			}
			for k, want := range tc.want {
				if got, ok := attrs[k]; want == nil && ok || want != nil && got != want {
					t.Errorf("%s = %#v, want %#v", k, got, want)
				}
			}
		})
	}
}

func names(spans tracetest.SpanStubs) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name
	}
	return out
}

// BenchmarkCheckTracing is one allowed tools/call through Authorizer.Check, with a W3C traceparent in the
// request: "none" has no telemetry at all (the code before instrumentation), "off" is the default process
// (metrics on, tracing off: no tracer, no span, no header parsing), "on" adds the SDK tracer provider with a
// batch processor in front of an in-memory exporter.
func BenchmarkCheckTracing(b *testing.B) {
	for _, mode := range []string{"none", "off", "on"} {
		b.Run(mode, func(b *testing.B) {
			tp := telemetryFor(b, mode)
			h := newHarness(b, tp, slog.New(slog.DiscardHandler), "")
			req := request(map[string]string{"authorization": "Bearer " + h.token(b, nil), "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, "/mcp", callTool("echo"))
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if d := h.authz.Check(ctx, req); !d.Allow {
					b.Fatal(d.Reason)
				}
			}
		})
	}
}

// telemetryFor builds the process telemetry as service does, with tracing off or into memory.
func telemetryFor(b *testing.B, mode string) *authz.Telemetry {
	b.Helper()
	if mode == "none" {
		return nil
	}
	opts := []telemetry.Option{telemetry.WithGetenv(func(string) string { return "" })}
	if mode == "on" {
		exp := tracetest.NewInMemoryExporter()
		opts = append(opts, telemetry.WithSpanProcessor(sdktrace.NewBatchSpanProcessor(&discarding{exp})))
	}
	p, err := telemetry.New(context.Background(), config.Telemetry{ServiceName: "bench"}, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Shutdown(context.Background()) })
	c := authz.TelemetryConfig{Propagator: p.Propagator(), MeterProvider: p.MeterProvider(), TraceSubject: true}
	if p.Tracing() {
		c.TracerProvider = p.TracerProvider()
	}
	tel, err := authz.NewTelemetry(c)
	if err != nil {
		b.Fatal(err)
	}
	return tel
}

// discarding is the in-memory exporter emptied after each batch, so a long benchmark does not grow.
type discarding struct{ *tracetest.InMemoryExporter }

func (d *discarding) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := d.InMemoryExporter.ExportSpans(ctx, spans)
	d.Reset()
	return err
}
