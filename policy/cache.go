package policy

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
)

// DefaultDecisionCacheSize is the number of decisions a generation keeps when no size is configured.
const DefaultDecisionCacheSize = 4096

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

// decisionCache holds the decisions of one generation, keyed by the projection of the input onto the
// generation's input paths. A hit compares the stored projection with the new one (ast.Compare), never
// trusting the hash alone. It is bounded: when full, an insert evicts an entry chosen by map iteration
// (random). Safe for concurrent use.
type decisionCache struct {
	paths []ast.Ref
	max   int
	// absent marks a path the input has no value at. It is an empty set, which no JSON input holds, and
	// keys compare it by identity (sameKey); shared, never modified.
	absent *ast.Term

	mu      sync.RWMutex
	buckets map[int][]cacheEntry
	size    int

	hits, misses atomic.Uint64
}

type cacheEntry struct {
	key      ast.Value
	decision Decision
}

func newDecisionCache(paths []ast.Ref, size int) *decisionCache {
	return &decisionCache{paths: paths, max: size, absent: ast.SetTerm(), buckets: make(map[int][]cacheEntry)}
}

// key is the projection of input onto the cache's paths: an array with, per path, the input's term there,
// or the cache's absent marker when the input has no value there. ok is false when the input cannot be
// projected faithfully (not an object, or a set on a path): such an input is evaluated, never cached. The
// key shares the input's terms (neither is ever modified).
func (c *decisionCache) key(input ast.Value) (key ast.Value, ok bool) {
	if _, isObj := input.(ast.Object); !isObj {
		return nil, false
	}
	root := ast.NewTerm(input)
	return c.keyOf(func(path ast.Ref) (*ast.Term, bool) { return Descend(root, path) })
}

// lookupKey is key for an input not built: the terms in.Lookup returns on the cache's paths. ok is false
// when a lookup is not known (or meets a set), and the input must then be built and projected.
func (c *decisionCache) lookupKey(in Input) (key ast.Value, ok bool) { return c.keyOf(in.Lookup) }

// keyOf is the key made of what find returns on the cache's paths (after `input`): the term there, or the
// absent marker. ok is false when find is not sure, or when a set is on a path.
func (c *decisionCache) keyOf(find func(ast.Ref) (*ast.Term, bool)) (key ast.Value, ok bool) {
	elems := make([]*ast.Term, len(c.paths))
	for i, p := range c.paths {
		t, known := find(p[1:])
		if !known {
			return nil, false
		}
		if t == nil {
			elems[i] = c.absent
			continue
		}
		if _, isSet := t.Value.(ast.Set); isSet {
			return nil, false
		}
		elems[i] = t
	}
	return ast.NewArray(elems...), true
}

// get returns the decision stored under key, compared in full.
func (c *decisionCache) get(key ast.Value) (Decision, bool) {
	h := key.Hash()
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, e := range c.buckets[h] {
		if c.sameKey(e.key, key) {
			c.hits.Add(1)
			return cloneDecision(e.decision), true
		}
	}
	c.misses.Add(1)
	return Decision{}, false
}

// put stores d under key, evicting an entry when the cache is full.
func (c *decisionCache) put(key ast.Value, d Decision) {
	h := key.Hash()
	d = cloneDecision(d)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.buckets[h] {
		if c.sameKey(e.key, key) {
			return
		}
	}
	if c.size >= c.max {
		for eh, b := range c.buckets {
			if len(b) <= 1 {
				delete(c.buckets, eh)
			} else {
				c.buckets[eh] = slices.Delete(slices.Clone(b), 0, 1)
			}
			c.size--
			break
		}
	}
	c.buckets[h] = append(c.buckets[h], cacheEntry{key: key, decision: d})
	c.size++
}

// len is the number of decisions held.
func (c *decisionCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.size
}

// sameKey reports whether two keys are the same projection: path by path, both absent, or both present
// with the same value (sameValue).
func (c *decisionCache) sameKey(x, y ast.Value) bool {
	a, b := x.(*ast.Array), y.(*ast.Array)
	if a.Len() != b.Len() {
		return false
	}
	for i := range a.Len() {
		s, t := a.Elem(i), b.Elem(i)
		if s == c.absent || t == c.absent {
			if s != t {
				return false
			}
			continue
		}
		if !sameValue(s.Value, t.Value) {
			return false
		}
	}
	return true
}

// cloneDecision copies d's slice and map so that no caller shares them with the cache.
func cloneDecision(d Decision) Decision {
	d.RequiredScopes = slices.Clone(d.RequiredScopes)
	d.Headers = maps.Clone(d.Headers)
	return d
}

// sameValue reports whether x and y are the same JSON value, spelled the same: ast.Compare holds them equal
// and every number is written alike. ast.Compare alone equates 1 and 1.0, which a policy can tell apart
// (sprintf, json.marshal). Sets and non-string object keys, which JSON input never holds, are never the
// same: such a key misses.
func sameValue(x, y ast.Value) bool {
	switch x := x.(type) {
	case ast.Null, ast.Boolean, ast.String:
		return ast.Compare(x, y) == 0
	case ast.Number:
		n, ok := y.(ast.Number)
		return ok && x == n
	case *ast.Array:
		a, ok := y.(*ast.Array)
		if !ok || a.Len() != x.Len() {
			return false
		}
		for i := range x.Len() {
			if !sameValue(x.Elem(i).Value, a.Elem(i).Value) {
				return false
			}
		}
		return true
	case ast.Object:
		o, ok := y.(ast.Object)
		if ok && o == x { // OPA's objects are pointers: the same object, a cached token's claims say
			return true
		}
		if !ok || o.Len() != x.Len() {
			return false
		}
		same := true
		x.Until(func(k, v *ast.Term) bool {
			if _, isStr := k.Value.(ast.String); !isStr {
				same = false
				return true
			}
			w := o.Get(k)
			same = w != nil && sameValue(v.Value, w.Value)
			return !same
		})
		return same
	default:
		return false
	}
}
