package service_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads the Prometheus text exposition at base/metrics.
func scrape(t *testing.T, base string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return families, string(body)
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// value is the value of the family's sample whose labels include want; ok is false when there is none.
func value(f *dto.MetricFamily, want map[string]string) (float64, bool) {
	for _, m := range f.GetMetric() {
		l := labels(m)
		match := true
		for k, v := range want {
			if l[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// TestMetrics sends a known mix of allows and denies and reads the counts back from /metrics.
func TestMetrics(t *testing.T) {
	e := newEnv(t)
	valid := bearer(mint(t, e.std, userClaims(nil)))
	expired := bearer(mint(t, e.std, userClaims(map[string]any{"exp": time.Now().Add(-2 * time.Hour).Unix(), "iat": time.Now().Add(-3 * time.Hour).Unix()})))
	intruder := bearer(mint(t, e.std, userClaims(map[string]any{"client_id": "intruder"})))
	unknownResource := func(r *authv3.CheckRequest) *authv3.CheckRequest {
		r.Attributes.ContextExtensions = map[string]string{"resource": "https://unknown.example.com/mcp"}
		return r
	}
	mix := []struct {
		name     string
		req      *authv3.CheckRequest
		times    int
		decision string
		reason   string
	}{
		{"allowed tools/list", checkRequest(valid, "/mcp", listTools), 3, "allow", "allowed"},
		{"allowed tools/call", checkRequest(valid, "/mcp", callTool("echo")), 1, "allow", "allowed"},
		{"no token", checkRequest(nil, "/mcp", listTools), 2, "deny", "missing_token"},
		{"expired", checkRequest(expired, "/mcp", listTools), 1, "deny", "invalid_token"},
		{"not a JWT", checkRequest(map[string]string{"authorization": "Bearer abc.def"}, "/mcp", listTools), 1, "deny", "invalid_token"},
		{"step-up", checkRequest(valid, "/mcp", callTool("admin_reset")), 2, "deny", "insufficient_scope"},
		{"client not allowed", checkRequest(intruder, "/mcp", listTools), 1, "deny", "policy_deny"},
		{"basic scheme", checkRequest(map[string]string{"authorization": "Basic YWxpY2U6c2VjcmV0"}, "/mcp", listTools), 1, "deny", "invalid_request"},
		{"batch", checkRequest(valid, "/mcp", "["+listTools+"]"), 1, "deny", "invalid_request"},
		{"unknown resource", unknownResource(checkRequest(valid, "/other", listTools)), 1, "deny", "no_resource"},
	}
	want := map[[2]string]float64{}
	perDecision := map[string]float64{}
	for _, m := range mix {
		for range m.times {
			resp, err := e.inst.client.Check(context.Background(), m.req)
			if err != nil {
				t.Fatalf("%s: %v", m.name, err)
			}
			if allowed := resp.GetOkResponse() != nil; allowed != (m.decision == "allow") {
				t.Fatalf("%s: allowed = %v, want decision %s", m.name, allowed, m.decision)
			}
		}
		want[[2]string{m.decision, m.reason}] += float64(m.times)
		perDecision[m.decision] += float64(m.times)
	}

	families, body := scrape(t, e.inst.http)
	checks := families["mcp_authz_checks_total"]
	if checks == nil {
		t.Fatalf("no mcp_authz_checks_total in\n%s", body)
	}
	got := map[[2]string]float64{}
	for _, m := range checks.GetMetric() {
		l := labels(m)
		got[[2]string{l["decision"], l["reason"]}] += m.GetCounter().GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("mcp_authz_checks_total{decision=%q,reason=%q} = %v, want %v", k[0], k[1], got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected mcp_authz_checks_total{decision=%q,reason=%q} = %v", k[0], k[1], v)
		}
	}

	tests := []metricWant{
		{"mcp_authz_check_duration_seconds", map[string]string{"decision": "allow"}, eq(perDecision["allow"]), "histogram count"},
		{"mcp_authz_check_duration_seconds", map[string]string{"decision": "deny"}, eq(perDecision["deny"]), "histogram count"},
		{"mcp_authz_policy_generation", nil, eq(1), ""},
		{"mcp_authz_policy_last_load_success", nil, eq(1), ""},
		// Of the mix, 7 Checks reach the policy (the allows, the step-ups, the client not allowed); a repeat of
		// the same call by the same token is answered from the decision cache.
		{"mcp_authz_decision_cache_hits_total", nil, func(v float64) bool { return v >= 3 }, "the repeated calls: 3 or more"},
		{"mcp_authz_decision_cache_decisions", nil, func(v float64) bool { return v >= 1 && v <= 4 }, "1 to 4 decisions"},
	}
	if h, m := families["mcp_authz_decision_cache_hits_total"], families["mcp_authz_decision_cache_misses_total"]; h == nil || m == nil {
		t.Errorf("no decision cache counts in\n%s", body)
	} else {
		hits, _ := value(h, nil)
		misses, _ := value(m, nil)
		if hits+misses != 7 {
			t.Errorf("decision cache hits %v + misses %v, want the 7 Checks that reached the policy", hits, misses)
		}
	}
	for _, p := range []string{e.std.Issuer(), e.okta.Issuer(), e.cognito.Issuer()} {
		iss := map[string]string{"issuer": p}
		tests = append(tests,
			metricWant{"mcp_authz_jwks_fetches_total", iss, func(v float64) bool { return v >= 1 }, "at least one fetch"},
			metricWant{"mcp_authz_keyset_age_seconds", iss, func(v float64) bool { return v >= 0 }, "a non-negative age"})
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s%v", tc.family, tc.labels), func(t *testing.T) {
			f := families[tc.family]
			if f == nil {
				t.Fatalf("no family %s in\n%s", tc.family, body)
			}
			v, ok := value(f, tc.labels)
			if !ok || !tc.want(v) {
				t.Errorf("%s%v = %v (present %v), want %s", tc.family, tc.labels, v, ok, tc.says)
			}
		})
	}
	if f := families["mcp_authz_jwks_fetch_failures_total"]; f != nil {
		for _, m := range f.GetMetric() {
			if m.GetCounter().GetValue() != 0 {
				t.Errorf("fetch failures %v = %v, want none", labels(m), m.GetCounter().GetValue())
			}
		}
	}
	if strings.Contains(body, strings.TrimPrefix(valid["authorization"], "Bearer ")) || jwtLike.MatchString(body) {
		t.Errorf("/metrics holds a token")
	}
}

// metricWant is one expectation on a scraped sample.
type metricWant struct {
	family string
	labels map[string]string
	want   func(float64) bool
	says   string
}

// jwtLike matches a compact JWS: three base64url segments, the first a JSON header.
var jwtLike = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*`)

func eq(want float64) func(float64) bool {
	return func(v float64) bool { return v == want }
}

func TestMetricsOff(t *testing.T) {
	p := startIdP(t)
	dir := policyDir(t, testData, nil)
	inst := startService(t, fmt.Sprintf(`
resources: [{url: %s}]
issuers: [{discovery_url: %s/.well-known/openid-configuration}]
policy: {paths: [%s]}
telemetry: {metrics: false}
`, resourceURL, p.Issuer(), dir), true)
	resp, err := http.Get(inst.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics with metrics off: %d, want 404", resp.StatusCode)
	}
}
