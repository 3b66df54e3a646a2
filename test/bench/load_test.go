package main

import (
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/mcp-authz/mcp-authz/test/benchenv"
)

// TestExpected checks how the load generator judges an answer against the expected decision.
func TestExpected(t *testing.T) {
	ok := &authv3.CheckResponse{HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}
	denied := func(status int) *authv3.CheckResponse {
		return &authv3.CheckResponse{HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode(status)}}}}
	}
	tests := []struct {
		name string
		c    benchenv.Case
		resp *authv3.CheckResponse
		want bool
	}{
		{"allow, allowed", benchenv.Case{Allow: true, Status: 200}, ok, true},
		{"allow, denied", benchenv.Case{Allow: true, Status: 200}, denied(403), false},
		{"deny, allowed", benchenv.Case{Status: 401}, ok, false},
		{"deny, same status", benchenv.Case{Status: 401}, denied(401), true},
		{"deny, other status", benchenv.Case{Status: 401}, denied(403), false},
		{"deny, empty answer", benchenv.Case{Status: 403}, &authv3.CheckResponse{}, false},
		{"allow, empty answer", benchenv.Case{Allow: true, Status: 200}, &authv3.CheckResponse{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := expected(&tc.c, tc.resp); got != tc.want {
				t.Errorf("expected = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPercentile checks the quantiles read from sorted latencies.
func TestPercentile(t *testing.T) {
	lat := make([]time.Duration, 100)
	for i := range lat {
		lat[i] = time.Duration(i+1) * time.Millisecond
	}
	r := runResult{latencies: lat}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0, time.Millisecond},
		{0.5, 50 * time.Millisecond},
		{0.99, 99 * time.Millisecond},
		{1, 100 * time.Millisecond},
	}
	for _, tc := range tests {
		if got := r.percentile(tc.q); got != tc.want {
			t.Errorf("percentile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := (runResult{}).percentile(0.99); got != 0 {
		t.Errorf("percentile of nothing = %v", got)
	}
}

// TestSplitCPUs checks that the generator's and the targets' CPUs partition this process's CPUs.
func TestSplitCPUs(t *testing.T) {
	generator, targets, err := splitCPUs()
	if runtime.NumCPU() < 2 {
		if err == nil {
			t.Fatal("split one CPU without an error")
		}
		t.Skip("one CPU")
	}
	if err != nil {
		t.Fatal(err)
	}
	g, tg := strings.Split(generator, ","), strings.Split(targets, ",")
	seen := map[string]bool{}
	for _, c := range append(slices.Clone(g), tg...) {
		if seen[c] {
			t.Fatalf("CPU %s in both halves: %q, %q", c, generator, targets)
		}
		seen[c] = true
	}
	if len(g) == 0 || len(tg) == 0 || len(tg)-len(g) > 1 || len(g) > len(tg) {
		t.Errorf("halves %q and %q", generator, targets)
	}
	if err := pinTo(""); err != nil {
		t.Errorf("pinTo(\"\") = %v, want nothing done", err)
	}
}
