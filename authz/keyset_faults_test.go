package authz_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/test/idp"
)

// faultLoad verifies tokens from a few goroutines, each call with its own deadline, until stopped, and
// tallies the answers.
type faultLoad struct {
	verifier *authz.Verifier
	deadline time.Duration
	held     []string // tokens of keys the key set holds: must stay valid
	unknown  []string // tokens of a kid the IdP never publishes: refused, or 503 while a fetch is stuck

	mu       sync.Mutex
	done     int
	answers  map[string]int           // by "held: <answer>" / "unknown: <answer>"
	slowest  map[string]time.Duration // by kind
	failures []string
}

func (l *faultLoad) run(ctx context.Context, workers int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil && i < 100_000; i++ {
				kind, tok := "held", l.held[(w*7+i)%len(l.held)]
				if i%5 == 4 {
					kind, tok = "unknown", l.unknown[(w+i)%len(l.unknown)]
				}
				l.one(kind, tok)
			}
		})
	}
	return &wg
}

func (l *faultLoad) one(kind, tok string) {
	ctx, cancel := context.WithTimeout(context.Background(), l.deadline)
	defer cancel()
	start := time.Now()
	_, verr := l.verifier.Verify(ctx, tok, []string{keysResource})
	elapsed := time.Since(start)
	answer := "valid"
	if verr != nil {
		answer = verr.Error()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done++
	l.answers[kind+": "+answer]++
	l.slowest[kind] = max(l.slowest[kind], elapsed)
	switch {
	case elapsed > l.deadline+500*time.Millisecond:
		l.failures = append(l.failures, fmt.Sprintf("%s token answered after %v (deadline %v)", kind, elapsed, l.deadline))
	case kind == "held" && verr != nil:
		l.failures = append(l.failures, fmt.Sprintf("token of a held key refused: %v", verr))
	case kind == "unknown" && verr == nil:
		l.failures = append(l.failures, "token of an unknown kid accepted")
	}
}

// take returns and resets the tally.
func (l *faultLoad) take() (done int, answers map[string]int, slowest map[string]time.Duration, failures []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	done, answers, slowest, failures = l.done, l.answers, l.slowest, l.failures
	l.done, l.answers, l.slowest, l.failures = 0, map[string]int{}, map[string]time.Duration{}, nil
	return
}

// slowloris answers 200 and the headers at once, then the body a byte every 100 ms.
func slowloris(f *fakeIdP, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		w.WriteHeader(http.StatusOK)
		rc.Flush()
		for i := range body {
			select {
			case <-r.Context().Done():
				return
			case <-f.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			w.Write(body[i : i+1])
			rc.Flush()
		}
	}
}

// flapping answers 503 and the key set in turn.
func flapping(body []byte) http.HandlerFunc {
	var n atomic.Int64
	return func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1)%2 == 1 {
			http.Error(w, "upstream connect error", http.StatusServiceUnavailable)
			return
		}
		w.Write(body)
	}
}

// TestIdPFaultsUnderLoad verifies tokens under load while the JWKS endpoint misbehaves in turn: slowloris,
// flapping 5xx, garbage, and finally dropping a key (revocation). Through the faults, tokens of held keys
// stay valid and no call blocks past its deadline; once the key is dropped, its tokens (cached ones too) are
// refused after the next refresh.
func TestIdPFaultsUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("fault load test (about 6 s)")
	}
	k1, k2, revoked := rsaKey(t, "k1"), ecKey(t, "k2"), rsaKey(t, "revoked")
	f := startFakeIdP(t)
	full := jwksBody(t, k1, k2, revoked)
	f.handle("/jwks", serveJWKS(t, k1, k2, revoked))
	is := f.issuer(100*time.Millisecond, 200*time.Millisecond)
	ks := authz.NewKeySet(is, &http.Client{Timeout: 5 * time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, authz.WithFetchTimeout(time.Second))
	v, err := authz.NewVerifier([]config.Issuer{is}, map[string]*authz.KeySet{is.Issuer: ks}, time.Minute, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { ks.Run(ctx); close(runDone) }()
	defer func() { cancel(); <-runDone }()
	for end := time.Now().Add(5 * time.Second); !ks.Ready() && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	if !ks.Ready() {
		t.Fatal("keys not loaded")
	}
	load := &faultLoad{verifier: v, deadline: 200 * time.Millisecond, answers: map[string]int{}, slowest: map[string]time.Duration{}}
	for i := range 30 {
		key := []jwk.Key{k1, k2}[i%2]
		load.held = append(load.held, f.mint(t, key, idp.WithHeader("x-n", i)))
	}
	for i := range 5 {
		load.unknown = append(load.unknown, f.mint(t, rsaKey(t, "never-published"), idp.WithHeader("x-n", i)))
	}
	revokedTok := f.mint(t, revoked)
	if _, verr := v.Verify(context.Background(), revokedTok, []string{keysResource}); verr != nil {
		t.Fatalf("token of the key about to be revoked: %v", verr)
	}

	loadCtx, stopLoad := context.WithCancel(context.Background())
	workers := load.run(loadCtx, 4)
	defer func() { stopLoad(); workers.Wait() }()
	faults := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"slowloris", slowloris(f, full)},
		{"flapping 5xx", flapping(full)},
		{"garbage JSON", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"keys":[{"kty":"RSA","n":`)) }},
	}
	for _, fault := range faults {
		f.handle("/jwks", fault.handler)
		time.Sleep(1200 * time.Millisecond)
		done, answers, slowest, failures := load.take()
		t.Logf("%s: %d verifications, slowest %v, answers %s", fault.name, done, slowest, tally(answers))
		if done == 0 {
			t.Errorf("%s: no verification done", fault.name)
		}
		for _, failure := range failures[:min(len(failures), 5)] {
			t.Errorf("%s: %s (%d failures)", fault.name, failure, len(failures))
		}
		if _, verr := v.Verify(context.Background(), revokedTok, []string{keysResource}); verr != nil {
			t.Errorf("%s: token of a held key: %v", fault.name, verr)
		}
	}

	f.handle("/jwks", serveJWKS(t, k1, k2))
	dropped := time.Now()
	var last string
	for time.Since(dropped) < 3*time.Second {
		_, err := v.Verify(context.Background(), revokedTok, []string{keysResource})
		var verr *authz.Error
		if errors.As(err, &verr) {
			last = verr.Description
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	refusedAfter := time.Since(dropped)
	if last != "unknown signing key" {
		t.Fatalf("token of the revoked key still accepted %v after the key was dropped (last %q)", refusedAfter, last)
	}
	for range 3 {
		if _, verr := v.Verify(context.Background(), revokedTok, []string{keysResource}); verr == nil {
			t.Fatal("token of the revoked key accepted again")
		}
	}
	time.Sleep(300 * time.Millisecond)
	done, answers, slowest, failures := load.take()
	t.Logf("revocation: token refused %v after the key was dropped; %d verifications, slowest %v, answers %s", refusedAfter.Round(time.Millisecond), done, slowest, tally(answers))
	for _, failure := range failures[:min(len(failures), 5)] {
		t.Errorf("revocation: %s (%d failures)", failure, len(failures))
	}
}

func tally(answers map[string]int) string {
	keys := make([]string, 0, len(answers))
	for k := range answers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "[%s: %d] ", k, answers[k])
	}
	return b.String()
}
