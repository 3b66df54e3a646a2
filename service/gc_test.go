package service

import (
	"runtime/debug"
	"testing"
)

// TestTuneGC checks that the serve command's collector target is GCPercent, and that GOGC in the
// environment wins.
func TestTuneGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	tests := []struct {
		env  string
		want int // the target reported and in force
	}{
		{"", GCPercent},
		{"50", 50},
		{"off", -1},
	}
	for _, tc := range tests {
		debug.SetGCPercent(100)
		if tc.env == "off" {
			debug.SetGCPercent(-1) // as the runtime reads GOGC=off at start
		} else if tc.env != "" {
			debug.SetGCPercent(50)
		}
		got := TuneGC(func(name string) string {
			if name == "GOGC" {
				return tc.env
			}
			return ""
		})
		if inForce := debug.SetGCPercent(100); got != tc.want || inForce != tc.want {
			t.Errorf("GOGC=%q: TuneGC reports %d, %d in force; want %d", tc.env, got, inForce, tc.want)
		}
	}
}
