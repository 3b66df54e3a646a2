package policy

import (
	"context"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Reads is what a generation's policy can read of its input document: the paths found by the static
// analysis of its modules (the decision cache's), or everything when the analysis could not bound them.
// The zero value reads everything.
type Reads struct {
	bounded bool
	paths   [][]string // without the leading `input`
}

// newReads converts the analysed input paths; unbounded (reads everything) when the analysis failed.
func newReads(in inputPaths) Reads {
	if in.reason != "" {
		return Reads{}
	}
	r := Reads{bounded: true, paths: make([][]string, len(in.paths))}
	for i, ref := range in.paths {
		p := make([]string, 0, len(ref)-1)
		for _, t := range ref[1:] {
			p = append(p, string(t.Value.(ast.String))) // constantPrefix keeps string elements only
		}
		r.paths[i] = p
	}
	return r
}

// Path reports whether the policy may read the input at path (member names under `input`, such as
// "request", "headers"): whether a path it reads is at, under or above it. A builder may leave out any
// part of the input for which Path is false: the decision cannot depend on it.
func (r Reads) Path(path ...string) bool {
	if !r.bounded {
		return true
	}
	for _, p := range r.paths {
		n := min(len(p), len(path))
		same := true
		for i := range n {
			if p[i] != path[i] {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

// EvaluateInput is EvaluateValue on the input document that build returns, given what this generation can
// read: a caller need not build parts the policy never reads. An error of build is returned as is.
func (p *Policy) EvaluateInput(ctx context.Context, build func(Reads) (ast.Value, error)) (Decision, error) {
	in, err := build(p.reads)
	if err != nil {
		return Decision{}, err
	}
	return p.EvaluateValue(ctx, in)
}
