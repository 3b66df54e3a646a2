package main

import (
	"slices"
	"testing"
	"time"
)

// TestParseFloats checks the reading of -overload's multiples.
func TestParseFloats(t *testing.T) {
	tests := []struct {
		in      string
		want    []float64
		wantErr bool
	}{
		{"2,4", []float64{2, 4}, false},
		{" 1.5 , 3", []float64{1.5, 3}, false},
		{"2x", nil, true},
		{"0", nil, true},
		{"-1", nil, true},
		{"", nil, true},
		{"2,,4", nil, true},
	}
	for _, tc := range tests {
		got, err := parseFloats(tc.in)
		if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
			t.Errorf("parseFloats(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestStatCPU checks the reading of a process's CPU time from /proc/<pid>/stat.
func TestStatCPU(t *testing.T) {
	tests := []struct {
		stat string
		want time.Duration
	}{
		{"1234 (loadbench) S 1 2 3 4 5 6 7 8 9 10 150 50 0 0 20 0 4 0", 2 * time.Second},
		{"1234 (a b) c) R 1 2 3 4 5 6 7 8 9 10 7 3 0 0", 100 * time.Millisecond},
		{"1234 (short) S 1 2", 0},
		{"garbage", 0},
	}
	for _, tc := range tests {
		if got := statCPU(tc.stat); got != tc.want {
			t.Errorf("statCPU(%q) = %v, want %v", tc.stat, got, tc.want)
		}
	}
	if self := selfCPU(); self <= 0 {
		t.Errorf("selfCPU = %v", self)
	}
}
