package benchenv_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/envoy"
	"github.com/mcp-authz/mcp-authz/test/benchenv"
)

// TestMixedCorpus checks that mcp-authz decides every request of the mixed corpus, and of the benchmark
// corpus, as they say under each policy data variant, so that a long run can reload the policy with any
// variant and still count a different answer as a wrong decision.
func TestMixedCorpus(t *testing.T) {
	rego, err := os.ReadFile("../../deploy/policies/authz.rego")
	if err != nil {
		t.Fatal(err)
	}
	users := 2 * benchenv.DenyEvery * len(benchenv.DenyKinds)
	for n := range 3 {
		t.Run(fmt.Sprintf("variant %d", n), func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "authz.rego"), rego, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "data.yaml"), []byte(benchenv.PolicyDataVariant(n)), 0o600); err != nil {
				t.Fatal(err)
			}
			e, err := benchenv.New(context.Background(), dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			mixed, err := benchenv.MixedCorpus(e.IdP.Provider, "user", users, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			plain, err := benchenv.Corpus(e.IdP.Provider, 1)
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[string]int{}
			for i, c := range append(mixed, plain...) {
				d := e.Authorizer.Check(context.Background(), envoy.Request(c.Request))
				if d.Allow != c.Allow || d.Status != c.Status {
					t.Errorf("request %d, %s: allow=%v status=%d (%s), want allow=%v status=%d", i, c.Name, d.Allow, d.Status, d.Reason, c.Allow, c.Status)
				}
				if i < len(mixed) {
					kinds[c.Name]++
				}
			}
			if want := users / benchenv.DenyEvery; len(mixed) != users+want {
				t.Errorf("%d requests, want %d allows and %d denies", len(mixed), users, want)
			}
			for _, k := range benchenv.DenyKinds {
				if kinds["deny "+k] != 2 {
					t.Errorf("deny %q: %d requests, want 2", k, kinds["deny "+k])
				}
			}
		})
	}
}

// TestMixedCorpusRefuses checks the corpus's argument checks.
func TestMixedCorpusRefuses(t *testing.T) {
	p, err := benchenv.StartIdP()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := benchenv.MixedCorpus(p.Provider, "user", 0, time.Hour); err == nil {
		t.Error("a corpus of no user: no error")
	}
}
