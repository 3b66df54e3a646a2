package main

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/mcp-authz/mcp-authz/test/benchenv"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// maxFloodRequests bounds the requests of one flood run, and so the latencies it keeps.
const maxFloodRequests = 1 << 21

// floodResult is what one flood run counted. Every request due is exactly one of skipped, decided, shed,
// timedOut or failed.
type floodResult struct {
	due      int64 // requests due over the run: rate × duration
	sent     int64 // requests sent (due minus skipped)
	skipped  int64 // due while the generator already had its bound of requests in flight: not sent
	decided  int64 // answered with a decision (allow or deny)
	wrong    int64 // decisions that were not the expected one
	shed     int64 // refused without a decision because the server was overloaded (UNAVAILABLE)
	timedOut int64 // not answered within the per-request deadline
	failed   int64 // any other RPC error
	firstErr string
	elapsed  time.Duration // from the first request due to the last answer
	sendTime time.Duration // from the first request due to the last one sent
	// decidedLat and shedLat are the latencies of the decided and shed requests, sorted.
	decidedLat, shedLat []time.Duration
}

// percentile returns the q-quantile (0..1) of sorted latencies, 0 when there are none.
func percentile(lat []time.Duration, q float64) time.Duration {
	return runResult{latencies: lat}.percentile(q)
}

// outcome is how one flood request ended.
type outcome int

const (
	outDecided outcome = iota
	outWrong
	outShed
	outTimedOut
	outFailed
)

// classify tells what the answer (resp, err) to c is; without verify any answer is a decision. A shed is the refusal mcp-authz answers when
// server.max_concurrent_checks are in flight: UNAVAILABLE saying it is overloaded; any other UNAVAILABLE
// (a refused connection, say) is a failure.
func classify(c *benchenv.Case, verify bool, resp *authv3.CheckResponse, err error) outcome {
	if err == nil {
		if !verify || expected(c, resp) {
			return outDecided
		}
		return outWrong
	}
	s := status.Convert(err)
	switch {
	case s.Code() == codes.Unavailable && strings.Contains(s.Message(), "overloaded"):
		return outShed
	case s.Code() == codes.DeadlineExceeded:
		return outTimedOut
	}
	return outFailed
}

// samples keeps up to a fixed number of latencies, written concurrently without a lock.
type samples struct {
	v []time.Duration
	n atomic.Int64
}

func newSamples(n int64) *samples { return &samples{v: make([]time.Duration, n)} }

func (s *samples) add(d time.Duration) {
	if i := s.n.Add(1) - 1; i < int64(len(s.v)) {
		s.v[i] = d
	}
}

// sorted returns the latencies added, sorted; call it once every add has returned.
func (s *samples) sorted() []time.Duration {
	out := s.v[:min(s.n.Load(), int64(len(s.v)))]
	slices.Sort(out)
	return out
}

// flood drives client open-loop at rate requests per second for d, each request with its own deadline of
// timeout. Request i is due at start + i/rate and is sent when due, on a goroutine of its own, whatever
// became of the requests before it: the generator never waits for the server, so a server that falls behind
// faces the whole offered load. It keeps at most maxInflight requests outstanding (bounding its own memory);
// a request due beyond that is skipped and counted, so that the load that really reached the server is
// known. Latency is timed from when a request is sent (the generator holds none back). Answers are checked
// against the corpus's expected decisions when verify is set.
func flood(ctx context.Context, client authv3.AuthorizationClient, corpus []benchenv.Case, verify bool, rate float64, d time.Duration, maxInflight int, timeout time.Duration) floodResult {
	total := min(int64(rate*d.Seconds()), maxFloodRequests)
	r := floodResult{due: total}
	decided, shed := newSamples(total), newSamples(total)
	var counts [outFailed + 1]atomic.Int64
	var firstErr atomic.Pointer[string]
	var inflight atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := int64(0); i < total; {
		dueNow := min(total, int64(time.Since(start).Seconds()*rate)+1)
		for ; i < dueNow; i++ {
			if inflight.Add(1) > int64(maxInflight) {
				inflight.Add(-1)
				r.skipped++
				continue
			}
			c := &corpus[int(i%int64(len(corpus)))]
			wg.Go(func() {
				defer inflight.Add(-1)
				rctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				t0 := time.Now()
				resp, err := client.Check(rctx, c.Request)
				lat := time.Since(t0)
				out := classify(c, verify, resp, err)
				counts[out].Add(1)
				switch out {
				case outDecided, outWrong:
					decided.add(lat)
				case outShed:
					shed.add(lat)
				}
				if out == outWrong || out == outFailed {
					msg := c.Name + ": "
					if err != nil {
						msg += err.Error()
					} else {
						msg += "unexpected answer " + resp.String()
					}
					firstErr.CompareAndSwap(nil, &msg)
				}
			})
		}
		if i < total {
			time.Sleep(time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))))
		}
	}
	r.sendTime = time.Since(start)
	wg.Wait()
	r.elapsed = time.Since(start)
	r.sent = total - r.skipped
	r.wrong = counts[outWrong].Load()
	r.decided = counts[outDecided].Load() + r.wrong
	r.shed = counts[outShed].Load()
	r.timedOut = counts[outTimedOut].Load()
	r.failed = counts[outFailed].Load()
	if e := firstErr.Load(); e != nil {
		r.firstErr = *e
	}
	r.decidedLat, r.shedLat = decided.sorted(), shed.sorted()
	return r
}
