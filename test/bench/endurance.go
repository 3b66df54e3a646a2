package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/test/benchenv"
)

// enduranceOptions configure the endurance run (-endurance, `make soak`).
type enduranceOptions struct {
	duration    time.Duration
	users       int
	reloadEvery time.Duration
	rotateAt    float64
	sampleEvery time.Duration
	rate        float64
}

func (o *enduranceOptions) flags() {
	flag.DurationVar(&o.duration, "endurance", 0, "run the endurance scenario (make soak) instead of the comparison, for this long: the mixed corpus open-loop at -latency-at of saturation, a signing key rotation at the IdP partway, a policy reload every -reload-every; fails on a wrong decision, an RPC error, a failed reload or memory or goroutines that grow")
	flag.IntVar(&o.users, "endurance-users", 5000, "endurance: users of the mixed corpus, each with a token of its own; one request in six is a deny, with a token of its own too")
	flag.DurationVar(&o.reloadEvery, "reload-every", 30*time.Second, "endurance: how often the policy data file is rewritten (each rewrite a new policy generation deciding the corpus the same way)")
	flag.Float64Var(&o.rotateAt, "rotate-at", 0.4, "endurance: when the IdP rotates its signing key, as a fraction of the run; tokens of the new key join the corpus once the key set may be refetched")
	flag.DurationVar(&o.sampleEvery, "sample-every", 30*time.Second, "endurance: how often RSS, heap after a collection and goroutines are sampled (at least ten samples a run)")
	flag.Float64Var(&o.rate, "endurance-rate", 0, "endurance: Checks per second; 0 takes -latency-at times the saturation throughput measured on the mixed corpus")
}

// Flatness bounds of the endurance run, from the first sample (caches warm) to the last.
const (
	maxHeapGrowth      = 1.5 // heap in use after a collection, last ÷ first
	maxRSSGrowth       = 1.5 // resident set, last ÷ first
	maxGoroutineGrowth = 10  // goroutines, last − first
)

// enduranceSample is one reading of the child during the endurance run.
type enduranceSample struct {
	at         time.Duration
	rssKiB     int64
	heap       uint64 // in use after a collection
	goroutines int
	generation uint64
}

// runEndurance drives mcp-authz with the mixed corpus for the configured time while the IdP rotates its key
// and the policy is reloaded, checking every decision and sampling memory and goroutines. It returns exit
// status 1 on a wrong decision, an RPC error, a failed policy load, or growth beyond the flatness bounds.
func runEndurance(o options) (int, error) {
	eo := o.endurance
	if eo.users < 1 || eo.reloadEvery <= 0 || eo.rotateAt < 0 || eo.rotateAt >= 1 {
		return 0, fmt.Errorf("endurance: want -endurance-users >= 1, -reload-every > 0 and 0 <= -rotate-at < 1")
	}
	policies, err := os.MkdirTemp("", "mcp-authz-soak-policies-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(policies)
	if err := copyPolicies(o.policies, policies); err != nil {
		return 0, err
	}
	if err := writeAtomic(policies, "data.yaml", benchenv.PolicyDataVariant(0)); err != nil {
		return 0, err
	}
	e, err := newModeEnv(o, policies)
	if err != nil {
		return 0, err
	}
	defer e.close()
	cfg, err := config.Parse([]byte(benchenv.ConfigYAML(e.idp.Issuer(), policies, "info")))
	if err != nil {
		return 0, err
	}
	// A token signed with a key the key set does not hold yet is refused until the key set may be refetched:
	// tokens of the rotated key join the corpus only after that interval.
	refetchAfter := time.Duration(cfg.Issuers[0].MinRefreshInterval) + time.Second
	validFor := eo.duration + time.Hour
	mintStart := time.Now()
	corpus, err := benchenv.MixedCorpus(e.idp.Provider, "user", eo.users, validFor)
	if err != nil {
		return 0, err
	}
	fmt.Printf("endurance: mixed corpus of %d CheckRequests (%d users, each an allowed tools/call with a token of its own; %d denies of %d kinds: %s), minted in %v\n",
		len(corpus), eo.users, len(corpus)-eo.users, len(benchenv.DenyKinds), strings.Join(benchenv.DenyKinds, ", "), time.Since(mintStart).Round(time.Millisecond))

	c, err := e.startAuthz("mcp-authz", "", o.conns)
	if err != nil {
		return 0, err
	}
	defer c.stop()
	ctx := context.Background()
	saturate(ctx, c.client, corpus, false, o.concurrency, o.warmup)
	rate := eo.rate
	if rate <= 0 {
		r := saturate(ctx, c.client, corpus, true, o.concurrency, o.duration)
		if r.mismatches > 0 || r.rpcErrors > 0 {
			return 1, fmt.Errorf("saturation run: %d wrong decisions, %d errors; first: %s", r.mismatches, r.rpcErrors, r.firstErr)
		}
		rate = r.rate() * o.latencyAt
		fmt.Printf("saturation on the mixed corpus: %.0f checks/s; the run drives %.0f checks/s (%.2f of it)\n", r.rate(), rate, o.latencyAt)
	}
	step := max(time.Second, min(eo.sampleEvery, eo.duration/10))
	rotateAt := time.Duration(eo.rotateAt * float64(eo.duration))
	fmt.Printf("run: %v at %.0f checks/s, open loop; key rotation at %v (its tokens join %v later); policy reload every %v; a sample every %v; decision log: %s; GOMAXPROCS %d\n",
		eo.duration, rate, rotateAt, refetchAfter, eo.reloadEvery, step, o.authzLog, numCPU())

	reloads := startReloader(policies, eo.reloadEvery)
	var (
		sent, wrong, failed int64
		firstErr            string
		samples             []enduranceSample
		rotatedAt           time.Time
		rotated             chan []benchenv.Case
		joined              bool
	)
	start := time.Now()
	for elapsed := time.Duration(0); elapsed < eo.duration; elapsed = time.Since(start) {
		if rotated == nil && elapsed >= rotateAt {
			kid, err := e.idp.RotateKey("RS256")
			if err != nil {
				reloads.stop()
				return 0, err
			}
			rotatedAt, rotated = time.Now(), make(chan []benchenv.Case, 1)
			fmt.Printf("t=%v: the IdP rotated its signing key (new kid %s); minting %d users' tokens with it\n", elapsed.Round(time.Second), kid, eo.users/5)
			go func() {
				cs, err := benchenv.MixedCorpus(e.idp.Provider, "rotated", max(1, eo.users/5), validFor)
				if err != nil {
					fmt.Fprintln(os.Stderr, "endurance: rotated corpus:", err)
				}
				rotated <- cs
			}()
		}
		if rotated != nil && !joined && time.Since(rotatedAt) >= refetchAfter {
			select {
			case cs := <-rotated:
				if cs == nil {
					reloads.stop()
					return 0, fmt.Errorf("endurance: no corpus for the rotated key")
				}
				corpus, joined = append(slices.Clone(corpus), cs...), true
				fmt.Printf("t=%v: %d requests with tokens of the new key join the corpus (%d requests)\n", elapsed.Round(time.Second), len(cs), len(corpus))
			default:
			}
		}
		cpu0 := c.cpuTime()
		r := fixedRate(ctx, c.client, corpus, true, max(o.concurrency, 64), rate, min(step, eo.duration-elapsed))
		cores := (c.cpuTime() - cpu0).Seconds() / r.elapsed.Seconds()
		sent += r.sent
		wrong += r.mismatches
		failed += r.rpcErrors
		if firstErr == "" {
			firstErr = r.firstErr
		}
		s := enduranceSample{at: time.Since(start), rssKiB: c.rssKiB()}
		if m, err := c.memStats(true); err == nil {
			s.heap, s.goroutines = m.HeapInuse, m.Goroutines
		}
		if ps, err := c.policyStats(); err == nil {
			s.generation = ps.Generation
		}
		samples = append(samples, s)
		fmt.Printf("t=%4.0fs  checks %8d  wrong %d  errors %d  p50 %s p99 %s  CPU %.2f cores  RSS %.1f MiB  heap after GC %.1f MiB  goroutines %d  policy generation %d\n",
			s.at.Seconds(), sent, wrong, failed, ms(r.percentile(0.5)), ms(r.percentile(0.99)), cores, float64(s.rssKiB)/1024, float64(s.heap)/(1<<20), s.goroutines, s.generation)
	}
	written := reloads.stop()
	time.Sleep(2 * time.Second) // the last rewrite is loaded (debounce, compile)
	ps, err := c.policyStats()
	if err != nil {
		return 0, err
	}
	return reportEndurance(os.Stdout, enduranceTotals{sent, wrong, failed, firstErr, written, joined}, samples, ps), nil
}

// enduranceTotals are the counts of a whole endurance run.
type enduranceTotals struct {
	sent, wrong, failed int64
	firstErr            string
	rewrites            int  // policy data rewrites
	joined              bool // tokens of the rotated key joined the corpus
}

// reportEndurance prints the verdicts of the endurance run to w and returns its exit status: 1 on a wrong
// decision, an RPC error, a policy load missing or failed, a rotation that did not happen, or growth beyond
// the flatness bounds.
func reportEndurance(w io.Writer, t enduranceTotals, samples []enduranceSample, ps policyStats) int {
	sent, wrong, failed, firstErr, written, joined := t.sent, t.wrong, t.failed, t.firstErr, t.rewrites, t.joined
	status := 0
	fail := func(ok bool) string {
		if !ok {
			status = 1
		}
		return verdict(ok)
	}
	fmt.Fprintf(w, "checks %d: wrong decisions %d (target 0: %s), RPC errors %d (target 0: %s)\n", sent, wrong, fail(wrong == 0), failed, fail(failed == 0))
	if firstErr != "" {
		fmt.Fprintf(w, "first failure: %.300s\n", firstErr)
	}
	fmt.Fprintf(w, "policy: %d rewrites, %d successful loads (1 at start + one per rewrite: %s), %d failed loads (target 0: %s)%s\n",
		written, ps.Loads, fail(ps.Loads == uint64(written)+1), ps.Failures, fail(ps.Failures == 0), errSuffix(ps.Error))
	fmt.Fprintf(w, "key rotation: tokens of the new key in the corpus: %s\n", fail(joined))
	if len(samples) < 2 {
		fmt.Fprintln(w, "flatness: fewer than two samples, not judged")
		return status
	}
	first, last := samples[0], samples[len(samples)-1]
	heapRatio := float64(last.heap) / float64(max(1, first.heap))
	rssRatio := float64(last.rssKiB) / float64(max(1, first.rssKiB))
	var heapMax uint64
	var rssMax int64
	goroutineMax := 0
	for _, s := range samples {
		heapMax, rssMax, goroutineMax = max(heapMax, s.heap), max(rssMax, s.rssKiB), max(goroutineMax, s.goroutines)
	}
	fmt.Fprintf(w, "flatness, first sample (t=%.0fs, caches warm) → last (t=%.0fs):\n", first.at.Seconds(), last.at.Seconds())
	fmt.Fprintf(w, "  heap after GC %.1f → %.1f MiB (max %.1f): last/first %.2f (target <= %.1f: %s)\n",
		float64(first.heap)/(1<<20), float64(last.heap)/(1<<20), float64(heapMax)/(1<<20), heapRatio, maxHeapGrowth, fail(heapRatio <= maxHeapGrowth))
	fmt.Fprintf(w, "  RSS %.1f → %.1f MiB (max %.1f): last/first %.2f (target <= %.1f: %s)\n",
		float64(first.rssKiB)/1024, float64(last.rssKiB)/1024, float64(rssMax)/1024, rssRatio, maxRSSGrowth, fail(rssRatio <= maxRSSGrowth))
	fmt.Fprintf(w, "  goroutines %d → %d (max %d): last−first %d (target <= %d: %s)\n",
		first.goroutines, last.goroutines, goroutineMax, last.goroutines-first.goroutines, maxGoroutineGrowth, fail(last.goroutines-first.goroutines <= maxGoroutineGrowth))
	if status != 0 {
		fmt.Fprintln(w, "FAIL")
	}
	return status
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return "; last load error: " + e
}

// reloader rewrites the policy data file periodically.
type reloader struct {
	stopc   chan struct{}
	wg      sync.WaitGroup
	written int
}

// startReloader rewrites dir/data.yaml with the next policy data variant every `every` until stopped.
func startReloader(dir string, every time.Duration) *reloader {
	r := &reloader{stopc: make(chan struct{})}
	r.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-r.stopc:
				return
			case <-t.C:
			}
			if err := writeAtomic(dir, "data.yaml", benchenv.PolicyDataVariant(r.written+1)); err != nil {
				fmt.Fprintln(os.Stderr, "endurance: policy rewrite:", err)
				continue
			}
			r.written++
		}
	})
	return r
}

// stop ends the rewrites and returns how many were made.
func (r *reloader) stop() int {
	close(r.stopc)
	r.wg.Wait()
	return r.written
}

// copyPolicies copies the policy modules (.rego, not tests) of folder from into to.
func copyPolicies(from, to string) error {
	entries, err := os.ReadDir(from)
	if err != nil {
		return fmt.Errorf("policies: %w", err)
	}
	for _, en := range entries {
		name := en.Name()
		if en.IsDir() || !strings.HasSuffix(name, ".rego") || strings.HasSuffix(name, "_test.rego") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			return fmt.Errorf("policies: %w", err)
		}
		if err := os.WriteFile(filepath.Join(to, name), b, 0o600); err != nil {
			return fmt.Errorf("policies: %w", err)
		}
	}
	return nil
}

// writeAtomic replaces dir/name with content through a hidden temporary file (which the policy loader
// ignores) and a rename, so that a reload never reads a half-written file.
func writeAtomic(dir, name, content string) error {
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("replace %s: %w", name, err)
	}
	return nil
}
