package authz

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/policy"
	"github.com/open-policy-agent/opa/v1/ast"
)

// TestInputValue checks that the input document built as an ast.Value is the documented one (inputDocument), for identities and messages of every shape.
func TestInputValue(t *testing.T) {
	claims := func() map[string]any {
		var c map[string]any
		dec := json.NewDecoder(strings.NewReader(`{"sub":"alice","iss":"https://idp","aud":["a","b"],"exp":1900000000,"scope":"x y",
			"groups":["g1"],"nested":{"n":1.5,"ok":true,"none":null},"email":"a@example.com"}`))
		dec.UseNumber()
		if err := dec.Decode(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	full := &Identity{Subject: "alice", Issuer: "https://idp", ClientID: "mcp-client", Email: "a@example.com", Scopes: []string{"x", "y"}, Claims: claims()}
	bare := &Identity{Claims: map[string]any{}}
	req := &Request{Method: "POST", Host: "mcp.example.com", Path: "/mcp?x=1", Headers: map[string]string{
		"authorization": "Bearer t", "content-type": "application/json", ":path": "/mcp?x=1", "x-empty": "",
	}}
	res := mustResource(t, config.Resource{URL: "https://mcp.example.com/mcp", Name: "tools"})
	tests := []struct {
		name string
		req  *Request
		res  *resource
		id   *Identity
		msg  *Message
	}{
		{"tools/call", req, res, full, &Message{Method: "tools/call", ID: json.RawMessage(`"c-1"`), Tool: "echo"}},
		{"numeric id, resources/read", req, res, full, &Message{Method: "resources/read", ID: json.RawMessage(`7`), URI: "file:///x"}},
		{"notification", req, res, full, &Message{Method: "notifications/initialized"}},
		{"no body", req, res, full, nil},
		{"bare identity, no headers, unnamed resource", &Request{Method: "GET", Headers: map[string]string{}}, mustResource(t, config.Resource{URL: "https://x"}), bare, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := ast.InterfaceToValue(inputDocument(tc.req, tc.res, tc.id, tc.msg))
			if err != nil {
				t.Fatal(err)
			}
			got := wholeInput(t, tc.req, tc.res, tc.id, tc.msg)
			if got.Compare(want) != 0 {
				t.Errorf("inputValue =\n%v\nwant\n%v", got, want)
			}
			// As for a cached token: the token member built once, then shared by the requests.
			cached := cachedCopy(tc.id)
			for range 2 {
				got, err := (&requestInput{req: tc.req, res: tc.res, id: cached, msg: tc.msg}).Value(policy.Reads{})
				if err != nil {
					t.Fatal(err)
				}
				if got.Compare(want) != 0 {
					t.Errorf("inputValue with a prebuilt token =\n%v\nwant\n%v", got, want)
				}
			}
		})
	}
}

// wholeInput is the whole input document of a request, as a policy reading everything gets it.
func wholeInput(t *testing.T, req *Request, res *resource, id *Identity, msg *Message) ast.Value {
	t.Helper()
	v, err := (&requestInput{req: req, res: res, id: id, msg: msg}).Value(policy.Reads{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// cachedCopy is id as the token cache hands it out: a copy sharing the place its policy token is kept.
func cachedCopy(id *Identity) *Identity {
	c := *id
	c.policyToken = new(atomic.Pointer[tokenTerm])
	return &c
}

func mustResource(t *testing.T, c config.Resource) *resource {
	t.Helper()
	r, err := newResource(c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// inputDocument is the policy input document of the README ("Policy contract"), built the plain way as Go
// values: the oracle inputValue must match.
func inputDocument(req *Request, res *resource, id *Identity, msg *Message) map[string]any {
	headers := make(map[string]any, len(req.Headers))
	for k, v := range req.Headers {
		if k != "authorization" {
			headers[k] = v
		}
	}
	scopes := make([]any, len(id.Scopes))
	for i, s := range id.Scopes {
		scopes[i] = s
	}
	token := map[string]any{"scopes": scopes, "claims": id.Claims}
	for k, v := range map[string]string{"subject": id.Subject, "issuer": id.Issuer, "client_id": id.ClientID} {
		if v != "" {
			token[k] = v
		}
	}
	in := map[string]any{
		"token":    token,
		"request":  map[string]any{"method": req.Method, "host": req.Host, "path": req.Path, "headers": headers},
		"resource": map[string]any{"url": res.cfg.URL, "name": res.cfg.Name},
	}
	if msg != nil {
		m := map[string]any{"method": msg.Method}
		if len(msg.ID) > 0 {
			var id any
			dec := json.NewDecoder(bytes.NewReader(msg.ID))
			dec.UseNumber()
			if dec.Decode(&id) == nil {
				m["id"] = id
			}
		}
		if msg.Tool != "" {
			m["tool"] = msg.Tool
		}
		if msg.URI != "" {
			m["uri"] = msg.URI
		}
		if msg.Prompt != "" {
			m["prompt"] = msg.Prompt
		}
		if msg.ProtocolVersion != "" {
			m["protocol_version"] = msg.ProtocolVersion
		}
		m["source"] = "body"
		if msg.FromHeaders {
			m["source"] = "headers"
		}
		in["mcp"] = m
	}
	return in
}

// capturing is a requestInput that keeps the document it built.
type capturing struct {
	requestInput
	built ast.Value
}

func (c *capturing) Value(reads policy.Reads) (ast.Value, error) {
	v, err := c.requestInput.Value(reads)
	c.built = v
	return v, err
}

// TestLookup checks that requestInput.Lookup, on which the decision cache keys, finds what the whole
// document holds at every path it knows, for identities fresh and cached, with and without a message.
func TestLookup(t *testing.T) {
	res := mustResource(t, config.Resource{URL: "https://mcp.example.com/mcp", Name: "tools"})
	fresh := &Identity{Subject: "alice", Issuer: "https://idp", ClientID: "mcp-client", Scopes: []string{"a", "b"},
		Claims: map[string]any{"sub": "alice", "groups": []any{"g1"}, "nested": map[string]any{"k": "v"}, "n": json.Number("1.50")}}
	cached := cachedCopy(fresh)
	req := &Request{Method: "POST", Host: "mcp.example.com", Path: "/mcp?x=1", Headers: map[string]string{
		"authorization": "Bearer t", "x-tenant": "acme", "x-empty": ""}}
	paths := [][]string{
		{"token"}, {"token", "claims"}, {"token", "claims", "groups"}, {"token", "claims", "nested", "k"}, {"token", "claims", "n"},
		{"token", "claims", "missing"}, {"token", "scopes"}, {"token", "scopes", "x"}, {"token", "subject"}, {"token", "client_id"},
		{"token", "issuer"}, {"token", "other"}, {"token", "subject", "x"},
		{"request"}, {"request", "method"}, {"request", "host"}, {"request", "path"}, {"request", "path", "x"}, {"request", "other"},
		{"request", "headers"}, {"request", "headers", "x-tenant"}, {"request", "headers", "x-empty"}, {"request", "headers", "authorization"},
		{"request", "headers", "missing"}, {"request", "headers", "x-tenant", "deeper"},
		{"resource"}, {"resource", "url"}, {"resource", "name"}, {"resource", "other"}, {"resource", "url", "x"},
		{"mcp"}, {"mcp", "method"}, {"mcp", "tool"}, {"mcp", "uri"}, {"mcp", "id"}, {"mcp", "params"}, {"mcp", "tool", "x"},
		{"mcp", "prompt"}, {"mcp", "protocol_version"}, {"mcp", "source"}, {"mcp", "source", "x"},
		{"other"}, {},
	}
	msgs := []*Message{nil, {Method: "tools/call", ID: json.RawMessage(`7`), Tool: "echo"}, {Method: "resources/read", ID: json.RawMessage(`"r-1"`), URI: "file:///a"},
		{Method: "notifications/initialized"}, {Method: "x", ID: json.RawMessage(`1e3`)},
		{Method: "prompts/get", ID: json.RawMessage(`2`), Prompt: "p", ProtocolVersion: "2026-07-28"},
		{Method: "tools/call", Tool: "admin_reset", ProtocolVersion: "2026-07-28", FromHeaders: true}}
	known := 0
	for _, id := range []*Identity{fresh, cached, cached} {
		for _, msg := range msgs {
			whole := wholeInput(t, req, res, id, msg)
			in := &requestInput{req: req, res: res, id: id, msg: msg}
			for _, path := range paths {
				ref := make(ast.Ref, len(path))
				for i, m := range path {
					ref[i] = ast.StringTerm(m)
				}
				got, ok := in.Lookup(ref, policy.Reads{})
				if !ok {
					continue
				}
				known++
				want, _ := policy.Descend(ast.NewTerm(whole), ref)
				if (got == nil) != (want == nil) || got != nil && (got.Value.Compare(want.Value) != 0 || got.String() != want.String()) {
					t.Errorf("cached token %v, message %+v: Lookup(%v) = %v, the document holds %v", id.policyToken != nil, msg, path, got, want)
				}
			}
		}
	}
	if known < len(paths) {
		t.Errorf("only %d lookups known", known)
	}
}

// TestInputPruned checks that leaving out the parts of the input a policy cannot read (policy.Reads) never
// changes a decision: for policies reading the headers (their presence too), the JSON-RPC id, the resource,
// the claims, or the whole input, every request gets the decision it gets with the whole document. For the
// shipped policy it also checks that the headers and the id are indeed left out.
func TestInputPruned(t *testing.T) {
	ctx := t.Context()
	write := func(rego string) string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte("package mcp.authz\n\nimport rego.v1\n\ndefault decision := {\"allow\": false, \"reason\": \"default\"}\n\n"+rego), 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	// left says which parts the built input must not hold.
	type left struct{ headers, id, request bool }
	policies := []struct {
		name string
		dir  string
		left left
	}{
		{"shipped", "../deploy/policies", left{headers: true, id: true}},
		{"header value", write(`decision := {"allow": true} if input.request.headers["x-tenant"] == "acme"`), left{id: true}},
		{"header absence", write(`decision := {"allow": true, "reason": input.mcp.tool} if not input.request.headers["x-deny"]`), left{id: true}},
		{"jsonrpc id", write(`decision := {"allow": true} if input.mcp.id == 7
decision := {"allow": true} if input.mcp.id == "c-1"`), left{headers: true, request: true}},
		{"resource and claims", write(`decision := {"allow": true, "reason": input.request.method} if {
	input.resource.name == "tools"
	input.token.claims.department == "engineering"
}`), left{headers: true, id: true}},
		{"whole request member", write(`decision := {"allow": true} if count(input.request) == 4`), left{id: true}},
		{"whole input", write(`decision := {"allow": true, "reason": sprintf("%d", [count(input)])} if input.request.path != "/x"`), left{}},
		{"dynamic key under headers", write(`decision := {"allow": true} if {
	some k in ["x-tenant", "x-deny"]
	input.request.headers[k] == "acme"
}`), left{id: true}},
		{"dynamic key under input", write(`decision := {"allow": true} if {
	some k in ["request", "mcp"]
	input[k].method == "POST"
}`), left{}},
	}
	res := mustResource(t, config.Resource{URL: "https://mcp.example.com/mcp", Name: "tools"})
	id := &Identity{Subject: "alice", Issuer: "https://idp", ClientID: "mcp-client", Scopes: []string{"tools:read", "tools:call"},
		Claims: map[string]any{"sub": "alice", "department": "engineering", "groups": []any{"developers"}}}
	var reqs []*Request
	for _, h := range []map[string]string{{}, {"x-tenant": "acme"}, {"x-tenant": "other"}, {"x-deny": "1", "x-tenant": "acme"}, {"x-deny": ""}} {
		h["authorization"] = "Bearer t"
		reqs = append(reqs, &Request{Method: "POST", Host: "mcp.example.com", Path: "/mcp", Headers: h})
	}
	msgs := []*Message{nil, {Method: "tools/call", ID: json.RawMessage(`7`), Tool: "echo"}, {Method: "tools/call", ID: json.RawMessage(`"c-1"`), Tool: "admin_reset"},
		{Method: "tools/list", ID: json.RawMessage(`8`)}, {Method: "notifications/initialized"}}
	cachedID := cachedCopy(id) // as the token cache hands it out: the token member built once
	for _, pc := range policies {
		t.Run(pc.name, func(t *testing.T) {
			p, err := policy.Load(ctx, []string{pc.dir}, policy.DefaultQuery, policy.WithDecisionCache(-1))
			if err != nil {
				t.Fatal(err)
			}
			cache, err := policy.Load(ctx, []string{pc.dir}, policy.DefaultQuery)
			if err != nil {
				t.Fatal(err)
			}
			for _, req := range reqs {
				for _, msg := range msgs {
					whole := wholeInput(t, req, res, id, msg)
					want, wantErr := p.Evaluate(ctx, policy.Document(whole))
					in := &capturing{requestInput: requestInput{req: req, res: res, id: id, msg: msg}}
					got, gotErr := p.Evaluate(ctx, in)
					if (gotErr != nil) != (wantErr != nil) || !reflect.DeepEqual(got, want) {
						t.Errorf("headers %v, message %+v: pruned input decides %+v, %v; whole input %+v, %v", req.Headers, msg, got, gotErr, want, wantErr)
					}
					// Through the decision cache, keyed on Lookup: twice, the second usually a hit.
					for _, ident := range []*Identity{id, cachedID, cachedID} {
						got, gotErr := cache.Evaluate(ctx, &requestInput{req: req, res: res, id: ident, msg: msg})
						if (gotErr != nil) != (wantErr != nil) || !reflect.DeepEqual(got, want) {
							t.Errorf("headers %v, message %+v: through the cache %+v, %v; whole input %+v, %v", req.Headers, msg, got, gotErr, want, wantErr)
						}
					}
					built := in.built
					obj := built.(ast.Object)
					has := func(path ...string) bool {
						_, err := obj.Find(ast.MustParseRef("x." + strings.Join(path, "."))[1:])
						return err == nil
					}
					for _, part := range []struct {
						path []string
						left bool
					}{{[]string{"request", "headers"}, pc.left.headers}, {[]string{"mcp", "id"}, pc.left.id || msg == nil || msg.ID == nil}, {[]string{"request"}, pc.left.request}} {
						if got := has(part.path...); got == part.left {
							t.Errorf("%s in the built input: %v, want %v", strings.Join(part.path, "."), got, !got)
						}
					}
				}
			}
		})
	}
}

// TestInputClaims checks that a policy declaring its token claims (token_claims) sees those claims and the
// ones it names, no other, whichever way the request reaches it (a token verified afresh, a cached token,
// through the decision cache), and decides as on the documented input reduced the same way (policy.Map);
// tokens that differ only in other claims share one cached decision.
func TestInputClaims(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(`package mcp.authz

import rego.v1

token_claims contains c if some c in ["team", "absent"]

default level := ""

level := input.token.claims.level

decision := {"allow": level != "guest", "reason": json.marshal(input.token.claims)}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	p, err := policy.Load(ctx, []string{dir}, policy.DefaultQuery)
	if err != nil {
		t.Fatal(err)
	}
	res := mustResource(t, config.Resource{URL: "https://mcp.example.com/mcp", Name: "tools"})
	req := &Request{Method: "POST", Host: "mcp.example.com", Path: "/mcp", Headers: map[string]string{}}
	msg := &Message{Method: "tools/call", ID: json.RawMessage(`1`), Tool: "echo"}
	tests := []struct {
		claims map[string]any
		allow  bool
		reason string
	}{
		{map[string]any{"sub": "alice", "jti": "1", "team": "a", "level": "staff"}, true, `{"level":"staff","team":"a"}`},
		{map[string]any{"sub": "bob", "jti": "2", "team": "a", "level": "staff", "groups": []any{"g"}}, true, `{"level":"staff","team":"a"}`},
		{map[string]any{"sub": "carol", "jti": "3", "team": "b", "level": "guest"}, false, `{"level":"guest","team":"b"}`},
		{map[string]any{"sub": "dave", "jti": "4"}, true, `{}`},
	}
	for _, tc := range tests {
		id := &Identity{Subject: tc.claims["sub"].(string), Claims: tc.claims}
		want, err := p.Evaluate(ctx, policy.Map(inputDocument(req, res, id, msg)))
		if err != nil {
			t.Fatal(err)
		}
		if want.Allow != tc.allow || want.Reason != tc.reason {
			t.Errorf("%v: documented input decides allow %v, sees claims %s; want %v, %s", tc.claims, want.Allow, want.Reason, tc.allow, tc.reason)
		}
		cached := cachedCopy(id)
		for _, ident := range []*Identity{id, cached, cached} {
			got, err := p.Evaluate(ctx, &requestInput{req: req, res: res, id: ident, msg: msg})
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("%v (cached %v): decides %+v, %v; want %+v", tc.claims, ident.policyToken != nil, got, err, want)
			}
		}
	}
	if st := p.CacheStats(); st.Decisions != 3 {
		t.Errorf("decision cache holds %d decisions, want 3 (alice and bob share theirs)", st.Decisions)
	}
}
