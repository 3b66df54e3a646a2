package authz_test

import (
	"context"
	"testing"

	"github.com/mcp-authz/mcp-authz/test/benchenv"
)

// newBenchEnv builds the decision path against a test IdP on 127.0.0.1 with the shipped policies.
func newBenchEnv(b *testing.B) *benchenv.Env {
	b.Helper()
	e, err := benchenv.New(context.Background(), "../deploy/policies", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}

// BenchmarkVerify measures verifying a valid RS256 access token: cold (as the first request with a token
// sees it) and cached (as every later request with the same token sees it).
func BenchmarkVerify(b *testing.B) {
	e := newBenchEnv(b)
	tok, err := benchenv.ValidToken(e.IdP.Provider, "alice")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		v    verifier
	}{
		{"cold", coldVerifier(b, e)},
		{"cached", e.Verifier},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, verr := bc.v.Verify(ctx, tok, []string{benchenv.ResourceURL}); verr != nil {
					b.Fatal(verr)
				}
			}
		})
	}
}
