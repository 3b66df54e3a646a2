package policy_test

import (
	"context"
	"testing"

	"github.com/mcp-authz/mcp-authz/policy"
)

// TestShippedPolicies runs the Rego unit tests shipped beside the policies, as `opa test` does.
func TestShippedPolicies(t *testing.T) {
	results, err := policy.RunTests(context.Background(), []string{"../deploy/policies", "../deploy/examples/policies"})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) == 0 {
		t.Fatal("no Rego tests ran")
	}
	for _, r := range results {
		if !r.Pass() {
			t.Errorf("%s: %s", r.Location, r.String())
		}
	}
}
