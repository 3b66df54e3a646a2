package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestReportEndurance checks the verdicts of the endurance run: any wrong decision, RPC error, missing or
// failed policy load, missing rotation or growth beyond the flatness bounds fails it.
func TestReportEndurance(t *testing.T) {
	flat := []enduranceSample{
		{rssKiB: 100 << 10, heap: 50 << 20, goroutines: 80},
		{rssKiB: 110 << 10, heap: 55 << 20, goroutines: 82},
		{rssKiB: 105 << 10, heap: 52 << 20, goroutines: 81},
	}
	grown := func(f func(*enduranceSample)) []enduranceSample {
		s := slices.Clone(flat)
		f(&s[len(s)-1])
		return s
	}
	clean := enduranceTotals{sent: 1000, rewrites: 3, joined: true}
	loaded := policyStats{Generation: 4, Loads: 4}
	tests := []struct {
		name    string
		totals  enduranceTotals
		samples []enduranceSample
		policy  policyStats
		want    int
	}{
		{"clean and flat", clean, flat, loaded, 0},
		{"one sample: not judged", clean, flat[:1], loaded, 0},
		{"wrong decision", enduranceTotals{sent: 1000, wrong: 1, rewrites: 3, joined: true}, flat, loaded, 1},
		{"RPC error", enduranceTotals{sent: 1000, failed: 1, rewrites: 3, joined: true}, flat, loaded, 1},
		{"rotation missing", enduranceTotals{sent: 1000, rewrites: 3}, flat, loaded, 1},
		{"a rewrite not loaded", clean, flat, policyStats{Generation: 3, Loads: 3}, 1},
		{"a load failed", clean, flat, policyStats{Generation: 4, Loads: 4, Failures: 1, Error: "parse"}, 1},
		{"heap doubled", clean, grown(func(s *enduranceSample) { s.heap = 100 << 20 }), loaded, 1},
		{"RSS doubled", clean, grown(func(s *enduranceSample) { s.rssKiB = 200 << 10 }), loaded, 1},
		{"goroutines leak", clean, grown(func(s *enduranceSample) { s.goroutines = 200 }), loaded, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := reportEndurance(io.Discard, tc.totals, tc.samples, tc.policy); got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
		})
	}
}

// TestCopyPolicies checks that the endurance run's policy folder gets the policy modules but not their
// tests, and that a rewrite replaces the data file without leaving its temporary file behind.
func TestCopyPolicies(t *testing.T) {
	from, to := t.TempDir(), t.TempDir()
	for name, content := range map[string]string{"authz.rego": "package a", "authz_test.rego": "package a_test", "data.yaml": "x: 1"} {
		if err := os.WriteFile(filepath.Join(from, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := copyPolicies(from, to); err != nil {
		t.Fatal(err)
	}
	if err := writeAtomic(to, "data.yaml", "y: 2"); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(to)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"authz.rego", "data.yaml"}) {
		t.Errorf("policy folder holds %v, want authz.rego and data.yaml", names)
	}
	if b, _ := os.ReadFile(filepath.Join(to, "data.yaml")); string(b) != "y: 2" {
		t.Errorf("data.yaml = %q", b)
	}
	if err := copyPolicies(filepath.Join(from, "missing"), to); err == nil {
		t.Error("copy from a missing folder: no error")
	}
}
