package policy_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/mcp-authz/mcp-authz/policy"
	"github.com/open-policy-agent/opa/v1/ast"
)

// benchInput is a policy input document as authz builds it for a tools/call with a valid token.
func benchInput(tool string) map[string]any {
	return map[string]any{
		"token": map[string]any{
			"subject": "alice", "issuer": "http://127.0.0.1:9000", "client_id": "mcp-client",
			"scopes": []any{"tools:read", "tools:call"},
			"claims": map[string]any{
				"sub": "alice", "iss": "http://127.0.0.1:9000", "aud": "https://mcp.example.com/mcp", "client_id": "mcp-client",
				"scope": "tools:read tools:call", "email": "alice@example.com", "groups": []any{"developers", "mcp-users"},
				"department": "engineering", "exp": json.Number("1900000000"), "iat": json.Number("1800000000"), "jti": "J7X2",
			},
		},
		"request": map[string]any{"method": "POST", "host": "mcp.example.com", "path": "/mcp", "headers": map[string]any{
			":authority": "mcp.example.com", ":method": "POST", ":path": "/mcp", "content-type": "application/json",
			"mcp-protocol-version": "2025-06-18", "x-request-id": "7d3c2b1a",
		}},
		"resource": map[string]any{"url": "https://mcp.example.com/mcp", "name": "tools"},
		"mcp":      map[string]any{"method": "tools/call", "id": "1", "tool": tool},
	}
}

// BenchmarkEvaluate measures one evaluation of the shipped policy (default data plus its tool rule) on a
// tools/call: an allowed tool, and the restricted tool without its scope (a deny asking for step-up); with
// the input as a map[string]any (policy.Map: converted on every call, then cached) and as an ast.Value
// (policy.Document: value is answered from the decision cache after the first call, value-nocache
// evaluates every time).
func BenchmarkEvaluate(b *testing.B) {
	ctx := context.Background()
	p, err := policy.Load(ctx, []string{"../deploy/policies"}, policy.DefaultQuery)
	if err != nil {
		b.Fatal(err)
	}
	uncached, err := policy.Load(ctx, []string{"../deploy/policies"}, policy.DefaultQuery, policy.WithDecisionCache(-1))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name  string
		tool  string
		allow bool
	}{
		{"allow", "echo", true},
		{"deny-scope", "admin_reset", false},
	} {
		b.Run("map/"+bc.name, func(b *testing.B) {
			in := policy.Map(benchInput(bc.tool))
			b.ReportAllocs()
			for b.Loop() {
				d, err := p.Evaluate(ctx, in)
				if err != nil || d.Allow != bc.allow {
					b.Fatalf("Evaluate = %+v, %v", d, err)
				}
			}
		})
		b.Run("value-nocache/"+bc.name, func(b *testing.B) {
			in, err := ast.InterfaceToValue(benchInput(bc.tool))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				d, err := uncached.Evaluate(ctx, policy.Document(in))
				if err != nil || d.Allow != bc.allow {
					b.Fatalf("Evaluate = %+v, %v", d, err)
				}
			}
		})
		b.Run("value/"+bc.name, func(b *testing.B) {
			in, err := ast.InterfaceToValue(benchInput(bc.tool))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				d, err := p.Evaluate(ctx, policy.Document(in))
				if err != nil || d.Allow != bc.allow {
					b.Fatalf("Evaluate = %+v, %v", d, err)
				}
			}
		})
	}
}
