package policy_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcp-authz/mcp-authz/policy"
)

// TestAssertionClaimsAndRevision checks that a decision carries the policy's assertion_claims (cached
// decisions too, without sharing the map) and the revision of the generation that decided, and that
// assertion_claims that are not an object fail the evaluation.
func TestAssertionClaimsAndRevision(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "authz.rego"), `package mcp.authz

import rego.v1

decision := {"allow": true, "assertion_claims": {"tenant": "acme", "level": 2}}
`)
	log, _ := newLogger(t)
	live := startLive(t, []string{dir}, log)
	rev := live.Status().Revision
	for i := range 2 { // the second evaluation is a decision cache hit
		d, err := live.Evaluate(context.Background(), policy.Map(map[string]any{}))
		if err != nil {
			t.Fatal(err)
		}
		if d.AssertionClaims["tenant"] != "acme" || d.AssertionClaims["level"] == nil || d.Revision != rev || rev == "" {
			t.Fatalf("evaluation %d: claims %v, revision %q (status %q)", i, d.AssertionClaims, d.Revision, rev)
		}
		d.AssertionClaims["tenant"] = "changed by a caller"
	}

	bad := t.TempDir()
	writeFile(t, filepath.Join(bad, "authz.rego"), "package mcp.authz\n\nimport rego.v1\n\ndecision := {\"allow\": true, \"assertion_claims\": [\"x\"]}\n")
	live = startLive(t, []string{bad}, log)
	if _, err := live.Evaluate(context.Background(), policy.Map(map[string]any{})); err == nil || !strings.Contains(err.Error(), "assertion_claims is not an object") {
		t.Fatalf("error = %v", err)
	}
}
