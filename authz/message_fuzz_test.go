package authz

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzReadMessage checks parseMessage, the single-pass reader, against parseMessageReference, the decoding through
// encoding/json maps it replaced: same message, same error, on any body. Two intended differences: a
// "method" that is present but not a string (null included) is refused, where the maps read null as ""; and
// a body that is JSON null is "not a JSON object" (the maps decode it as an empty map).
// `go test ./authz -run X -fuzz FuzzReadMessage` explores further; the seeds run in every `go test`.
func FuzzReadMessage(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"a":[1,{"b":"}"}]}}}`,
		`{"jsonrpc":"2.0","id":"x","method":"tools/list"}`,
		` { "jsonrpc" : "2.0" , "id" : -1.5e3 , "method" : "resources/read" , "params" : { "uri" : "file:///a" } } `,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"NAME":"echo","name":"admin"}}`,
		`{"jsonrpc":"2.0","id":1,"METHOD":"tools/call","method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"a","name":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"met\u0068od":"tools/call","params":{"n\u0061me":"admin\u005freset"}}`,
		`{"jsonrpc":"2\u002e0","id":true,"method":"ping","params":[1,2]}`,
		`{"jsonrpc":"2.0","id":null,"method":"ping","params":null}`,
		`{"jsonrpc":"2.0","id":{"a":1},"method":"tools/call","params":{"name":null}}`,
		`{"jsonrpc":"2.0","method":"tools/call","params":{"name":"caf\xc3\xa9","uri":"\xff"}}`,
		`{"jsonrpc":"2.0","method":"resources/read","params":{"uri":"\xff\xfe"}}`,
		`{"jsonrpc":"2.0","m\xffethod":"x","method":"y"}`,
		`{"jsonrpc":"2.0","id":1,"method":"a\"b\\c","params":{"name":"\"}"}}`,
		`{"jsonrpc":"2.0","id":1,"method":7}`,
		`{"jsonrpc":"1.0","id":1,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping"} x`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`,
		`{"jsonrpc":"2.0","method":"ping","id":1}`,
		`{"method":"tools/call","params":{"name":"x","n":null},"jsonrpc":"2.0","id":42}`,
		`{"id":7,"jsonrpc":"2.0","method":"ping","params":{"n":true}}`,
		`{"jsonrpc":"2.0","method":"tools/call","params":{"b":false,"name":"x"},"id":-0.5}`,
		`"hello"`, `{}`, `{"a":1}`, `{"a":[]}`, `{"jsonrpc":"2.0"}`, `{`, ``, `null`, `12`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		body = bytes.TrimLeft(body, " \t\r\n")
		if len(body) > 0 && body[0] == '[' {
			return // a batch: refused by readMessage before any parsing
		}
		got, gotErr := parseMessage(body)
		want, wantErr := parseMessageReference(body)
		if wantErr == nil && want != nil && got != nil && gotErr != nil && gotErr.Description == "JSON-RPC method is not a string" {
			var top map[string]json.RawMessage
			if json.Unmarshal(bytes.TrimSpace(body), &top) == nil && string(top["method"]) == "null" {
				return // intended: a null method is refused
			}
		}
		if string(bytes.TrimSpace(body)) == "null" && gotErr != nil && gotErr.Description == "request body is not a JSON object" && wantErr != nil {
			return // intended: null is not an object
		}
		if (got == nil) != (want == nil) || (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("body %q: got %+v, %v; reference %+v, %v", body, got, gotErr, want, wantErr)
		}
		if gotErr != nil && (gotErr.Status != wantErr.Status || gotErr.Description != wantErr.Description) {
			t.Fatalf("body %q: error %v; reference %v", body, gotErr, wantErr)
		}
		if got != nil && (got.Method != want.Method || !bytes.Equal(got.ID, want.ID) || got.Tool != want.Tool || got.URI != want.URI) {
			t.Fatalf("body %q: got %+v (id %s); reference %+v (id %s)", body, got, got.ID, want, want.ID)
		}
	})
}

// parseMessageReference is the map-based parseMessage of before (encoding/json into
// map[string]json.RawMessage): the oracle of FuzzReadMessage.
func parseMessageReference(body []byte) (*Message, *Error) {
	// Members are read by their exact names (encoding/json matches struct fields case-insensitively, which
	// would let "NAME" hide "name" from us but not from the MCP server).
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, errInvalidRequest("request body is not a JSON object")
	}
	var version string
	if json.Unmarshal(top["jsonrpc"], &version) != nil || version != "2.0" {
		return nil, errInvalidRequest("request body is not a JSON-RPC 2.0 message")
	}
	m := &Message{}
	if id := top["id"]; len(id) > 0 && (id[0] == '"' || id[0] == '-' || id[0] >= '0' && id[0] <= '9') {
		m.ID = id
	}
	if raw, ok := top["method"]; ok {
		if json.Unmarshal(raw, &m.Method) != nil {
			return m, errInvalidRequest("JSON-RPC method is not a string")
		}
	}
	var params map[string]json.RawMessage
	if raw, ok := top["params"]; ok && json.Unmarshal(raw, &params) != nil {
		params = nil
	}
	switch m.Method {
	case "tools/call":
		if json.Unmarshal(params["name"], &m.Tool) != nil || m.Tool == "" {
			return m, errInvalidRequest("tools/call without a params.name string")
		}
	case "resources/read":
		if json.Unmarshal(params["uri"], &m.URI) != nil || m.URI == "" {
			return m, errInvalidRequest("resources/read without a params.uri string")
		}
	}
	return m, nil
}
