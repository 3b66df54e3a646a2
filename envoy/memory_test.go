package envoy_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/mcp-authz/mcp-authz/envoy"
	"github.com/mcp-authz/mcp-authz/test/benchenv"
)

// TestCachedTokenMemory sends one allowed Check for each of n users (the load benchmark's tokens, about
// 0.9 KiB each, fewer than the token cache holds) through the whole decision path, then a second one, and
// reads from runtime.MemStats the heap that stays after each round: the token cache's entry with what the
// adapters memoized for the token (policy input, decision log attributes, dynamic metadata: from its
// second request) and the policy's decision cache entries (shared by users alike in what the policy reads).
func TestCachedTokenMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("mints a thousand RSA tokens")
	}
	const n = 1000
	e, err := benchenv.New(context.Background(), "../deploy/policies", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	srv := envoy.NewServer(e.Authorizer)
	tokens := make([]string, n)
	for i := range tokens {
		if tokens[i], err = benchenv.ValidToken(e.IdP.Provider, fmt.Sprintf("user-%06d", i)); err != nil {
			t.Fatal(err)
		}
	}
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	check := func(tok string, i int) {
		// A copy of the token, as a request's is: what stays is only what the caches keep.
		req := benchenv.CheckRequest(strings.Clone(tok), benchenv.CallTool("echo", i))
		resp, err := srv.Check(context.Background(), req)
		if err != nil || resp.GetOkResponse() == nil {
			t.Fatalf("user %d: %v %v", i, resp, err)
		}
	}
	check(tokens[0], 0) // the first Check builds what every Check shares (policy, pools)
	before := heap()
	for i, tok := range tokens[1:] {
		check(tok, i+1)
	}
	once := heap()
	// A second request each: what is kept only from a token's second request on (MemoOnReuse) is kept now.
	for i, tok := range tokens[1:] {
		check(tok, n+i)
	}
	again := heap()
	for _, m := range []struct {
		what string
		heap uint64
	}{{"used once", once}, {"used again", again}} {
		per := (int64(m.heap) - int64(before)) / (n - 1)
		t.Logf("%d users, token %s: %d bytes of heap each (token cache entry, memos, decision cache entries)", n-1, m.what, per)
		if per > 16<<10 {
			t.Errorf("a user's token %s holds %d bytes of heap, more than 16 KiB", m.what, per)
		}
	}
	runtime.KeepAlive(tokens)
	runtime.KeepAlive(srv)
}
