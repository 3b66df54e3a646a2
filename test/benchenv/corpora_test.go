package benchenv_test

import (
	"context"
	"testing"

	"github.com/mcp-authz/mcp-authz/envoy"
	"github.com/mcp-authz/mcp-authz/test/benchenv"
)

// TestCorpora checks that mcp-authz decides every request of the load benchmark's other corpora as they
// say, that their tokens are as distinct as they claim, and that bad arguments are refused.
func TestCorpora(t *testing.T) {
	e, err := benchenv.New(context.Background(), "../../deploy/policies", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	p := e.IdP.Provider
	zipf, drawn, err := benchenv.ZipfCorpus(p, 1000, 300, 1.1, 1)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := benchenv.FreshCorpus(p, 20)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := benchenv.BadSignatureCorpus(p, 500)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		corpus   []benchenv.Case
		requests int
		tokens   int // distinct tokens
	}{
		{"zipf", zipf, 300, drawn},
		{"fresh", fresh, 20, 20},
		{"bad signature", bad, 500, 500},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tokens := map[string]bool{}
			for i, c := range tc.corpus {
				tokens[c.Token] = true
				d := e.Authorizer.Check(context.Background(), envoy.Request(c.Request))
				if d.Allow != c.Allow || d.Status != c.Status {
					t.Fatalf("request %d, %s: allow=%v status=%d (%s), want allow=%v status=%d", i, c.Name, d.Allow, d.Status, d.Reason, c.Allow, c.Status)
				}
			}
			if len(tc.corpus) != tc.requests || len(tokens) != tc.tokens {
				t.Errorf("%d requests with %d distinct tokens, want %d with %d", len(tc.corpus), len(tokens), tc.requests, tc.tokens)
			}
		})
	}
	if drawn < 2 || drawn >= 300 {
		t.Errorf("zipf corpus drew %d users for 300 requests: not a skewed mix", drawn)
	}
	for name, err := range map[string]error{
		"zipf, one user": errOfZipf(benchenv.ZipfCorpus(p, 1, 10, 1.1, 1)),
		"zipf, s = 1":    errOfZipf(benchenv.ZipfCorpus(p, 10, 10, 1, 1)),
		"fresh, none":    errOf(benchenv.FreshCorpus(p, 0)),
		"bad sig, none":  errOf(benchenv.BadSignatureCorpus(p, 0)),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// errOfZipf is the error ZipfCorpus returned.
func errOfZipf(_ []benchenv.Case, _ int, err error) error { return err }

// errOf is the error a corpus function returned.
func errOf(_ []benchenv.Case, err error) error { return err }
