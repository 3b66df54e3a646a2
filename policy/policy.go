// Package policy evaluates mcp-authz's Rego policies with embedded OPA. A Policy is one compiled generation
// of the configured Rego modules and data files: an input document goes in, a decision document comes out.
// It knows nothing of tokens or HTTP beyond that input document.
package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/rego"
)

// DefaultQuery is the decision document's path.
const DefaultQuery = "data.mcp.authz.decision"

// Decision is the decision document a policy produces:
//
//	{"allow": bool, "reason": string, "required_scopes": [string], "headers": {string: string}}
//
// A deny with required_scopes asks the client for more scopes (403 insufficient_scope); headers are added
// to the request sent upstream on an allow.
type Decision struct {
	// Allow is true only when the policy said exactly `"allow": true`.
	Allow bool
	// Reason explains the decision.
	Reason string
	// RequiredScopes are the scopes a denied request needs.
	RequiredScopes []string
	// Headers are extra headers for the upstream request.
	Headers map[string]string
}

// Policy is one compiled generation of the policies. It is immutable and safe for concurrent use.
type Policy struct {
	query rego.PreparedEvalQuery
	files int
}

// Load reads the Rego modules and JSON/YAML data files under paths (files or folders; `*_test.rego` files
// are skipped), compiles them and prepares query. Errors name the file and line.
func Load(ctx context.Context, paths []string, query string) (*Policy, error) {
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
	pq, err := prepare(ctx, query, compiler, store)
	if err != nil {
		return nil, fmt.Errorf("prepare policy query %s: %w", query, err)
	}
	if !definesQuery(compiler, query) {
		return nil, fmt.Errorf("prepare policy query: no rule defines %s", query)
	}
	return &Policy{query: pq, files: len(result.Modules) + len(result.Documents)}, nil
}

// skipTests leaves Rego unit tests and hidden files out of the served policy set.
func skipTests(abspath string, info fs.FileInfo, depth int) bool {
	name := info.Name()
	if info.IsDir() {
		return depth > 0 && strings.HasPrefix(name, ".") && name != "..data" // ConfigMap mounts keep data in ..data
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

// ErrNoDecision is returned when the policy defines no decision for an input.
var ErrNoDecision = errors.New("policy produced no decision")

// Evaluate runs the prepared query on input. An evaluation error or a malformed decision is an error;
// callers treat every error as a deny.
func (p *Policy) Evaluate(ctx context.Context, input map[string]any) (Decision, error) {
	rs, err := p.query.Eval(ctx, rego.EvalInput(input))
	if err != nil {
		return Decision{}, fmt.Errorf("evaluate policy: %w", err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return Decision{}, ErrNoDecision
	}
	return decode(rs[0].Expressions[0].Value)
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
	return d, nil
}
