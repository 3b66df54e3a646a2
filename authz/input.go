package authz

import (
	"bytes"
	"context"

	"github.com/mcp-authz/mcp-authz/policy"
	"github.com/open-policy-agent/opa/v1/ast"
)

// evaluatePolicy asks the policy for a decision on the input document of one request, built directly as an
// ast.Value (OPA evaluates it as is; a map[string]any would be converted on every call).
func (a *Authorizer) evaluatePolicy(ctx context.Context, req *Request, res *resource, id *Identity, msg *Message) (policy.Decision, error) {
	in, err := inputValue(req, res, id, msg)
	if err != nil {
		return policy.Decision{}, err
	}
	return a.policy.EvaluateValue(ctx, in)
}

// inputValue is the policy input document (README "Policy input"; keep it stable) as an ast.Value (see the
// README "Policy input").
func inputValue(req *Request, res *resource, id *Identity, msg *Message) (ast.Value, error) {
	token := id.policyToken
	if token == nil {
		var err error
		if token, err = tokenValue(id); err != nil {
			return nil, err
		}
	}
	headers := ast.NewObjectWithCapacity(len(req.Headers))
	for k, v := range req.Headers {
		if k != "authorization" {
			headers.Insert(ast.StringTerm(k), ast.StringTerm(v))
		}
	}
	in := ast.NewObjectWithCapacity(4)
	in.Insert(ast.InternedTerm("token"), ast.NewTerm(token))
	in.Insert(ast.InternedTerm("request"), ast.ObjectTerm(
		ast.Item(ast.InternedTerm("method"), ast.StringTerm(req.Method)),
		ast.Item(ast.InternedTerm("host"), ast.StringTerm(req.Host)),
		ast.Item(ast.InternedTerm("path"), ast.StringTerm(req.Path)),
		ast.Item(ast.InternedTerm("headers"), ast.NewTerm(headers)),
	))
	in.Insert(ast.InternedTerm("resource"), ast.ObjectTerm(
		ast.Item(ast.InternedTerm("url"), ast.StringTerm(res.cfg.URL)),
		ast.Item(ast.InternedTerm("name"), ast.StringTerm(res.cfg.Name)),
	))
	if msg != nil {
		m := ast.NewObjectWithCapacity(4)
		m.Insert(ast.InternedTerm("method"), ast.StringTerm(msg.Method))
		if len(msg.ID) > 0 {
			if id, err := ast.ValueFromReader(bytes.NewReader(msg.ID)); err == nil {
				m.Insert(ast.InternedTerm("id"), ast.NewTerm(id))
			}
		}
		if msg.Tool != "" {
			m.Insert(ast.InternedTerm("tool"), ast.StringTerm(msg.Tool))
		}
		if msg.URI != "" {
			m.Insert(ast.InternedTerm("uri"), ast.StringTerm(msg.URI))
		}
		in.Insert(ast.InternedTerm("mcp"), ast.NewTerm(m))
	}
	return in, nil
}

// tokenValue is the `token` member of the policy input: subject, issuer, client_id (when set), scopes and
// claims. OPA only reads it, so one value may serve concurrent evaluations.
func tokenValue(id *Identity) (ast.Value, error) {
	claims, err := ast.InterfaceToValue(id.Claims)
	if err != nil {
		return nil, err
	}
	scopes := make([]*ast.Term, len(id.Scopes))
	for i, s := range id.Scopes {
		scopes[i] = ast.StringTerm(s)
	}
	token := ast.NewObjectWithCapacity(5)
	token.Insert(ast.InternedTerm("scopes"), ast.ArrayTerm(scopes...))
	token.Insert(ast.InternedTerm("claims"), ast.NewTerm(claims))
	for _, f := range [...]struct{ name, value string }{{"subject", id.Subject}, {"issuer", id.Issuer}, {"client_id", id.ClientID}} {
		if f.value != "" {
			token.Insert(ast.InternedTerm(f.name), ast.StringTerm(f.value))
		}
	}
	return token, nil
}
