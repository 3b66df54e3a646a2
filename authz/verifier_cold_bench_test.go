package authz_test

import (
	"context"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/test/benchenv"
)

// verifier is what BenchmarkVerify calls.
type verifier interface {
	Verify(ctx context.Context, raw string, audiences []string) (*authz.Identity, error)
}

// coldVerifier is a verifier of e's issuer without the token cache: every call verifies afresh, as the first
// request with a token does.
func coldVerifier(b *testing.B, e *benchenv.Env) verifier {
	b.Helper()
	is := e.Config.Issuers[0]
	v, err := authz.NewVerifier(e.Config.Issuers, map[string]*authz.KeySet{is.Issuer: e.KeySet}, time.Duration(e.Config.Leeway), time.Now, authz.WithTokenCache(-1))
	if err != nil {
		b.Fatal(err)
	}
	return v
}
