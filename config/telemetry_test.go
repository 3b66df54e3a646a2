package config

import (
	"strings"
	"testing"
	"time"
)

func TestTelemetryAndLogFields(t *testing.T) {
	dir := t.TempDir()
	base := "resources: [{url: https://mcp.example.com/mcp}]\nissuers: [{discovery_url: https://idp.example.com/.well-known/openid-configuration}]\npolicy: {paths: [" + dir + "]}\n"
	tests := []struct {
		name        string
		extra       string
		err         string // field named by the error; "" = valid
		subject     bool
		metrics     bool
		rate        float64
		serviceName string
		flush       time.Duration
	}{
		{"defaults", "", "", true, true, 1, "mcp-authz", DefaultLogFlushInterval},
		{"all set", "telemetry: {service_name: authz-eu, trace_subject: false, metrics: false}\nlog: {allow_sample_rate: 0.1, flush_interval: 1s}", "", false, false, 0.1, "authz-eu", time.Second},
		{"rate zero, lines written at once", "log: {allow_sample_rate: 0, flush_interval: 0s}", "", true, true, 0, "mcp-authz", 0},
		{"rate above 1", "log: {allow_sample_rate: 1.5}", "log.allow_sample_rate", false, false, 0, "", 0},
		{"negative rate", "log: {allow_sample_rate: -0.1}", "log.allow_sample_rate", false, false, 0, "", 0},
		{"negative flush interval", "log: {flush_interval: -1s}", "log.flush_interval", false, false, 0, "", 0},
		{"flush interval too long", "log: {flush_interval: 1m}", "log.flush_interval", false, false, 0, "", 0},
		{"flush interval not a duration", "log: {flush_interval: 100}", "log.flush_interval", false, false, 0, "", 0},
		{"service name with spaces", "telemetry: {service_name: ' x'}", "telemetry.service_name", false, false, 0, "", 0},
		{"unknown telemetry field", "telemetry: {endpoint: x}", "endpoint", false, false, 0, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(base + tc.extra))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Telemetry.SubjectTraced() != tc.subject || c.Telemetry.MetricsOn() != tc.metrics || c.Log.AllowRate() != tc.rate || c.Telemetry.ServiceName != tc.serviceName || c.Log.FlushEvery() != tc.flush {
				t.Errorf("got subject %v metrics %v rate %v name %q flush %v", c.Telemetry.SubjectTraced(), c.Telemetry.MetricsOn(), c.Log.AllowRate(), c.Telemetry.ServiceName, c.Log.FlushEvery())
			}
		})
	}
}
