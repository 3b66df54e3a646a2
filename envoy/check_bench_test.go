package envoy_test

import (
	"context"
	"testing"

	"github.com/mcp-authz/mcp-authz/envoy"
	"github.com/mcp-authz/mcp-authz/test/benchenv"
	"google.golang.org/protobuf/proto"
)

// freshCorpusSize is the number of distinct tokens of the fresh and badsig cases; the benchmark empties the
// caches each time they come round again.
const freshCorpusSize = 5000

// BenchmarkCheck measures one whole decision in process: a CheckRequest adapted by envoy.Request, decided
// by authz.Authorizer.Check (bearer, verification, MCP body, policy, decision log line), and for Server the
// CheckResponse built and encoded too, as the gRPC codec encodes it. "allow" is a valid token calling an
// allowed tool; "deny-scope" the restricted tool without its scope; "corpus" cycles through the load
// benchmark's corpus (allows and denies); "fresh" gives each request a token of its own and "badsig" one
// whose signature does not verify (freshCorpusSize of them; the caches are emptied each time they come round
// again, so that every Check verifies a signature).
func BenchmarkCheck(b *testing.B) {
	e, err := benchenv.New(context.Background(), "../deploy/policies", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	corpus, err := benchenv.Corpus(e.IdP.Provider, 4)
	if err != nil {
		b.Fatal(err)
	}
	fresh, err := benchenv.FreshCorpus(e.IdP.Provider, freshCorpusSize)
	if err != nil {
		b.Fatal(err)
	}
	badsig, err := benchenv.BadSignatureCorpus(e.IdP.Provider, freshCorpusSize)
	if err != nil {
		b.Fatal(err)
	}
	var allow, denyScope benchenv.Case
	for _, c := range corpus {
		switch {
		case c.Allow && allow.Request == nil:
			allow = c
		case c.Name == "deny restricted tool":
			denyScope = c
		}
	}
	ctx := context.Background()
	for _, bc := range []struct {
		name  string
		cases []benchenv.Case
		once  bool // each request once: the caches are emptied when the cases come round again
	}{
		{"allow", []benchenv.Case{allow}, false},
		{"deny-scope", []benchenv.Case{denyScope}, false},
		{"corpus", corpus, false},
		{"fresh", fresh, true},
		{"badsig", badsig, true},
	} {
		// next returns the case of request i and the Env to check it with: for the "once" cases, an Env with
		// empty caches each time the cases come round again (built with the timer stopped).
		env := e
		next := func(b *testing.B, i int) (benchenv.Case, *benchenv.Env) {
			if bc.once && i > 0 && i%len(bc.cases) == 0 {
				b.StopTimer()
				var err error
				if env, err = e.WithEmptyCaches(ctx); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			return bc.cases[i%len(bc.cases)], env
		}
		b.Run("Authorizer/"+bc.name, func(b *testing.B) {
			b.ReportAllocs()
			env = e
			for i := 0; b.Loop(); i++ {
				c, env := next(b, i)
				if d := env.Authorizer.Check(ctx, envoy.Request(c.Request)); d.Allow != c.Allow || d.Status != c.Status {
					b.Fatalf("%s: allow=%v status=%d (%s)", c.Name, d.Allow, d.Status, d.Reason)
				}
			}
		})
		b.Run("Server/"+bc.name, func(b *testing.B) {
			b.ReportAllocs()
			env = e
			srv, served := envoy.NewServer(e.Authorizer), e
			for i := 0; b.Loop(); i++ {
				c, env := next(b, i)
				if env != served {
					srv, served = envoy.NewServer(env.Authorizer), env
				}
				resp, err := srv.Check(ctx, c.Request)
				if err != nil || (resp.GetOkResponse() != nil) != c.Allow {
					b.Fatalf("%s: %v %v", c.Name, resp, err)
				}
				if _, err := proto.Marshal(resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
