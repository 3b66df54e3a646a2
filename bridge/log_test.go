package bridge

import (
	"log/slog"
	"strings"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestLogDecision(t *testing.T) {
	buf := &syncBuffer{}
	b := &Bridge{log: slog.New(slog.NewJSONHandler(buf, nil))}
	is := &issuer{id: "okta"}
	b.logDecision(t.Context(), is, decision{event: "token", outcome: "deny", reason: strings.Repeat("r", 500), client: "Claude (abc)", redirect: "claude.ai", idpError: "invalid_grant"})
	b.logDecision(t.Context(), is, decision{event: "token", outcome: "error"})
	b.logDecision(t.Context(), is, decision{event: "register", outcome: "allow"})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines", len(lines))
	}
	for i, want := range []string{`"level":"WARN"`, `"level":"ERROR"`, `"level":"INFO"`} {
		if !strings.Contains(lines[i], want) || !strings.Contains(lines[i], `"msg":"bridge decision"`) || !strings.Contains(lines[i], `"bridge":"okta"`) {
			t.Errorf("line %d: %s", i, lines[i])
		}
	}
	for _, want := range []string{`"client":"Claude (abc)"`, `"redirect_host":"claude.ai"`, `"idp_error":"invalid_grant"`, strings.Repeat("r", 200) + `..."`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("line lacks %s: %s", want, lines[0])
		}
	}
	if strings.Contains(lines[2], "reason") {
		t.Errorf("empty fields logged: %s", lines[2])
	}
}

func TestErrorText(t *testing.T) {
	for in, want := range map[string]string{
		"plain description":            "plain description",
		"quote\" back\\slash\nnewline": "quote backslashnewline",
		"caf\u00e9":                    "caf",
		strings.Repeat("a", 300):       strings.Repeat("a", 200),
	} {
		if got := errorText(in); got != want {
			t.Errorf("errorText(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDecisionMetric: every decision is counted by event, outcome and bridge.
func TestDecisionMetric(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	e := newEnv(t, envOptions{bridgeOpts: []Option{WithMeter(mp.Meter("test"))}})
	e.register("http://127.0.0.1:1/cb")
	e.register("http://127.0.0.1:1/cb")
	e.postJSON("/register", map[string]any{"redirect_uris": []string{"https://evil.example/cb"}})
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "mcp_authz.bridge.decisions" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				ev, _ := dp.Attributes.Value("event")
				out, _ := dp.Attributes.Value("outcome")
				br, _ := dp.Attributes.Value("bridge")
				got[ev.AsString()+"/"+out.AsString()+"/"+br.AsString()] = dp.Value
			}
		}
	}
	if got["register/allow/default"] != 2 || got["register/deny/default"] != 1 {
		t.Errorf("counts %v", got)
	}
}
