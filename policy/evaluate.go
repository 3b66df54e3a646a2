package policy

import (
	"context"
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// Input is one request's input document, built only when it must be evaluated.
type Input interface {
	// Value builds the document; it may leave out any part for which reads.Path is false.
	Value(reads Reads) (ast.Value, error)
	// Lookup returns the term at path (string terms: member names under `input`) in the document Value
	// builds with reads, nil when the document has no value there; known is false when it cannot tell
	// without building the document. It must agree with Value (Descend on it): the decision cache keys on
	// what Lookup returns.
	Lookup(path ast.Ref, reads Reads) (t *ast.Term, known bool)
}

// Document is an Input already built. It must not be modified once evaluated: the decision cache may keep
// parts of it.
func Document(v ast.Value) Input { return document{ast.NewTerm(v)} }

// Map is an Input built from a JSON-like document (map[string]any, []any, string, json.Number, bool,
// nil), for tooling and tests; the request path builds its documents lazily instead. Its token.claims is
// reduced to the generation's claims (Reads.Claims), as the request path builds them.
func Map(doc map[string]any) Input { return mapInput(doc) }

type document struct{ root *ast.Term }

func (d document) Value(Reads) (ast.Value, error) { return d.root.Value, nil }

func (d document) Lookup(path ast.Ref, _ Reads) (*ast.Term, bool) {
	if _, ok := d.root.Value.(ast.Object); !ok {
		return nil, false // not an object: evaluated, never cached
	}
	return Descend(d.root, path)
}

type mapInput map[string]any

func (m mapInput) Value(reads Reads) (ast.Value, error) {
	v, err := ast.InterfaceToValue(filterInputClaims(m, reads.claims))
	if err != nil {
		return nil, fmt.Errorf("policy input: %w", err)
	}
	return v, nil
}

func (m mapInput) Lookup(ast.Ref, Reads) (*ast.Term, bool) { return nil, false } // built, then projected

// ErrNoDecision is returned when the policy defines no decision for an input.
var ErrNoDecision = errors.New("policy produced no decision")

// Evaluate decides in: an evaluation error or a malformed decision is an error, and callers treat every
// error as a deny. With the generation's decision cache on, the key is made of in.Lookup on the paths the
// policy reads, and in.Value is built only on a miss (a lookup that is not known builds the document and
// projects it); only successful decisions are cached. Without the cache, in.Value is built as far as the
// generation reads it. An error of Value is returned as is.
func (p *Policy) Evaluate(ctx context.Context, in Input) (Decision, error) {
	if p.cache == nil {
		v, err := in.Value(p.reads)
		if err != nil {
			return Decision{}, err
		}
		return p.evaluate(ctx, v)
	}
	key, ok := p.cache.key(in, p.reads)
	var v ast.Value
	if !ok { // the key needs the document
		var err error
		if v, err = in.Value(p.reads); err != nil {
			return Decision{}, err
		}
		if key, ok = p.cache.key(Document(v), p.reads); !ok {
			return p.evaluate(ctx, v)
		}
	}
	if d, hit := p.cache.get(key); hit {
		return d, nil
	}
	if v == nil {
		var err error
		if v, err = in.Value(p.reads); err != nil {
			return Decision{}, err
		}
	}
	d, err := p.evaluate(ctx, v)
	if err != nil {
		return Decision{}, err
	}
	p.cache.put(key, d)
	return d, nil
}

// evaluate runs the prepared query on input, uncached.
func (p *Policy) evaluate(ctx context.Context, input ast.Value) (Decision, error) {
	rs, err := p.query.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return Decision{}, fmt.Errorf("evaluate policy: %w", err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return Decision{}, ErrNoDecision
	}
	return decode(rs[0].Expressions[0].Value)
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

func decode(v any) (Decision, error) {
	doc, ok := v.(map[string]any)
	if !ok {
		return Decision{}, fmt.Errorf("policy decision is %T, not an object", v)
	}
	var d Decision
	if allow, ok := doc["allow"].(bool); ok {
		d.Allow = allow
	} else if _, present := doc["allow"]; present {
		return Decision{}, errors.New("policy decision: allow is not a boolean")
	}
	if r, ok := doc["reason"]; ok {
		if d.Reason, ok = r.(string); !ok {
			return Decision{}, errors.New("policy decision: reason is not a string")
		}
	}
	if rs, ok := doc["required_scopes"]; ok {
		list, ok := rs.([]any)
		if !ok {
			return Decision{}, errors.New("policy decision: required_scopes is not an array")
		}
		for _, s := range list {
			str, ok := s.(string)
			if !ok {
				return Decision{}, errors.New("policy decision: required_scopes holds a non-string")
			}
			d.RequiredScopes = append(d.RequiredScopes, str)
		}
	}
	if hs, ok := doc["headers"]; ok {
		m, ok := hs.(map[string]any)
		if !ok {
			return Decision{}, errors.New("policy decision: headers is not an object")
		}
		d.Headers = make(map[string]string, len(m))
		for k, v := range m {
			s, ok := v.(string)
			if !ok {
				return Decision{}, fmt.Errorf("policy decision: header %q is not a string", k)
			}
			d.Headers[k] = s
		}
	}
	if cs, ok := doc["assertion_claims"]; ok {
		if d.AssertionClaims, ok = cs.(map[string]any); !ok {
			return Decision{}, errors.New("policy decision: assertion_claims is not an object")
		}
	}
	return d, nil
}
