// Package policy evaluates mcp-authz's Rego policies with embedded OPA. A Policy is one compiled generation
// of the configured Rego modules and data files: an input document goes in, a decision document comes out.
// It knows nothing of tokens or HTTP beyond that input document.
package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// DefaultQuery is the decision document's path.
const DefaultQuery = "data.mcp.authz.decision"

// Decision is the decision document a policy produces:
//
//	{"allow": bool, "reason": string, "required_scopes": [string], "headers": {string: string},
//	 "assertion_claims": {string: any}}
//
// A deny with required_scopes asks the client for more scopes (403 insufficient_scope); headers are added
// to the request sent upstream on an allow, and assertion_claims to its signed identity assertion.
type Decision struct {
	// Allow is true only when the policy said exactly `"allow": true`.
	Allow bool
	// Reason explains the decision.
	Reason string
	// RequiredScopes are the scopes a denied request needs.
	RequiredScopes []string
	// Headers are extra headers for the upstream request.
	Headers map[string]string
	// AssertionClaims are extra claims for the signed identity assertion of an allow (JSON values as
	// OPA returns them). Their values are shared with the decision cache: treat them as immutable.
	AssertionClaims map[string]any
	// Revision is the revision of the generation that decided (Status.Revision), set by Live.Evaluate.
	Revision string
}

// Policy is one compiled generation of the policies. It is immutable and safe for concurrent use.
type Policy struct {
	query     rego.PreparedEvalQuery
	queryText string
	compiler  *ast.Compiler
	store     storage.Store
	files     int
	// cache holds the decisions of this generation; nil when off (see Option and DecisionCacheOff).
	cache *decisionCache
	// cacheOff says why cache is nil.
	cacheOff string
	// reads is what the generation can read of its input.
	reads Reads
	// revision is the generation's Status.Revision, set by Live before it serves the generation.
	revision string
}

// Option tunes the generation Load or FromBundle builds.
type Option func(*options)

type options struct {
	cacheSize int
	log       *slog.Logger
	counts    *cacheCounts // a Live's lookups over all its generations; nil: none
}

// WithDecisionCache sets how many decisions the generation caches: 0 (and no option) takes
// DefaultDecisionCacheSize, a negative size turns the cache off, as LiveOptions.DecisionCacheSize does.
func WithDecisionCache(size int) Option { return func(o *options) { o.cacheSize = size } }

// WithLogger receives, once per generation, why its decision cache is off; nil discards it.
func WithLogger(log *slog.Logger) Option { return func(o *options) { o.log = log } }

func buildOptions(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.cacheSize == 0 {
		o.cacheSize = DefaultDecisionCacheSize
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	return o
}

// Load reads the Rego modules and JSON/YAML data files under paths (files or folders; `*_test.rego` files
// are skipped), compiles them and prepares query. Errors name the file and line.
func Load(ctx context.Context, paths []string, query string, opts ...Option) (*Policy, error) {
	result, err := loader.NewFileLoader().
		WithRegoVersion(ast.RegoV1).
		WithFollowSymlinks(true).
		Filtered(paths, skipTests)
	if err != nil {
		return nil, fmt.Errorf("load policies: %w", err)
	}
	if len(result.Modules) == 0 {
		return nil, fmt.Errorf("load policies: no Rego module found in %s", strings.Join(paths, ", "))
	}
	compiler, err := result.Compiler()
	if err != nil {
		return nil, fmt.Errorf("compile policies: %w", err)
	}
	store, err := result.Store()
	if err != nil {
		return nil, fmt.Errorf("load policy data: %w", err)
	}
	return prepare(ctx, compiler, store, query, len(result.Modules)+len(result.Documents), buildOptions(opts))
}

// FromBundle compiles an OPA bundle (already read and, when configured, verified by OPA's bundle reader)
// and prepares query. Delta bundles are refused: a generation is always a complete snapshot.
func FromBundle(ctx context.Context, b *bundle.Bundle, query string, opts ...Option) (*Policy, error) {
	if b.Type() == bundle.DeltaBundleType {
		return nil, errors.New("load bundle: delta bundles are not supported; serve snapshot bundles")
	}
	if len(b.Modules) == 0 {
		return nil, errors.New("load bundle: no Rego module in the bundle")
	}
	modules := make(map[string]*ast.Module, len(b.Modules))
	for _, m := range b.Modules {
		parsed := m.Parsed
		if parsed == nil {
			var err error
			if parsed, err = ast.ParseModuleWithOpts(m.Path, string(m.Raw), ast.ParserOptions{RegoVersion: ast.RegoV1}); err != nil {
				return nil, fmt.Errorf("parse bundle module %s: %w", m.Path, err)
			}
		}
		modules[m.Path] = parsed
	}
	compiler := ast.NewCompiler()
	if compiler.Compile(modules); compiler.Failed() {
		return nil, fmt.Errorf("compile bundle: %w", compiler.Errors)
	}
	data := b.Data
	if data == nil {
		data = map[string]any{}
	}
	return prepare(ctx, compiler, inmem.NewFromObject(data), query, len(b.Modules), buildOptions(opts))
}

// prepare builds one generation from a compiled module set and its data, with its own decision cache when
// the analysis of the modules allows one.
func prepare(ctx context.Context, compiler *ast.Compiler, store storage.Store, query string, files int, o options) (*Policy, error) {
	pq, err := prepareQuery(ctx, query, compiler, store)
	if err != nil {
		return nil, fmt.Errorf("prepare policy query %s: %w", query, err)
	}
	if !definesQuery(compiler, query) {
		return nil, fmt.Errorf("prepare policy query: no rule defines %s", query)
	}
	claims, err := declaredClaims(ctx, compiler, store, query)
	if err != nil {
		return nil, fmt.Errorf("policy token claims: %w", err)
	}
	in := analyzeInput(compiler, query)
	p := &Policy{query: pq, queryText: query, compiler: compiler, store: store, files: files, reads: newReads(in)}
	p.reads.claims = claims
	if claims != nil && p.reads.wholeToken() {
		o.log.WarnContext(ctx, "policy declares token_claims but may read input.token whole: the claims it reads through a variable must be in token_claims, the others are left out", "token_claims", claims.Names())
	}
	if claims != nil && len(claims.undeclared) > 0 {
		o.log.WarnContext(ctx, "policy reads claims by a variable name outside the files that define token_claims: those claims are absent unless token_claims names them", "token_claims", claims.Names(), "at", claims.undeclared)
	}
	switch {
	case o.cacheSize < 0:
		p.cacheOff = "turned off by configuration"
	case in.reason != "":
		p.cacheOff = in.reason
		o.log.InfoContext(ctx, "policy decision cache off for this generation", "why", in.reason)
	default:
		p.cache = newDecisionCache(in.paths, o.cacheSize, o.counts)
		paths := make([]string, len(in.paths))
		for i, r := range in.paths {
			paths[i] = r.String()
		}
		o.log.DebugContext(ctx, "policy decision cache on", "size", o.cacheSize, "input_paths", paths)
	}
	return p, nil
}

// DecisionCacheOff says why the generation caches no decisions; empty when it does.
func (p *Policy) DecisionCacheOff() string { return p.cacheOff }

// skipTests leaves Rego unit tests and hidden files and folders out of the served policy set. Hidden
// folders include the `..data` and `..2026_…` folders of a Kubernetes ConfigMap mount: its visible files
// are symlinks through `..data`, so reading the folder through them loads every file exactly once.
func skipTests(abspath string, info fs.FileInfo, depth int) bool {
	name := info.Name()
	if info.IsDir() {
		return depth > 0 && strings.HasPrefix(name, ".")
	}
	return strings.HasSuffix(name, "_test.rego") || strings.HasPrefix(name, ".")
}

func definesQuery(c *ast.Compiler, query string) bool {
	ref, err := ast.ParseRef(query)
	if err != nil {
		return false
	}
	return len(c.GetRulesForVirtualDocument(ref)) > 0 || len(c.GetRulesWithPrefix(ref)) > 0
}

// Explanation is the result of Explain: the value of a query and, when asked, OPA's evaluation trace.
type Explanation struct {
	// Defined is false when the query has no value for the input.
	Defined bool
	// Value is the query's value as the policy wrote it (JSON types).
	Value any
	// Trace is OPA's trace of the evaluation (empty unless Explain was asked to trace); format it with
	// topdown.PrettyTraceWithLocation after filtering with topdown/lineage.
	Trace []*topdown.Event
}

// Explain evaluates query (the decision query when empty) on input and returns its raw value, with OPA's
// evaluation trace when trace is true. It is for tooling (`mcp-authz policy eval`), not the request path.
// input.token.claims is reduced to the generation's claims (Reads.Claims), as on the request path.
func (p *Policy) Explain(ctx context.Context, input map[string]any, query string, trace bool) (Explanation, error) {
	// The query is prepared as written, not partially evaluated as Evaluate's is, so that the trace follows
	// the rules of the source files.
	if query == "" {
		query = p.queryText
	}
	pq, err := rego.New(rego.Query(query), rego.Compiler(p.compiler), rego.Store(p.store)).PrepareForEval(ctx)
	if err != nil {
		return Explanation{}, fmt.Errorf("prepare query %s: %w", query, err)
	}
	opts := []rego.EvalOption{rego.EvalInput(filterInputClaims(input, p.reads.claims))}
	var tracer *topdown.BufferTracer
	if trace {
		tracer = topdown.NewBufferTracer()
		opts = append(opts, rego.EvalQueryTracer(tracer))
	}
	rs, err := pq.Eval(ctx, opts...)
	if err != nil {
		return Explanation{}, fmt.Errorf("evaluate policy: %w", err)
	}
	var e Explanation
	if tracer != nil {
		e.Trace = *tracer
	}
	if len(rs) > 0 && len(rs[0].Expressions) > 0 {
		e.Defined, e.Value = true, rs[0].Expressions[0].Value
	}
	return e, nil
}

// Reads is what the generation can read of its input: the paths its decision cache keys on and the token
// claims its input holds.
func (p *Policy) Reads() Reads { return p.reads }
