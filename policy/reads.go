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

// Input is one request's input document, built only when it must be evaluated.
type Input interface {
	// Value builds the document; it may leave out any part for which reads.Path is false.
	Value(reads Reads) (ast.Value, error)
	// Lookup returns the term at path (string terms: member names under `input`) in the document Value
	// builds, nil when the document has no value there; known is false when it cannot tell without
	// building the document. It must agree with Value (Descend on it): the decision cache keys on what
	// Lookup returns.
	Lookup(path ast.Ref) (t *ast.Term, known bool)
}

// EvaluateInput decides in. With the generation's decision cache on, the key is made of in.Lookup on the
// paths the policy reads, and in.Value is built only on a miss (or when a lookup is not known); else it is
// EvaluateValue on in.Value(reads), built as far as the generation reads it. An error of Value is
// returned as is.
func (p *Policy) EvaluateInput(ctx context.Context, in Input) (Decision, error) {
	if p.cache != nil {
		if key, ok := p.cache.lookupKey(in); ok {
			if d, hit := p.cache.get(key); hit {
				return d, nil
			}
			v, err := in.Value(p.reads)
			if err != nil {
				return Decision{}, err
			}
			d, err := p.evaluateValue(ctx, v)
			if err != nil {
				return Decision{}, err
			}
			p.cache.put(key, d)
			return d, nil
		}
	}
	v, err := in.Value(p.reads)
	if err != nil {
		return Decision{}, err
	}
	return p.EvaluateValue(ctx, v)
}

// Descend returns the term at path (string terms) under root: nil when there is none (a missing member,
// or a scalar or an array on the way), as the decision cache projects an input; ok is false when a set is
// on the way.
func Descend(root *ast.Term, path ast.Ref) (t *ast.Term, ok bool) {
	t = root
	for _, k := range path {
		switch x := t.Value.(type) {
		case ast.Object:
			t = x.Get(k)
		case ast.Set:
			return nil, false // a set read with a key is a membership test; not projected
		default:
			t = nil // a scalar or an array has no string keys: the ref is undefined
		}
		if t == nil {
			return nil, true
		}
	}
	return t, true
}
