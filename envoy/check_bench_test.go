package envoy_test

import (
	"context"
	"testing"

	"github.com/mcp-authz/mcp-authz/envoy"
	"github.com/mcp-authz/mcp-authz/test/benchenv"
	"google.golang.org/protobuf/proto"
)

// freshCorpusSize is the number of distinct tokens of the fresh and badsig cases: more than the token cache
// and its ghost queue remember, so that a token coming round again is verified afresh.
const freshCorpusSize = 5000

// BenchmarkCheck measures one whole decision in process: a CheckRequest adapted by envoy.Request, decided
// by authz.Authorizer.Check (bearer, verification, MCP body, policy, decision log line), and for Server the
// CheckResponse built and encoded too, as the gRPC codec encodes it. "allow" is a valid token calling an
// allowed tool; "deny-scope" the restricted tool without its scope; "corpus" cycles through the load
// benchmark's corpus (allows and denies); "fresh" gives each request a token of its own and "badsig" one
// whose signature does not verify (freshCorpusSize of them, more than the token caches hold, so that every
// Check verifies a signature).
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
	srv := envoy.NewServer(e.Authorizer)
	for _, bc := range []struct {
		name  string
		cases []benchenv.Case
	}{
		{"allow", []benchenv.Case{allow}},
		{"deny-scope", []benchenv.Case{denyScope}},
		{"corpus", corpus},
		{"fresh", fresh},
		{"badsig", badsig},
	} {
		b.Run("Authorizer/"+bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c := bc.cases[i%len(bc.cases)]
				i++
				if d := e.Authorizer.Check(ctx, envoy.Request(c.Request)); d.Allow != c.Allow || d.Status != c.Status {
					b.Fatalf("%s: allow=%v status=%d (%s)", c.Name, d.Allow, d.Status, d.Reason)
				}
			}
		})
		b.Run("Server/"+bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c := bc.cases[i%len(bc.cases)]
				i++
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
