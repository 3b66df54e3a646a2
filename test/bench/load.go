package main

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/mcp-authz/mcp-authz/test/benchenv"
	"google.golang.org/grpc"
)

// maxSamples bounds the latencies kept by one run (and so its memory); a run also stops once it has sent
// this many requests.
const maxSamples = 4 << 20

// runResult is what one load run measured.
type runResult struct {
	sent       int64           // requests answered (with or without an RPC error)
	rpcErrors  int64           // RPCs that failed
	mismatches int64           // answers that were not the expected decision (when checked)
	elapsed    time.Duration   // wall time of the run
	latencies  []time.Duration // one per answered request, sorted
	firstErr   string          // the first RPC error or mismatch, if any
	pacerLate  time.Duration   // fixedRate: p99 of how late the pacer's timer woke it
}

// rate is answered requests per second.
func (r runResult) rate() float64 { return float64(r.sent) / r.elapsed.Seconds() }

// percentile returns the q-quantile (0..1) of the latencies.
func (r runResult) percentile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(q * float64(len(r.latencies)-1))
	return r.latencies[i]
}

// expected reports whether resp is the decision c must get: an OK response on an allow, a denied
// response with c's HTTP status on a deny.
func expected(c *benchenv.Case, resp *authv3.CheckResponse) bool {
	if c.Allow {
		return resp.GetOkResponse() != nil && resp.GetDeniedResponse() == nil
	}
	d := resp.GetDeniedResponse()
	return d != nil && resp.GetOkResponse() == nil && int(d.GetStatus().GetCode()) == c.Status
}

// worker state shared by the two kinds of run.
type loadState struct {
	client     authv3.AuthorizationClient
	corpus     []benchenv.Case
	verify     bool
	next       atomic.Int64
	sent       atomic.Int64
	rpcErrors  atomic.Int64
	mismatches atomic.Int64
	firstErr   atomic.Pointer[string] // the first failure, to say what went wrong
}

// do sends the next request of the corpus and checks the answer.
func (s *loadState) do(ctx context.Context) {
	i := s.next.Add(1) - 1
	c := &s.corpus[int(i%int64(len(s.corpus)))]
	resp, err := s.client.Check(ctx, c.Request)
	s.sent.Add(1)
	switch {
	case err != nil:
		s.rpcErrors.Add(1)
		msg := c.Name + ": " + err.Error()
		s.firstErr.CompareAndSwap(nil, &msg)
	case s.verify && !expected(c, resp):
		s.mismatches.Add(1)
		msg := c.Name + ": unexpected answer " + resp.String()
		s.firstErr.CompareAndSwap(nil, &msg)
	}
}

func (s *loadState) result(start time.Time, lats [][]time.Duration) runResult {
	r := runResult{sent: s.sent.Load(), rpcErrors: s.rpcErrors.Load(), mismatches: s.mismatches.Load(), elapsed: time.Since(start)}
	if e := s.firstErr.Load(); e != nil {
		r.firstErr = *e
	}
	for _, l := range lats {
		r.latencies = append(r.latencies, l...)
	}
	slices.Sort(r.latencies)
	return r
}

// saturate drives the target closed-loop with `concurrency` workers for d (or until maxSamples requests),
// each sending the next corpus request as soon as its previous one is answered.
func saturate(ctx context.Context, client authv3.AuthorizationClient, corpus []benchenv.Case, verify bool, concurrency int, d time.Duration) runResult {
	s := &loadState{client: client, corpus: corpus, verify: verify}
	ctx, cancel := context.WithTimeout(ctx, d+10*time.Second)
	defer cancel()
	start := time.Now()
	end := start.Add(d)
	lats := make([][]time.Duration, concurrency)
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Go(func() {
			l := make([]time.Duration, 0, 1<<14)
			for time.Now().Before(end) && s.next.Load() < maxSamples {
				t0 := time.Now()
				s.do(ctx)
				l = append(l, time.Since(t0))
			}
			lats[w] = l
		})
	}
	wg.Wait()
	return s.result(start, lats)
}

// fixedRate drives the target open-loop at `rate` requests per second for d. Request i is due at
// start + i/rate; a pacer releases each request when it is due, to `concurrency` workers. Its latency is
// counted from its due time, so that a server that falls behind is charged for the queueing it causes (no
// coordinated omission: a request held back because every worker is busy, or because the release queue is
// full, is still timed from its due time) — except for the pacer's own timer: time.Sleep wakes up to about
// a millisecond late on Linux, and a request found due only at that late wake-up is timed from the wake-up.
// The result's pacerLate is how late the pacer woke (its p99), which is not the target's doing.
func fixedRate(ctx context.Context, client authv3.AuthorizationClient, corpus []benchenv.Case, verify bool, concurrency int, rate float64, d time.Duration) runResult {
	s := &loadState{client: client, corpus: corpus, verify: verify}
	ctx, cancel := context.WithTimeout(ctx, d+10*time.Second)
	defer cancel()
	total := min(int64(rate*d.Seconds()), maxSamples)
	interval := time.Duration(float64(time.Second) / rate)
	release := make(chan time.Time, 1024) // the time each request's latency is counted from
	lats := make([][]time.Duration, concurrency)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Go(func() {
			l := make([]time.Duration, 0, 1<<14)
			for t := range release {
				s.do(ctx)
				l = append(l, time.Since(t))
			}
			lats[w] = l
		})
	}
	var late []time.Duration
	var woke time.Time // when the pacer's last sleep ended
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
			woke = time.Now()
			late = append(late, woke.Sub(due))
		}
		release <- maxTime(due, woke)
	}
	close(release)
	wg.Wait()
	r := s.result(start, lats)
	slices.Sort(late)
	if len(late) > 0 {
		r.pacerLate = late[int(0.99*float64(len(late)-1))]
	}
	return r
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// roundRobin spreads Checks over several gRPC connections, as Envoy's worker threads each use their own.
type roundRobin struct {
	clients []authv3.AuthorizationClient
	next    atomic.Uint64
}

// Check sends the request on the next connection.
func (r *roundRobin) Check(ctx context.Context, req *authv3.CheckRequest, opts ...grpc.CallOption) (*authv3.CheckResponse, error) {
	return r.clients[r.next.Add(1)%uint64(len(r.clients))].Check(ctx, req, opts...)
}
