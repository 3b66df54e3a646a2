package authz

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

// FuzzReadMessage checks parseMessage, the single-pass reader, against parseMessageReference, the decoding
// through encoding/json maps it replaced, with the members of the levels it reads listed by json.Decoder and
// matched to the names it reads by encoding/json itself: same message, same error, on any body. Two intended
// differences: a "method" that is present but not a string (null included) is refused, where the maps read
// null as ""; and a body that is JSON null is "not a JSON object" (the maps decode it as an empty map).
// `go test ./authz -run X -fuzz FuzzReadMessage` explores further; the seeds run in every `go test`.
func FuzzReadMessage(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"a":[1,{"b":"}"}]}}}`,
		`{"jsonrpc":"2.0","id":"x","method":"tools/list"}`,
		` { "jsonrpc" : "2.0" , "id" : -1.5e3 , "method" : "resources/read" , "params" : { "uri" : "file:///a" } } `,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"NAME":"echo","name":"admin"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_files","Name":"admin_reset"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"admin_reset","arguments":{"Name":1,"name":2,"name":3}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"URI":"a","uri":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","param\u017f":{"name":"a"},"params":{"name":"b"}}`,
		`{"j\u017fonrpc":"2.0","id":1,"method":"ping"}`,
		`{"jsonrpc":"2.0","ID":1,"Id":2,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","extra":1,"extra":2,"Extra":3,"_meta":{},"_META":{}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","\u212aind":1,"kind":2,"n\u0041me":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"METHOD":"tools/call","method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"a","name":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"met\u0068od":"tools/call","params":{"n\u0061me":"admin\u005freset"}}`,
		`{"jsonrpc":"2\u002e0","id":true,"method":"ping","params":[1,2]}`,
		`{"jsonrpc":"2.0","id":null,"method":"ping","params":null}`,
		`{"jsonrpc":"2.0","id":{"a":1},"method":"tools/call","params":{"name":null}}`,
		`{"jsonrpc":"2.0","method":"tools/call","params":{"name":"caf\xc3\xa9","uri":"\xff"}}`,
		`{"jsonrpc":"2.0","method":"resources/read","params":{"uri":"\xff\xfe"}}`,
		`{"jsonrpc":"2.0","m\xffethod":"x","method":"y"}`,
		"{\"jsonrpc\":\"2.0\",\"m\xffethod\":\"x\",\"method\":\"y\",\"params\":{\"n\xc3me\":1,\"name\":\"\xff\"}}",
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
// map[string]json.RawMessage), with the refusals of ambiguous members found by membersReference: the oracle
// of FuzzReadMessage.
func parseMessageReference(body []byte) (*Message, *Error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, errInvalidRequest("request body is not a JSON object")
	}
	if e := membersReference(body, "", reflect.TypeFor[topMembers]()); e != nil {
		return nil, e
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
	if params != nil {
		if e := membersReference(top["params"], " in params", reflect.TypeFor[paramsMembers]()); e != nil {
			return m, e
		}
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

// topMembers and paramsMembers are the members parseMessage reads, as an MCP server written with Go structs
// declares them.
type (
	topMembers struct {
		JSONRPC json.RawMessage `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  json.RawMessage `json:"method"`
		Params  json.RawMessage `json:"params"`
	}
	paramsMembers struct {
		Name json.RawMessage `json:"name"`
		URI  json.RawMessage `json:"uri"`
	}
)

// membersReference is the refusal parseMessage owes for the member names of the JSON object obj, whose
// members it reads as the struct type fields declares them (where names the level in errors), or nil: the
// names are listed in order by json.Decoder, and encoding/json itself says which field, if any, each one
// fills. A name that fills a field it is not the tag of is ambiguous; one that fills the field of its tag
// a second time is a duplicate.
func membersReference(obj []byte, where string, fields reflect.Type) *Error {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil {
		return nil
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		name, _ := tok.(string)
		var value json.RawMessage
		if dec.Decode(&value) != nil {
			return nil
		}
		key, _ := json.Marshal(name)
		v := reflect.New(fields)
		if json.Unmarshal([]byte("{"+string(key)+":0}"), v.Interface()) != nil {
			continue
		}
		for i := range fields.NumField() {
			if v.Elem().Field(i).Len() == 0 {
				continue
			}
			switch tag := fields.Field(i).Tag.Get("json"); {
			case name != tag:
				return errInvalidRequest(fmt.Sprintf("ambiguous JSON member %q%s: case-insensitive decoders read it as %q", name, where, tag))
			case seen[name]:
				return errInvalidRequest(fmt.Sprintf("duplicate JSON member %q%s", name, where))
			}
			seen[name] = true
		}
	}
	return nil
}
