package policy

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
)

// TokenClaimsRule is the rule, in the package of the decision query, by which a policy declares the token
// claims it reads through a variable key (input.token.claims[name]).
const TokenClaimsRule = "token_claims"

// Claims is the set of claim names a generation's input.token.claims holds when its policy declares them:
// the names its token_claims rule gives (computed from data alone when the generation loads) and the names
// its modules read with a constant key (input.token.claims.department). The policy sees no other claim,
// so the decision cache keys on these claims only, and the calls of different users with the same scopes,
// client and named claims share a decision. A nil *Claims is every claim (no token_claims rule).
// Immutable; a generation's pointer identifies its set.
type Claims struct {
	names []string // sorted, unique
	// undeclared are the places, outside the modules that define token_claims, where the policy reads a
	// claim by a variable name (directly, or by calling a function that does): the claims read there are
	// absent unless token_claims names them (policyLoadWarnings).
	undeclared []string
}

// Names returns the claim names, sorted; nil for every claim. The slice must not be modified.
func (c *Claims) Names() []string {
	if c == nil {
		return nil
	}
	return c.names
}

// Filter returns claims with only the set's members: claims itself for the nil set, else a new map.
func (c *Claims) Filter(claims map[string]any) map[string]any {
	if c == nil {
		return claims
	}
	out := make(map[string]any, len(c.names))
	for _, n := range c.names {
		if v, ok := claims[n]; ok {
			out[n] = v
		}
	}
	return out
}

// declaredClaims evaluates the token_claims rule of the query's package without input and adds the claim
// names the modules read with a constant key. It returns nil when no rule defines token_claims (the
// policy gets every claim), and an error naming the rule when its value is undefined or not a collection
// of strings: a declaration that cannot be honoured stops the generation from loading.
func declaredClaims(ctx context.Context, compiler *ast.Compiler, store storage.Store, query string) (*Claims, error) {
	ref, err := ast.ParseRef(query)
	if err != nil || len(ref) < 2 {
		return nil, nil // prepareQuery reports a query that does not parse
	}
	rule := ref[:len(ref)-1].Append(ast.StringTerm(TokenClaimsRule))
	if len(compiler.GetRulesForVirtualDocument(rule)) == 0 {
		return nil, nil
	}
	rs, err := rego.New(rego.ParsedQuery(ast.NewBody(ast.NewExpr(ast.NewTerm(rule)))), rego.Compiler(compiler), rego.Store(store)).Eval(ctx)
	if err != nil {
		return nil, fmt.Errorf("evaluate %v: %w", rule, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, fmt.Errorf("%v is undefined without input: compute it from data alone", rule)
	}
	list, ok := rs[0].Expressions[0].Value.([]any) // OPA returns sets as arrays
	if !ok {
		return nil, fmt.Errorf("%v is %T, not a set of claim names", rule, rs[0].Expressions[0].Value)
	}
	names := map[string]bool{}
	for _, v := range list {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%v holds %v, not a claim name (a string)", rule, v)
		}
		names[s] = true
	}
	for _, m := range compiler.Modules {
		ast.WalkRefs(m, func(r ast.Ref) bool {
			if len(r) > 3 && r.HasPrefix(tokenClaimsRef) {
				if s, ok := r[3].Value.(ast.String); ok {
					names[string(s)] = true
				}
			}
			return false
		})
	}
	return &Claims{names: slices.Sorted(maps.Keys(names)), undeclared: undeclaredReads(compiler, rule)}, nil
}

// undeclaredReads lists, sorted, the places in the modules that do not define rule (token_claims) where a
// claim is read by a variable name: a ref input.token.claims[x] with x not a string, or a call of a
// function whose body holds one. A rule added in a file of its own that reads claims that way would see
// them absent, and a denial that tests a claim would then not deny: the load warns about each place.
func undeclaredReads(compiler *ast.Compiler, rule ast.Ref) []string {
	variableRead := func(x any) bool {
		found := false
		ast.WalkRefs(x, func(r ast.Ref) bool {
			if len(r) > 3 && r.HasPrefix(tokenClaimsRef) {
				if _, isString := r[3].Value.(ast.String); !isString {
					found = true
				}
			}
			return found
		})
		return found
	}
	readers := map[string]bool{} // functions (data.pkg.name) whose body reads a claim by a variable name
	for _, m := range compiler.Modules {
		for _, r := range m.Rules {
			if len(r.Head.Args) > 0 && variableRead(r.Body) {
				readers[r.Ref().GroundPrefix().String()] = true
				readers[m.Package.Path.Extend(r.Ref().GroundPrefix()).String()] = true
			}
		}
	}
	var places []string
	for _, m := range compiler.Modules {
		defines := false
		for _, r := range m.Rules {
			if m.Package.Path.Extend(r.Head.Ref().GroundPrefix()).Equal(rule) {
				defines = true
			}
		}
		if defines {
			continue
		}
		ast.WalkExprs(m, func(e *ast.Expr) bool {
			if variableRead(e) || e.IsCall() && readers[e.Operator().String()] {
				loc := m.Package.Location
				if e.Location != nil {
					loc = e.Location
				}
				places = append(places, loc.String())
			}
			return false
		})
	}
	slices.Sort(places)
	return slices.Compact(places)
}

// tokenClaimsRef is input.token.claims.
var tokenClaimsRef = ast.MustParseRef("input.token.claims")

// filterInputClaims returns doc with input.token.claims reduced to claims: doc itself when nothing is left
// out, else a copy of the members on the way (doc is not modified).
func filterInputClaims(doc map[string]any, claims *Claims) map[string]any {
	token, _ := doc["token"].(map[string]any)
	tokenClaims, ok := token["claims"].(map[string]any)
	if claims == nil || !ok {
		return doc
	}
	token = maps.Clone(token)
	token["claims"] = claims.Filter(tokenClaims)
	doc = maps.Clone(doc)
	doc["token"] = token
	return doc
}
