package policy

import (
	"context"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// EvaluateValue is Evaluate with the input document already built as an ast.Value, which spares OPA the
// conversion of a map[string]any on every call. Errors are as Evaluate's; callers treat every error as a deny.
//
// When the generation's decision cache is on, a decision is first looked up by the projection of input onto
// the input paths the policy can read, compared in full; a miss evaluates and caches a successful decision
// (never an error). input must not be modified after the call: the cache may keep parts of it.
func (p *Policy) EvaluateValue(ctx context.Context, input ast.Value) (Decision, error) {
	if p.cache == nil {
		return p.evaluateValue(ctx, input)
	}
	key, ok := p.cache.key(input)
	if !ok {
		return p.evaluateValue(ctx, input)
	}
	if d, hit := p.cache.get(key); hit {
		return d, nil
	}
	d, err := p.evaluateValue(ctx, input)
	if err != nil {
		return Decision{}, err
	}
	p.cache.put(key, d)
	return d, nil
}

// evaluateValue evaluates input, uncached.
func (p *Policy) evaluateValue(ctx context.Context, input ast.Value) (Decision, error) {
	rs, err := p.query.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return Decision{}, fmt.Errorf("evaluate policy: %w", err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return Decision{}, ErrNoDecision
	}
	return decode(rs[0].Expressions[0].Value)
}
