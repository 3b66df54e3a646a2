package authz

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mcp-authz/mcp-authz/config"
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
	res := &resource{cfg: config.Resource{URL: "https://mcp.example.com/mcp", Name: "tools"}}
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
		{"bare identity, no headers, unnamed resource", &Request{Method: "GET", Headers: map[string]string{}}, &resource{cfg: config.Resource{URL: "https://x"}}, bare, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := ast.InterfaceToValue(inputDocument(tc.req, tc.res, tc.id, tc.msg))
			if err != nil {
				t.Fatal(err)
			}
			got, err := inputValue(tc.req, tc.res, tc.id, tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if got.Compare(want) != 0 {
				t.Errorf("inputValue =\n%v\nwant\n%v", got, want)
			}
			// As for a cached token: the token member built once, then shared by the requests.
			cached := *tc.id
			if cached.policyToken, err = tokenValue(tc.id); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				got, err := inputValue(tc.req, tc.res, &cached, tc.msg)
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

// inputDocument is the policy input document of the README ("Policy input"), built the plain way as Go
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
		in["mcp"] = m
	}
	return in
}
