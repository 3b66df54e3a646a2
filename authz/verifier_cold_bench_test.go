package authz_test

import (
	"context"
	"testing"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/test/benchenv"
)

// verifier is what BenchmarkVerify calls.
type verifier interface {
	Verify(ctx context.Context, raw, audience string) (*authz.Identity, *authz.Error)
}

// coldVerifier is a verifier that verifies every token afresh. Before the token cache there is only one kind.
func coldVerifier(b *testing.B, e *benchenv.Env) verifier { return e.Verifier }
