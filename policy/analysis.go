package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Reads is what a generation's policy can read of its input document: the paths found by the static
// analysis of its modules (the decision cache's), or everything when the analysis could not bound them.
// The zero value reads everything.
type Reads struct {
	bounded bool
	paths   [][]string // without the leading `input`
	claims  *Claims    // the claims input.token.claims holds; nil: every claim
}

// Claims is the set of claims the generation's input.token.claims holds (the policy's token_claims and
// the claims it names): a builder must leave every other claim out, since the decision cache keys on
// these alone. Nil: every claim.
func (r Reads) Claims() *Claims { return r.claims }

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

// Paths returns the input paths the generation's decision cache keys on (input.token.scopes, …); nil when
// the analysis could not bound them (the policy may read anything).
func (r Reads) Paths() []string {
	if !r.bounded {
		return nil
	}
	out := make([]string, len(r.paths))
	for i, p := range r.paths {
		out[i] = strings.Join(append([]string{"input"}, p...), ".")
	}
	return out
}

// wholeToken reports whether the policy may read input.token (or the whole input) as one value, through
// which it could read claims by names the analysis does not see.
func (r Reads) wholeToken() bool {
	if !r.bounded {
		return true
	}
	for _, p := range r.paths {
		if len(p) == 0 || len(p) == 1 && p[0] == "token" {
			return true
		}
	}
	return false
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

// inputPaths is what a generation's policy can read of its input: the constant-string prefixes of every
// reference rooted at `input`, none a prefix of another. reason is why the decision cache is off for the
// generation (empty when it may be on).
type inputPaths struct {
	paths  []ast.Ref
	reason string
}

// analyzeInput statically analyses the compiled modules and the query text (never the partially evaluated
// query, whose shape depends on the data) and returns the input paths they can read. Any construct through
// which the decision could depend on more than those paths, or on anything but input and data, turns the
// cache off: a bare `input`, a ref into input with a non-constant element before any constant one, a `with`
// modifier, a non-deterministic built-in, a function that is neither a built-in of the compiler nor a rule.
func analyzeInput(compiler *ast.Compiler, query string) inputPaths {
	builtins := map[string]*ast.Builtin{}
	if caps := compiler.Capabilities(); caps != nil {
		for _, b := range caps.Builtins {
			builtins[b.Name] = b
		}
	}
	a := &analysis{compiler: compiler, builtins: builtins}
	body, err := ast.ParseBody(query)
	if err != nil {
		return inputPaths{reason: fmt.Sprintf("query %q does not parse: %v", query, err)}
	}
	a.walk(body)
	for _, name := range slices.Sorted(maps.Keys(compiler.Modules)) {
		if a.reason != "" {
			break
		}
		a.walk(compiler.Modules[name])
	}
	if a.reason != "" {
		return inputPaths{reason: a.reason}
	}
	return inputPaths{paths: minimalPrefixes(a.paths)}
}

type analysis struct {
	compiler *ast.Compiler
	builtins map[string]*ast.Builtin
	paths    []ast.Ref
	reason   string
}

func (a *analysis) disable(format string, args ...any) {
	if a.reason == "" {
		a.reason = fmt.Sprintf(format, args...)
	}
}

func (a *analysis) walk(x any) {
	var vis *ast.GenericVisitor
	vis = ast.NewGenericVisitor(func(x any) bool {
		if a.reason != "" {
			return true
		}
		switch x := x.(type) {
		case *ast.Expr:
			if len(x.With) > 0 {
				a.disable("a with modifier (%v) at %v", x.With[0], x.Location)
				return true
			}
			if x.IsCall() {
				a.call(x.Operator(), x.Location)
			}
		case ast.Call:
			if len(x) > 0 {
				if op, ok := x[0].Value.(ast.Ref); ok {
					a.call(op, x[0].Location)
				} else {
					a.disable("a call of %v", x[0])
				}
			}
		case *ast.Term:
			switch v := x.Value.(type) {
			case ast.Var:
				if v.Equal(ast.InputRootDocument.Value) {
					a.disable("bare input at %v", x.Location)
					return true
				}
			case ast.Ref:
				if !v.HasPrefix(ast.InputRootRef) {
					return false
				}
				prefix := constantPrefix(v)
				if len(prefix) == 1 {
					if len(v) == 1 {
						a.disable("bare input at %v", x.Location)
					} else {
						a.disable("input read with a non-constant key (%v) at %v", v, x.Location)
					}
					return true
				}
				a.paths = append(a.paths, prefix)
				for _, t := range v[len(prefix):] { // the non-constant rest may read input too
					vis.Walk(t)
				}
				return true
			}
		}
		return false
	})
	vis.Walk(x)
}

// call checks one function called by the policy: a rule of the policy (analysed as a module), or a
// deterministic built-in of the compiler.
func (a *analysis) call(op ast.Ref, loc *ast.Location) {
	if op.HasPrefix(ast.DefaultRootRef) {
		if len(a.compiler.GetRulesExact(op)) == 0 {
			a.disable("a call of %v, which no rule defines, at %v", op, loc)
		}
		return
	}
	b := a.builtins[op.String()]
	switch {
	case b == nil:
		a.disable("a call of %v, not a built-in of this compiler, at %v", op, loc)
	case b.Nondeterministic || readsClock[b.Name]:
		a.disable("a call of the non-deterministic built-in %v at %v", op, loc)
	}
}

// readsClock are built-ins that OPA does not mark non-deterministic but whose result depends on the
// current time (certificate validity) or that sign with it.
var readsClock = map[string]bool{
	"crypto.x509.parse_and_verify_certificates":              true,
	"crypto.x509.parse_and_verify_certificates_with_options": true,
	"providers.aws.sign_req":                                 true,
}

// constantPrefix is the longest prefix of ref (rooted at input) whose elements after the root are strings.
func constantPrefix(ref ast.Ref) ast.Ref {
	n := 1
	for n < len(ref) {
		if _, ok := ref[n].Value.(ast.String); !ok {
			break
		}
		n++
	}
	return ref[:n].Copy()
}

// minimalPrefixes sorts and deduplicates paths and drops every path that another one is a prefix of (reading
// input.token covers input.token.claims).
func minimalPrefixes(paths []ast.Ref) []ast.Ref {
	slices.SortFunc(paths, func(x, y ast.Ref) int { return x.Compare(y) })
	var out []ast.Ref
	for _, p := range paths {
		if len(out) > 0 && p.HasPrefix(out[len(out)-1]) {
			continue
		}
		out = append(out, p)
	}
	return out
}
