package policy

import (
	"context"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
)

// prepareQuery prepares query for evaluation. The query is first partially evaluated against the data, with the
// whole input unknown: what depends on data alone (data.authorizer lookups, rules over the configured
// lists) is worked out once here instead of on every request, and each Evaluate only runs what depends on
// the input. Non-deterministic built-ins (time.now_ns, http.send, ...) are not evaluated ahead of time. When
// partial evaluation fails, the query is prepared as written: slower, same decisions.
func prepareQuery(ctx context.Context, query string, compiler *ast.Compiler, store storage.Store) (rego.PreparedEvalQuery, error) {
	build := func() *rego.Rego { return rego.New(rego.Query(query), rego.Compiler(compiler), rego.Store(store)) }
	if pq, err := build().PrepareForEval(ctx, rego.WithPartialEval()); err == nil {
		return pq, nil
	}
	return build().PrepareForEval(ctx)
}
