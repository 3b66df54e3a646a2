package assertion

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
)

// mapMemo is a memo like a cached token's (Identity.Memo with its sync.Map).
type mapMemo struct{ m sync.Map }

func (c *mapMemo) Memoized(key any) (any, bool) { return c.m.Load(key) }

func (c *mapMemo) Memo(key any, build func() any) any {
	v, _ := c.m.LoadOrStore(key, build())
	return v
}

// noMemo is the memo of a token verified afresh: nothing is kept.
type noMemo struct{}

func (noMemo) Memoized(any) (any, bool)         { return nil, false }
func (noMemo) Memo(_ any, build func() any) any { return build() }

func TestCacheReuse(t *testing.T) {
	start := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	now := start
	m, keys, _ := newMinter(t, &now)
	key := m.resources[resourceA]
	g := grant(resourceA, start.Add(time.Hour))
	mem := &mapMemo{}
	get := func(g authz.Grant, extra string, mem memo) string {
		t.Helper()
		hs, err := m.assertion(key, mem, g, extra, now)
		if err != nil {
			t.Fatal(err)
		}
		return hs[0].Value
	}
	first := get(g, "", mem)
	steps := []struct {
		name   string
		change func() (authz.Grant, string, memo)
		reused bool
	}{
		{"same token, resource and policy", func() (authz.Grant, string, memo) { return g, "", mem }, true},
		{"another request id", func() (authz.Grant, string, memo) { g2 := g; g2.RequestID = "req-2"; return g2, "", mem }, true},
		{"29s later: more than half left", func() (authz.Grant, string, memo) { now = start.Add(29 * time.Second); return g, "", mem }, true},
		{"30s later: half left", func() (authz.Grant, string, memo) { now = start.Add(30 * time.Second); return g, "", mem }, false},
		{"another policy revision", func() (authz.Grant, string, memo) { g2 := g; g2.PolicyRevision = "rev-2"; return g2, "", mem }, false},
		{"other policy claims", func() (authz.Grant, string, memo) { return g, `{"tenant":"acme"}`, mem }, false},
		{"token verified afresh (no memo)", func() (authz.Grant, string, memo) { return g, "", noMemo{} }, false},
	}
	prev := first
	for _, st := range steps {
		g2, extra, mm := st.change()
		before := m.Minted()
		v := get(g2, extra, mm)
		if reused := v == prev && m.Minted() == before; reused != st.reused {
			t.Errorf("%s: reused %v, want %v", st.name, reused, st.reused)
		}
		if !st.reused {
			prev = get(g2, extra, mm) // the state the next step starts from
			if _, isMap := mm.(*mapMemo); isMap {
				if again := get(g2, extra, mm); again != prev {
					t.Errorf("%s: the new assertion is not reused", st.name)
				}
			}
		}
		verify(t, keys, v)
	}

	// A new signing key: the next request re-mints with it.
	dir := filepath.Dir(keys.signer().file)
	writeKey(t, filepath.Join(dir, "zz-next.pem"), pemOf(t, newEd25519(t), false))
	if _, err := keys.reload(); err != nil {
		t.Fatal(err)
	}
	before := m.Minted()
	if v := get(g, "", mem); m.Minted() != before+1 {
		t.Error("a rotated key did not re-mint")
	} else {
		verify(t, keys, v)
	}
	os.Remove(filepath.Join(dir, "zz-next.pem"))
}

// TestCacheConcurrent has goroutines ask for the same token's assertion while the clock passes refresh
// points: every answer verifies (run with -race).
func TestCacheConcurrent(t *testing.T) {
	start := time.Now()
	m, keys, _ := newMinter(t, &start)
	key := m.resources[resourceA]
	g := grant(resourceA, start.Add(time.Hour))
	mem := &mapMemo{}
	var wg sync.WaitGroup
	values := make(chan string, 4*50)
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				hs, err := m.assertion(key, mem, g, "", start.Add(time.Duration(w*50+i)*time.Second))
				if err != nil {
					t.Error(err)
					return
				}
				values <- hs[0].Value
			}
		})
	}
	wg.Wait()
	close(values)
	seen := map[string]bool{}
	for v := range values {
		if !seen[v] {
			seen[v] = true
			verify(t, keys, v)
		}
	}
	if n := m.Minted(); n >= 200 {
		t.Errorf("%d mints for 200 requests: nothing reused", n)
	}
}

// BenchmarkCredential measures the allow path's cost of the assertion: "cached" reuses the assertion of a
// cached token, "mint" signs one per request (a token verified afresh).
func BenchmarkCredential(b *testing.B) {
	now := time.Now()
	m, _, _ := newMinter(b, &now)
	for _, bc := range []struct {
		name string
		mem  memo
	}{{"cached", &mapMemo{}}, {"mint", noMemo{}}} {
		b.Run(bc.name, func(b *testing.B) {
			g := grant(resourceA, now.Add(time.Hour))
			key := m.resources[resourceA]
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.assertion(key, bc.mem, g, m.extraClaims(ctx, g.AssertionClaims), now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
