package main

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// floorTargets are issue 16's targets for mcp-authz's throughput as a fraction of the floor's, by corpus:
// a new token on every Check, a Zipf mix of users, and the small corpus (the original target). A flood of
// forged tokens has none of its own: it must cost no more than a valid new token (printSummary).
var floorTargets = map[string]float64{"fresh": 0.55, "zipf": 0.70, "small": 0.70}

// baselineTarget is mcp-authz's throughput as a multiple of the OPA-style baseline's, every corpus.
const baselineTarget = 3.0

// corpusSummary is one corpus's comparison, for the table after several.
type corpusSummary struct {
	corpus                 string
	floor, baseline, authz float64 // checks/s, medians; 0: target not run
	authzCPU, floorCPU     float64 // µs per Check
}

func summarize(corpus string, results map[string]*targetResult) corpusSummary {
	s := corpusSummary{corpus: corpus}
	if t, ok := results["floor"]; ok {
		s.floor, s.floorCPU = t.medianRate(), t.cpuPerCheck()
	}
	if t, ok := results["baseline"]; ok {
		s.baseline = t.medianRate()
	}
	if t, ok := results["mcp-authz"]; ok {
		s.authz, s.authzCPU = t.medianRate(), t.cpuPerCheck()
	}
	return s
}

// printSummary prints one line per corpus with its ratios and their targets, then whether a forged token
// costs no more CPU than a valid new one (badsig against fresh), when both ran.
func printSummary(w io.Writer, sums []corpusSummary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "corpus\tmcp-authz/floor\ttarget\tmcp-authz/baseline\ttarget\tmcp-authz CPU µs/check\tfloor CPU µs/check\t")
	cpu := map[string]float64{}
	for _, s := range sums {
		floorRatio, floorTarget := "-", "-"
		if s.floor > 0 && s.authz > 0 {
			r := s.authz / s.floor
			floorRatio = fmt.Sprintf("%.2f", r)
			if t, ok := floorTargets[s.corpus]; ok {
				floorTarget = fmt.Sprintf(">= %.2f %s", t, verdict(r >= t))
			}
		}
		baseRatio, baseTarget := "-", "-"
		if s.baseline > 0 && s.authz > 0 {
			r := s.authz / s.baseline
			baseRatio, baseTarget = fmt.Sprintf("%.2f", r), fmt.Sprintf(">= %.0f %s", baselineTarget, verdict(r >= baselineTarget))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t\n", s.corpus, floorRatio, floorTarget, baseRatio, baseTarget, s.authzCPU, s.floorCPU)
		cpu[s.corpus] = s.authzCPU
	}
	tw.Flush()
	if bad, ok := cpu["badsig"]; ok && bad > 0 {
		if fresh, ok := cpu["fresh"]; ok && fresh > 0 {
			fmt.Fprintf(w, "a forged token costs %.2f of a valid new token's CPU  (target <= 1: %s)\n", bad/fresh, verdict(bad <= fresh))
		}
	}
}
