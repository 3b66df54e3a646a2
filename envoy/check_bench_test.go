package envoy_test

import (
	"context"
	"testing"

	"github.com/mcp-authz/mcp-authz/envoy"
	"github.com/mcp-authz/mcp-authz/test/benchenv"
	"google.golang.org/protobuf/proto"
)

// BenchmarkCheck measures one whole decision in process: a CheckRequest adapted by envoy.Request, decided
// by authz.Authorizer.Check (bearer, verification, MCP body, policy, decision log line), and for Server the
// CheckResponse built and encoded too, as the gRPC codec encodes it. "allow" is a valid token calling an
// allowed tool; "deny-scope" the restricted tool without its scope; "corpus" cycles through the load
// benchmark's corpus (allows and denies).
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
