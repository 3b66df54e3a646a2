package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/mcp-authz/mcp-authz/test/benchenv"
)

// overloadOptions configure the overload run (-overload).
type overloadOptions struct {
	multiples string
	limits    string
	duration  time.Duration
	inflight  int
	timeout   time.Duration
	users     int
}

func (o *overloadOptions) flags() {
	flag.StringVar(&o.multiples, "overload", "", "run the overload scenario instead of the comparison: measure the saturation throughput S of mcp-authz, then drive it open-loop at these multiples of S (e.g. 2,4) and at 0.5 for reference, with each -overload-limits")
	flag.StringVar(&o.limits, "overload-limits", "64,256,1000000", "overload: the server.max_concurrent_checks to run with, one mcp-authz child each (1000000 is effectively no limit)")
	flag.DurationVar(&o.duration, "overload-duration", 8*time.Second, "overload: length of the run at each multiple")
	flag.IntVar(&o.inflight, "overload-inflight", 4096, "overload: Checks the generator keeps in flight at most (more than the limits, to overload them); a Check due beyond that is skipped and counted")
	flag.IntVar(&o.users, "overload-users", 5000, "overload: users of the mixed corpus (each Check then verifies a signature, so S is low enough for this process to offer several times S); 0 takes the benchmark corpus (-users), which this process cannot offer 2×S of on 2 shared cores")
	flag.DurationVar(&o.timeout, "overload-timeout", 500*time.Millisecond, "overload: deadline of each Check (the shipped Envoy configuration's ext_authz timeout)")
}

// overloadRow is one flood of one target: the floor (limit 0) or an mcp-authz child.
type overloadRow struct {
	limit           int
	multiple        float64
	rate            float64
	r               floodResult
	rssStart        int64 // KiB
	rssEnd          int64 // KiB, right after the run
	goroutinesStart int
	peak            peaks
	serverCPU       time.Duration // CPU time the target used during the flood
	generatorCPU    time.Duration // CPU time this process used during the flood
}

// runOverload measures how mcp-authz behaves beyond its capacity, with each configured concurrency limit:
// what it admits and decides, what it sheds, how long the admitted Checks take compared with half load,
// and what its memory and goroutines do. It returns exit status 1 on any wrong decision.
func runOverload(o options) (int, error) {
	multiples, err := parseFloats(o.overload.multiples)
	if err != nil {
		return 0, fmt.Errorf("-overload: %w", err)
	}
	var limits []int
	for f := range strings.SplitSeq(o.overload.limits, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return 0, fmt.Errorf("-overload-limits %q: want positive integers separated by commas", o.overload.limits)
		}
		limits = append(limits, n)
	}
	e, err := newModeEnv(o, o.policies)
	if err != nil {
		return 0, err
	}
	defer e.close()
	corpus, what, err := overloadCorpus(e, o)
	if err != nil {
		return 0, err
	}
	fmt.Printf("overload: %s; %d gRPC connections; generator: open loop, at most %d Checks in flight, deadline %v per Check, %v per load; GOMAXPROCS %d\n",
		what, o.conns, o.overload.inflight, o.overload.timeout, o.overload.duration, numCPU())
	ctx := context.Background()
	sat, err := saturation(ctx, e, o, corpus)
	if err != nil {
		return 0, err
	}
	fmt.Printf("saturation throughput S = %.0f checks/s (mcp-authz with the default server settings, closed loop, concurrency %d, %v)\n", sat, o.concurrency, o.duration)
	loads := append([]float64{0.5}, multiples...)
	// The generator shares the machine with the server: the same floods against a server that does nothing
	// (the floor) show what load the generator can really offer.
	floor, err := e.startFloor(o.conns)
	if err != nil {
		return 0, err
	}
	var rows []overloadRow
	saturate(ctx, floor.client, corpus, false, o.concurrency, o.warmup)
	for _, m := range loads {
		rows = append(rows, floodRow(ctx, floor, corpus, false, 0, m, sat, o.overload))
		time.Sleep(o.overload.timeout + time.Second)
	}
	floor.stop()
	for _, limit := range limits {
		c, err := e.startAuthz(fmt.Sprintf("mcp-authz-limit-%d", limit), fmt.Sprintf("server: {max_concurrent_checks: %d}\n", limit), o.conns)
		if err != nil {
			return 0, err
		}
		saturate(ctx, c.client, corpus, false, min(o.concurrency, limit), o.warmup)
		for _, m := range loads {
			rows = append(rows, floodRow(ctx, c, corpus, true, limit, m, sat, o.overload))
			time.Sleep(o.overload.timeout + time.Second) // what is left of this run is answered or expired
		}
		c.stop()
	}
	return reportOverload(os.Stdout, rows), nil
}

// floodRow floods c at m×sat and samples it meanwhile.
func floodRow(ctx context.Context, c *child, corpus []benchenv.Case, verify bool, limit int, m, sat float64, o overloadOptions) overloadRow {
	row := overloadRow{limit: limit, multiple: m, rate: m * sat, rssStart: c.rssKiB()}
	if ms, err := c.memStats(false); err == nil {
		row.goroutinesStart = ms.Goroutines
	}
	w := watch(c, 100*time.Millisecond)
	cpu0, self0 := c.cpuTime(), selfCPU()
	row.r = flood(ctx, c.client, corpus, verify, row.rate, o.duration, o.inflight, o.timeout)
	row.serverCPU, row.generatorCPU = c.cpuTime()-cpu0, selfCPU()-self0
	row.peak = w.stop()
	row.rssEnd = c.rssKiB()
	fmt.Fprintf(os.Stderr, "%s at %.1f×S (%.0f/s): decided %d, shed %d, timed out %d, failed %d, skipped %d, wrong %d; decided p99 %v\n",
		row.name(), m, row.rate, row.r.decided, row.r.shed, row.r.timedOut, row.r.failed, row.r.skipped, row.r.wrong, percentile(row.r.decidedLat, 0.99).Round(time.Microsecond))
	return row
}

// name says what was flooded: the floor, or mcp-authz with its limit.
func (row overloadRow) name() string {
	switch {
	case row.limit == 0:
		return "floor"
	case row.limit >= 1000000:
		return fmt.Sprintf("limit %d (off)", row.limit)
	}
	return fmt.Sprintf("limit %d", row.limit)
}

// overloadCorpus is the mixed corpus of -overload-users users, or with 0 the benchmark's corpus, and what
// it is.
func overloadCorpus(e *modeEnv, o options) ([]benchenv.Case, string, error) {
	if o.overload.users == 0 {
		cs, err := benchenv.Corpus(e.idp.Provider, o.users)
		return cs, fmt.Sprintf("the benchmark corpus (%d CheckRequests, %d users)", len(cs), o.users), err
	}
	cs, err := benchenv.MixedCorpus(e.idp.Provider, "user", o.overload.users, time.Hour)
	return cs, fmt.Sprintf("the mixed corpus (%d CheckRequests: %d users with a token each, %d denies of %d kinds; more distinct tokens than the verifier caches, so a Check verifies a signature)",
		len(cs), o.overload.users, len(cs)-o.overload.users, len(benchenv.DenyKinds)), err
}

// saturation measures the throughput of an mcp-authz child with the default server settings.
func saturation(ctx context.Context, e *modeEnv, o options, corpus []benchenv.Case) (float64, error) {
	c, err := e.startAuthz("mcp-authz-saturation", "", o.conns)
	if err != nil {
		return 0, err
	}
	defer c.stop()
	saturate(ctx, c.client, corpus, false, o.concurrency, o.warmup)
	r := saturate(ctx, c.client, corpus, true, o.concurrency, o.duration)
	if r.mismatches > 0 || r.rpcErrors > 0 {
		return 0, fmt.Errorf("saturation run: %d wrong decisions, %d errors; first: %s", r.mismatches, r.rpcErrors, r.firstErr)
	}
	return r.rate(), nil
}

// reportOverload prints the overload table and what it shows, and returns 1 on any wrong decision.
func reportOverload(w io.Writer, rows []overloadRow) int {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tload\toffered/s\tsent\tskipped\tdecided\tdecided/s\tshed\ttimed out\tfailed\tp50\tp99\tp99 ÷ p99@0.5×S\tshed p99\tserver CPU cores\tdecided per server CPU s\tgenerator CPU cores\tRSS MiB start→peak→end\tgoroutines start→peak\theap MiB peak\twrong\t")
	status := 0
	ref := map[int]floodResult{}
	for _, row := range rows {
		if row.multiple == 0.5 {
			ref[row.limit] = row.r
		}
	}
	for _, row := range rows {
		r := row.r
		ratio := "-"
		if p := percentile(ref[row.limit].decidedLat, 0.99); p > 0 && row.multiple != 0.5 {
			ratio = fmt.Sprintf("%.1f", float64(percentile(r.decidedLat, 0.99))/float64(p))
		}
		perCPU := "-"
		if row.serverCPU > 0 {
			perCPU = fmt.Sprintf("%.0f", float64(r.decided)/row.serverCPU.Seconds())
		}
		fmt.Fprintf(tw, "%s\t%.1f×S\t%.0f\t%d\t%d\t%d\t%.0f\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%.2f\t%s\t%.2f\t%.1f→%.1f→%.1f\t%d→%d\t%.1f\t%d\t\n",
			row.name(), row.multiple, row.rate, r.sent, r.skipped, r.decided, float64(r.decided)/r.elapsed.Seconds(), r.shed, r.timedOut, r.failed,
			ms(percentile(r.decidedLat, 0.5)), ms(percentile(r.decidedLat, 0.99)), ratio, ms(percentile(r.shedLat, 0.99)),
			row.serverCPU.Seconds()/r.elapsed.Seconds(), perCPU, row.generatorCPU.Seconds()/r.elapsed.Seconds(),
			float64(row.rssStart)/1024, float64(row.peak.rssKiB)/1024, float64(row.rssEnd)/1024,
			row.goroutinesStart, row.peak.goroutines, float64(row.peak.heapInuse)/(1<<20), r.wrong)
		if r.wrong > 0 {
			status = 1
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "decided: answered with a decision (allow or deny); shed: refused at once with UNAVAILABLE (no decision: Envoy answers status_on_error, fail closed); timed out: no answer within the deadline; skipped: due while the generator had its bound in flight, not sent; CPU cores: CPU time used ÷ wall time (the machine's other load takes the rest)")
	for _, row := range rows {
		if row.r.firstErr != "" {
			fmt.Fprintf(w, "%s at %.1f×S: first failure: %.300s\n", row.name(), row.multiple, row.r.firstErr)
		}
	}
	var wrong int64
	for _, row := range rows {
		wrong += row.r.wrong
	}
	fmt.Fprintf(w, "wrong decisions: %d (target 0: %s)\n", wrong, verdict(wrong == 0))
	return status
}

// peaks are the highest values a watch saw.
type peaks struct {
	rssKiB     int64
	goroutines int
	heapInuse  uint64
}

// watcher samples a child's RSS, goroutines and heap until stopped.
type watcher struct {
	stopc chan struct{}
	wg    sync.WaitGroup
	p     peaks
}

// watch samples c every interval until stop.
func watch(c *child, interval time.Duration) *watcher {
	w := &watcher{stopc: make(chan struct{})}
	w.wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			w.p.rssKiB = max(w.p.rssKiB, c.rssKiB())
			if m, err := c.memStats(false); err == nil {
				w.p.goroutines = max(w.p.goroutines, m.Goroutines)
				w.p.heapInuse = max(w.p.heapInuse, m.HeapInuse)
			}
			select {
			case <-w.stopc:
				return
			case <-t.C:
			}
		}
	})
	return w
}

// stop ends the sampling and returns the peaks.
func (w *watcher) stop() peaks {
	close(w.stopc)
	w.wg.Wait()
	return w.p
}
