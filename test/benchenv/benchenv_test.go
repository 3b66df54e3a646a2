package benchenv_test

import (
	"context"
	"testing"

	"github.com/mcp-authz/mcp-authz/envoy"
	"github.com/mcp-authz/mcp-authz/test/benchenv"
)

// TestCorpus checks that mcp-authz decides every corpus request as the corpus says, so that the load
// benchmark's mismatch count means what it says.
func TestCorpus(t *testing.T) {
	e, err := benchenv.New(context.Background(), "../../deploy/policies", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	corpus, err := benchenv.Corpus(e.IdP.Provider, 2)
	if err != nil {
		t.Fatal(err)
	}
	denies := 0
	for _, c := range corpus {
		t.Run(c.Name, func(t *testing.T) {
			d := e.Authorizer.Check(context.Background(), envoy.Request(c.Request))
			if d.Allow != c.Allow || d.Status != c.Status {
				t.Errorf("allow=%v status=%d (%s), want allow=%v status=%d", d.Allow, d.Status, d.Reason, c.Allow, c.Status)
			}
		})
		if !c.Allow {
			denies++
		}
	}
	if want := 2*3*benchenv.CallsPerTool + 3; denies != 3 || len(corpus) != want {
		t.Errorf("corpus of %d requests with %d denies, want %d with 3", len(corpus), denies, want)
	}
}
