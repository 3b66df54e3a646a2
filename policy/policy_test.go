package policy_test

import (
	"context"
	"os"
	"path/filepath"
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

// TestRunTestsOnConfigMapMount runs the tests of a ConfigMap-style mount (files symlinked through ..data):
// each test runs once, and hidden editor files are left out.
func TestRunTestsOnConfigMapMount(t *testing.T) {
	dir := t.TempDir()
	version := filepath.Join(dir, "..2026_11_26_05_00_00.1")
	if err := os.Mkdir(version, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"authz.rego":      "package mcp.authz\n\nimport rego.v1\n\ndefault allow := false\n\nallow if input.ok\n",
		"authz_test.rego": "package mcp.authz_test\n\nimport rego.v1\n\nimport data.mcp.authz\n\ntest_allow if authz.allow with input as {\"ok\": true}\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(version, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Base(version), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".authz_test.rego.swp"), []byte("not rego"), 0o600); err != nil {
		t.Fatal(err)
	}
	results, err := policy.RunTests(context.Background(), []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || !results[0].Pass() {
		t.Fatalf("results = %v, want test_allow once, passing", results)
	}
}
