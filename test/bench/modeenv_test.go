package main

import (
	"slices"
	"testing"
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
