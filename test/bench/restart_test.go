package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/service"
	"github.com/mcp-authz/mcp-authz/test/benchenv"
)

// replica is one mcp-authz served in this process on 127.0.0.1.
type replica struct {
	addr   string
	cancel context.CancelFunc // SIGTERM: report not-ready, keep serving for shutdown_delay, then drain
	done   chan error         // Serve's result, once it has stopped
}

// startReplica starts mcp-authz with the benchmark configuration plus serverYAML, and waits until it is
// ready.
func startReplica(issuer, policies, serverYAML string) (*replica, error) {
	cfg, err := config.Parse([]byte(benchenv.ConfigYAML(issuer, policies, "error") + serverYAML))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := service.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		return nil, err
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		return nil, err
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		gl.Close()
		cancel()
		return nil, err
	}
	r := &replica{addr: gl.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- svc.Serve(ctx, gl, hl) }()
	deadline := time.Now().Add(30 * time.Second)
	for svc.Ready() != nil {
		if time.Now().After(deadline) {
			cancel()
			return nil, fmt.Errorf("replica not ready: %w", svc.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r, nil
}

// restartCounts are what a rolling restart under load counted.
type restartCounts struct {
	sent     atomic.Int64 // Checks sent
	answered atomic.Int64 // answered with the expected decision
	wrong    atomic.Int64 // answered with another decision
	retried  atomic.Int64 // Checks sent again on another replica at least once
	lost     atomic.Int64 // no decision after the retries
	firstErr atomic.Pointer[string]
}

func (c *restartCounts) String() string {
	s := fmt.Sprintf("sent %d, answered as expected %d, wrong %d, retried %d, lost %d",
		c.sent.Load(), c.answered.Load(), c.wrong.Load(), c.retried.Load(), c.lost.Load())
	if e := c.firstErr.Load(); e != nil {
		s += "; first loss: " + *e
	}
	return s
}

// TestRollingRestart restarts both of two mcp-authz replicas in turn while a client sends Checks at a fixed
// rate, the way a Kubernetes rolling update replaces the pods behind Envoy: a new replica starts on a new
// port and joins the client's endpoints once ready, then the old one is told to stop; the client learns of
// its removal only discoveryLag later (endpoint propagation), which is what server.shutdown_delay is for.
// With the delay, the client watching gRPC health and retrying a refused Check on the other replica (as
// Envoy's health checker and retry policy do), no Check may go without a decision; with retries alone
// neither (the retry finds the other replica); with none of them (the control case), Checks sent to the
// stopped replica are lost, which shows the test can see a loss.
func TestRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("rolling restart under load: several seconds")
	}
	const (
		rate         = 200 // Checks per second
		maxChecks    = 6000
		discoveryLag = time.Second
		pause        = 700 * time.Millisecond // between the steps of the restart
	)
	tests := []struct {
		name     string
		server   string // server: section of every replica's configuration
		health   bool   // the client skips replicas whose gRPC health is not SERVING
		retries  int    // the client's retries on UNAVAILABLE
		wantLost bool
	}{
		{"shutdown delay, health, retries", "server: {shutdown_delay: 300ms, shutdown_timeout: 2s}\n", true, 2, false},
		{"retries alone", "server: {shutdown_delay: 0s, shutdown_timeout: 1s}\n", false, 2, false},
		{"control: no delay, no health, no retries", "server: {shutdown_delay: 0s, shutdown_timeout: 1s}\n", false, 0, true},
	}
	p, err := benchenv.StartIdP()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	corpus, err := benchenv.Corpus(p.Provider, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := func() *replica {
				r, err := startReplica(p.Issuer(), "../../deploy/policies", tc.server)
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			f := newFailover(tc.health, tc.retries)
			defer f.close()
			join := func(r *replica) *endpoint {
				ep, err := f.add(r.addr)
				if err != nil {
					t.Fatal(err)
				}
				if err := ep.waitServing(10 * time.Second); err != nil {
					t.Fatal(err)
				}
				return ep
			}
			replicas := []*replica{start(), start()}
			eps := []*endpoint{join(replicas[0]), join(replicas[1])}
			defer func() {
				for _, r := range replicas {
					r.cancel()
					select {
					case <-r.done:
					case <-time.After(10 * time.Second):
						t.Error("replica did not stop within 10s")
					}
				}
			}()

			var counts restartCounts
			ctx, stopLoad := context.WithCancel(context.Background())
			defer stopLoad()
			loadDone := make(chan struct{})
			go func() {
				defer close(loadDone)
				sendAtRate(ctx, f, corpus, rate, maxChecks, &counts)
			}()

			var removals sync.WaitGroup
			time.Sleep(pause)
			for i := range replicas {
				next := start()
				nextEP := join(next)
				old, oldEP := replicas[i], eps[i]
				old.cancel()
				removals.Go(func() {
					time.Sleep(discoveryLag)
					f.remove(oldEP)
				})
				select {
				case <-old.done:
				case <-time.After(10 * time.Second):
					t.Fatal("replica did not stop within 10s")
				}
				replicas[i], eps[i] = next, nextEP
				time.Sleep(pause)
			}
			removals.Wait()
			time.Sleep(pause)
			stopLoad()
			<-loadDone
			t.Logf("%s: %s", tc.name, &counts)

			if counts.sent.Load() < rate {
				t.Errorf("only %d Checks sent", counts.sent.Load())
			}
			if counts.wrong.Load() != 0 {
				t.Errorf("%d wrong decisions", counts.wrong.Load())
			}
			if lost := counts.lost.Load(); tc.wantLost && lost == 0 {
				t.Errorf("no Check lost without the drain delay, health and retries: the test cannot tell a loss")
			} else if !tc.wantLost && lost != 0 {
				t.Errorf("%d Checks lost (no decision after %d retries): %s", lost, tc.retries, &counts)
			}
		})
	}
}

// sendAtRate sends Checks of the corpus through f at rate per second (Check i when due at i/rate, at once
// when late), each on a goroutine of its own (at
// most 64 at once), until ctx ends or n have been sent, then waits for their answers.
func sendAtRate(ctx context.Context, f *failover, corpus []benchenv.Case, rate, n int, counts *restartCounts) {
	start := time.Now()
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := range n {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate)))):
		}
		sem <- struct{}{}
		c := &corpus[i%len(corpus)]
		counts.sent.Add(1)
		wg.Go(func() {
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			resp, retries, err := f.Check(cctx, c.Request)
			if retries > 0 {
				counts.retried.Add(1)
			}
			switch {
			case err != nil:
				counts.lost.Add(1)
				msg := fmt.Sprintf("%s after %d retries: %v", c.Name, retries, err)
				counts.firstErr.CompareAndSwap(nil, &msg)
			case expected(c, resp):
				counts.answered.Add(1)
			default:
				counts.wrong.Add(1)
			}
		})
	}
}
