package authz

import (
	"context"
	"encoding/json"

	"github.com/mcp-authz/mcp-authz/policy"
	"github.com/open-policy-agent/opa/v1/ast"
)

// evaluatePolicy asks the policy for a decision on the input document of one request (requestInput).
func (a *Authorizer) evaluatePolicy(ctx context.Context, req *Request, res *resource, id *Identity, msg *Message) (policy.Decision, error) {
	return a.policy.Evaluate(ctx, &requestInput{req: req, res: res, id: id, msg: msg})
}

// requestInput is the policy input document of one request (policy.Input): built as an ast.Value (OPA
// evaluates it as is; a map[string]any would be converted on every call) only as far as the policy reads
// it, and only when the decision cache cannot answer from the values Lookup finds.
type requestInput struct {
	req *Request
	res *resource
	id  *Identity
	msg *Message
	// token is the `token` member once built for this request (Lookup, then Value on a miss).
	token *tokenTerm
}

// Value builds the document (inputValue).
func (in *requestInput) Value(reads policy.Reads) (ast.Value, error) {
	token, err := in.tokenTerm(reads)
	if err != nil {
		return nil, err
	}
	var whole *ast.Term
	if token != nil {
		whole = token.whole()
	}
	return inputValue(in.req, in.res, whole, in.msg, reads), nil
}

// tokenTerm is the `token` member for reads, built once per request (and per cached token and generation:
// Identity.policyTerm); nil when the policy cannot read it.
func (in *requestInput) tokenTerm(reads policy.Reads) (*tokenTerm, error) {
	if in.token != nil || !reads.Path("token") {
		return in.token, nil
	}
	t, err := in.id.policyTerm(reads.Claims())
	in.token = t
	return t, err
}

// Lookup finds the value at path without building the document, for the members a request fills one by
// one; a whole member (input.request, input.mcp, input.request.headers) is not known.
func (in *requestInput) Lookup(path ast.Ref, reads policy.Reads) (*ast.Term, bool) {
	switch member(path, 0) {
	case "token":
		token, err := in.tokenTerm(reads)
		if err != nil || token == nil {
			return nil, false // Value reports the error
		}
		return token.lookup(path[1:])
	case "resource":
		return policy.Descend(in.res.inputTerm, path[1:])
	case "request":
		var v string
		switch member(path, 1) {
		case "":
			return nil, false
		case "method":
			return policy.Descend(commonTerm(in.req.Method), path[2:])
		case "host":
			v = in.req.Host
		case "path":
			v = in.req.Path
		case "headers":
			name := member(path, 2)
			if name == "" {
				return nil, false
			}
			h, ok := in.req.Headers[name]
			if !ok || name == "authorization" {
				return nil, true
			}
			return policy.Descend(ast.StringTerm(h), path[3:])
		default:
			return nil, true
		}
		return policy.Descend(ast.StringTerm(v), path[2:])
	case "mcp":
		if in.msg == nil {
			return nil, true
		}
		var t *ast.Term
		switch m := in.msg; member(path, 1) {
		case "":
			return nil, false
		case "method":
			t = commonTerm(m.Method)
		case "tool":
			t = optionalString(m.Tool)
		case "uri":
			t = optionalString(m.URI)
		case "prompt":
			t = optionalString(m.Prompt)
		case "protocol_version":
			t = optionalString(m.ProtocolVersion)
		case "source":
			t = sourceTerm(m)
		case "id":
			if len(m.ID) > 0 {
				if v := idValue(m.ID); v != nil {
					t = ast.NewTerm(v)
				}
			}
		}
		if t == nil {
			return nil, true
		}
		return policy.Descend(t, path[2:])
	case "":
		return nil, false // the whole document
	default:
		return nil, true // the document has no other member
	}
}

// member is the name at path[i], "" when path is shorter (or the element is not a string, which the
// decision cache's paths never hold).
func member(path ast.Ref, i int) string {
	if i >= len(path) {
		return ""
	}
	s, _ := path[i].Value.(ast.String)
	return string(s)
}

// inputKey holds the member names of the input document as terms, built once: OPA interns only a few
// strings, so ast.InternedTerm would allocate most of them on every request. Never modified.
var inputKey = struct {
	token, request, method, host, path, headers, resource, mcp, id, tool, uri, prompt, protocolVersion, source *ast.Term
}{
	ast.StringTerm("token"), ast.StringTerm("request"), ast.StringTerm("method"), ast.StringTerm("host"), ast.StringTerm("path"),
	ast.StringTerm("headers"), ast.StringTerm("resource"), ast.StringTerm("mcp"), ast.StringTerm("id"), ast.StringTerm("tool"),
	ast.StringTerm("uri"), ast.StringTerm("prompt"), ast.StringTerm("protocol_version"), ast.StringTerm("source"),
}

// commonTerms are the terms of the values most requests carry (HTTP methods, the MCP methods), built once so
// that keying the decision cache on them allocates nothing. Never modified; OPA only reads input terms.
var commonTerms = func() map[string]*ast.Term {
	m := map[string]*ast.Term{}
	for _, s := range []string{"GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS",
		"initialize", "server/discover", "ping", "tools/list", "tools/call", "resources/list", "resources/read",
		"resources/templates/list", "resources/subscribe", "resources/unsubscribe", "prompts/list", "prompts/get",
		"completion/complete", "logging/setLevel", "notifications/initialized", "notifications/cancelled",
		"notifications/progress", "notifications/roots/list_changed", ""} {
		m[s] = ast.StringTerm(s)
	}
	return m
}()

// commonTerm is the string term of s: a prebuilt one for a common value, else a new one.
func commonTerm(s string) *ast.Term {
	if t, ok := commonTerms[s]; ok {
		return t
	}
	return ast.StringTerm(s)
}

// optionalString is the term of a member that is absent when empty.
func optionalString(s string) *ast.Term {
	if s == "" {
		return nil
	}
	return ast.StringTerm(s)
}

// The values of input.mcp.source, built once.
var sourceBody, sourceHeaders = ast.StringTerm("body"), ast.StringTerm("headers")

// sourceTerm is input.mcp.source: where the message was read.
func sourceTerm(m *Message) *ast.Term {
	if m.FromHeaders {
		return sourceHeaders
	}
	return sourceBody
}

// inputValue is the policy input document (README "Policy contract"; keep it stable) as an ast.Value, with
// token its `token` member (tokenTerm.whole). Parts the policy cannot read (reads) are left out: the request
// headers, the JSON-RPC id, the token (then nil), ...; with the zero Reads the document is whole.
func inputValue(req *Request, res *resource, token *ast.Term, msg *Message, reads policy.Reads) ast.Value {
	in := ast.NewObjectWithCapacity(4)
	if token != nil {
		in.Insert(inputKey.token, token)
	}
	if reads.Path("request") {
		r := ast.NewObjectWithCapacity(4)
		r.Insert(inputKey.method, commonTerm(req.Method))
		r.Insert(inputKey.host, ast.StringTerm(req.Host))
		r.Insert(inputKey.path, ast.StringTerm(req.Path))
		if reads.Path("request", "headers") {
			headers := ast.NewObjectWithCapacity(len(req.Headers))
			for k, v := range req.Headers {
				if k != "authorization" {
					headers.Insert(ast.StringTerm(k), ast.StringTerm(v))
				}
			}
			r.Insert(inputKey.headers, ast.NewTerm(headers))
		}
		in.Insert(inputKey.request, ast.NewTerm(r))
	}
	if reads.Path("resource") {
		in.Insert(inputKey.resource, res.inputTerm)
	}
	if msg != nil && reads.Path("mcp") {
		m := ast.NewObjectWithCapacity(4)
		m.Insert(inputKey.method, commonTerm(msg.Method))
		if len(msg.ID) > 0 && reads.Path("mcp", "id") {
			if id := idValue(msg.ID); id != nil {
				m.Insert(inputKey.id, ast.NewTerm(id))
			}
		}
		for _, f := range [...]struct {
			key   *ast.Term
			value string
		}{{inputKey.tool, msg.Tool}, {inputKey.uri, msg.URI}, {inputKey.prompt, msg.Prompt}, {inputKey.protocolVersion, msg.ProtocolVersion}} {
			if t := optionalString(f.value); t != nil {
				m.Insert(f.key, t)
			}
		}
		m.Insert(inputKey.source, sourceTerm(msg))
		in.Insert(inputKey.mcp, ast.NewTerm(m))
	}
	return in
}

// idValue is a JSON-RPC id (a JSON string or number, as readMessage keeps it) as an OPA value; nil when it
// is neither.
func idValue(raw json.RawMessage) ast.Value {
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil
		}
		return ast.String(s)
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return nil
	}
	return ast.Number(n)
}

// resourceTerm is the `resource` member of the policy input, the same for every request to r.
func resourceTerm(r *resource) *ast.Term {
	return ast.ObjectTerm(
		ast.Item(ast.InternedTerm("url"), ast.StringTerm(r.cfg.URL)),
		ast.Item(ast.InternedTerm("name"), ast.StringTerm(r.cfg.Name)),
	)
}
