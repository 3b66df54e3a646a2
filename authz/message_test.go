package authz

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestReadMessage(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		ct        string
		truncated bool
		want      Message
		wantNil   bool
		status    int    // expected error status; 0 = no error
		desc      string // expected start of the error description
	}{
		{name: "no body", wantNil: true},
		{name: "tools/call", body: `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo"}}`, want: Message{Method: "tools/call", ID: []byte("3"), Tool: "echo"}},
		{name: "string id", body: `{"jsonrpc":"2.0","id":"x","method":"tools/list"}`, want: Message{Method: "tools/list", ID: []byte(`"x"`)}},
		{name: "notification", body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`, want: Message{Method: "notifications/initialized"}},
		{name: "resources/read", body: `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}`, want: Message{Method: "resources/read", ID: []byte("1"), URI: "file:///a"}},
		{name: "content type with charset", ct: "application/json; charset=utf-8", body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`, want: Message{Method: "ping", ID: []byte("1")}},
		{name: "escaped exact names", body: `{"jsonrpc":"2.0","id":1,"met\u0068od":"tools/call","params":{"n\u0061me":"echo"}}`, want: Message{Method: "tools/call", ID: []byte("1"), Tool: "echo"}},
		{name: "unrelated members", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","extra":1,"Extra":2,"extra":3,"params":{"name":"echo","named":1,"nam":2,"Arguments":{},"arguments":{"Name":"x","name":"y","name":"z"},"arguments":[],"_meta":{"Name":1}}}`, want: Message{Method: "tools/call", ID: []byte("1"), Tool: "echo"}},
		{name: "_meta look-alike", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","_meta":{},"_META":{}}}`, status: 400, desc: `ambiguous JSON member "_META" in params`},
		{name: "protocol version twice", body: `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/protocolVersion":"2025-11-25"}}}`, status: 400, desc: "duplicate JSON member"},
		{name: "protocol version not a string", body: `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":20260728}}}`, status: 400, desc: "params._meta[\"io.modelcontextprotocol/protocolVersion\"] is not a string"},
		{name: "prompts/get", body: `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"summary"}}`, want: Message{Method: "prompts/get", ID: []byte("1"), Prompt: "summary"}},
		{name: "prompts/get without a name", body: `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{}}`, status: 400, desc: "prompts/get without a params.name string"},
		{name: "look-alike in params of another method", body: `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p","Name":"q"}}`, status: 400, desc: `ambiguous JSON member "Name" in params`},
		{name: "tool name and its case variant", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_files","Name":"admin_reset"}}`, status: 400, desc: `ambiguous JSON member "Name" in params: case-insensitive decoders read it as "name"`},
		{name: "case variant before the tool name", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"NAME":"echo","name":"admin"}}`, status: 400, desc: `ambiguous JSON member "NAME" in params`},
		{name: "case variant alone", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"admin_reset"}}`, status: 400, desc: `ambiguous JSON member "Name" in params`},
		{name: "escaped case variant", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","\u004eame":"admin_reset"}}`, status: 400, desc: `ambiguous JSON member "Name" in params`},
		{name: "uri case variant", body: `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a","URI":"file:///etc/shadow"}}`, status: 400, desc: `ambiguous JSON member "URI" in params`},
		{name: "method case variant", body: `{"jsonrpc":"2.0","id":1,"METHOD":"tools/call","method":"tools/list"}`, status: 400, desc: `ambiguous JSON member "METHOD": case-insensitive decoders read it as "method"`},
		{name: "params case variant", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"Params":{"name":"admin_reset"}}`, status: 400, desc: `ambiguous JSON member "Params"`},
		{name: "params with LONG S", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"paramſ":{"name":"admin_reset"}}`, status: 400, desc: `ambiguous JSON member "paramſ": case-insensitive decoders read it as "params"`},
		{name: "id case variant", body: `{"jsonrpc":"2.0","id":1,"ID":2,"method":"ping"}`, status: 400, desc: `ambiguous JSON member "ID"`},
		{name: "jsonrpc case variant", body: `{"Jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"ping"}`, status: 400, desc: `ambiguous JSON member "Jsonrpc"`},
		{name: "duplicate tool name", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_files","name":"admin_reset"}}`, status: 400, desc: `duplicate JSON member "name" in params`},
		{name: "duplicate uri", body: `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"a","uri":"b"}}`, status: 400, desc: `duplicate JSON member "uri" in params`},
		{name: "duplicate method", body: `{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"admin_reset"}}`, status: 400, desc: `duplicate JSON member "method"`},
		{name: "duplicate params", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"params":{"name":"admin_reset"}}`, status: 400, desc: `duplicate JSON member "params"`},
		{name: "duplicate id", body: `{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}`, status: 400, desc: `duplicate JSON member "id"`},
		{name: "duplicate jsonrpc", body: `{"jsonrpc":"2.0","jsonrpc":"1.0","id":1,"method":"ping"}`, status: 400, desc: `duplicate JSON member "jsonrpc"`},
		{name: "duplicate escaped", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","n\u0061me":"admin_reset"}}`, status: 400, desc: `duplicate JSON member "name" in params`},
		{name: "object id ignored", body: `{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`, want: Message{Method: "ping"}},
		{name: "tools/call without name", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}`, status: 400},
		{name: "tool name not a string", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}`, status: 400},
		{name: "batch", body: ` [{"jsonrpc":"2.0","id":1,"method":"ping"}]`, status: 400},
		{name: "not JSON", body: `{"jsonrpc"`, status: 400},
		{name: "not an object", body: `"hello"`, status: 400},
		{name: "wrong version", body: `{"jsonrpc":"1.0","id":1,"method":"ping"}`, status: 400},
		{name: "wrong content type", ct: "text/plain", body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`, status: 400},
		{name: "truncated", body: `{"jsonrpc":"2.0","id":1,"me`, truncated: true, status: 400},
		{name: "too large", body: `{"jsonrpc":"2.0","id":1,"method":"ping","pad":"` + strings.Repeat("x", 1100) + `"}`, status: 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{}
			if tc.ct != "" {
				h["content-type"] = tc.ct
			}
			m, err := readMessage(&Request{Headers: h, Body: []byte(tc.body), BodyTruncated: tc.truncated}, 1024, false)
			if tc.status != 0 {
				if err == nil || err.Status != tc.status || !strings.HasPrefix(err.Description, tc.desc) {
					t.Fatalf("err = %v, want status %d and a description starting %q", err, tc.status, tc.desc)
				}
				if err.Code != "invalid_request" {
					t.Errorf("code = %q, want invalid_request", err.Code)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if tc.wantNil {
				if m != nil {
					t.Fatalf("got %+v, want nil", m)
				}
				return
			}
			if m.Method != tc.want.Method || string(m.ID) != string(tc.want.ID) || m.Tool != tc.want.Tool || m.URI != tc.want.URI {
				t.Fatalf("got %+v (id %s), want %+v (id %s)", m, m.ID, tc.want, tc.want.ID)
			}
		})
	}
}

// TestCaseFoldedMembers shows the attack the ambiguity refusal stops, then that it is stopped. encoding/json
// matches a struct field's name case-insensitively (Unicode simple folding, bytes.EqualFold), so an MCP
// server decoding into Go structs reads {"name":"list_files","Name":"admin_reset"} as the tool admin_reset.
// For each member parseMessage reads and each spelling of it with one letter swapped for another rune of
// its fold orbit (its other case; for s also U+017F LONG S), encoding/json must decode the spelling into the
// field tagged with the member's name, and parseMessage must refuse a message carrying it at that level.
func TestCaseFoldedMembers(t *testing.T) {
	var server struct {
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	if err := json.Unmarshal([]byte(`{"params":{"name":"list_files","Name":"admin_reset"}}`), &server); err != nil || server.Params.Name != "admin_reset" {
		t.Fatalf("encoding/json read params.name %q (%v), want admin_reset: the attack premise no longer holds", server.Params.Name, err)
	}

	const base = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"%s}%s}`
	levels := []struct {
		names  []string
		values map[string]string
		where  string
		body   func(member string) string
	}{
		{[]string{"jsonrpc", "id", "method", "params"}, map[string]string{"jsonrpc": `"2.0"`, "id": `2`, "method": `"tools/list"`, "params": `{"name":"admin_reset"}`}, "",
			func(member string) string { return fmt.Sprintf(base, "", ","+member) }},
		{[]string{"name", "uri"}, map[string]string{"name": `"admin_reset"`, "uri": `"file:///etc/shadow"`}, " in params",
			func(member string) string { return fmt.Sprintf(base, ","+member, "") }},
	}
	nonASCII := 0
	for _, level := range levels {
		for _, target := range level.names {
			for _, spelling := range foldedSpellings(target) {
				for _, r := range spelling {
					if r >= utf8.RuneSelf {
						nonASCII++
						break
					}
				}
				key, _ := json.Marshal(spelling)
				// encoding/json reads the spelling as the member.
				field := reflect.StructOf([]reflect.StructField{{Name: "F", Type: reflect.TypeFor[json.RawMessage](), Tag: reflect.StructTag(`json:"` + target + `"`)}})
				v := reflect.New(field)
				if err := json.Unmarshal([]byte(`{`+string(key)+`:7}`), v.Interface()); err != nil || string(v.Elem().Field(0).Bytes()) != "7" {
					t.Errorf("encoding/json does not read %q as %q (%v): not a look-alike", spelling, target, err)
				}
				// parseMessage refuses it.
				body := level.body(string(key) + ":" + level.values[target])
				want := fmt.Sprintf("ambiguous JSON member %q%s: case-insensitive decoders read it as %q", spelling, level.where, target)
				if _, err := parseMessage([]byte(body)); err == nil || err.Status != 400 || err.Description != want {
					t.Errorf("%s: err = %v, want 400 %s", body, err, want)
				}
			}
		}
	}
	if nonASCII == 0 {
		t.Error("no spelling outside ASCII was tried")
	}

	// The same folding for names parseMessage does not read (yet): KELVIN SIGN for k, LONG S for s.
	for _, c := range []struct{ target, spelling string }{{"kind", "\u212aind"}, {"scope", "\u017fcope"}, {"_meta", "_META"}} {
		if e := keepMember(make([][]byte, 1), []byte(c.spelling), []byte("1"), "", c.target); e == nil {
			t.Errorf("keepMember(%q) accepts %q", c.target, c.spelling)
		}
	}
}

// foldedSpellings are the spellings of name with one letter replaced by each other rune of its simple fold
// orbit, and name in upper case.
func foldedSpellings(name string) []string {
	out := []string{strings.ToUpper(name)}
	for i, c := range name {
		for r := unicode.SimpleFold(c); r != c; r = unicode.SimpleFold(r) {
			out = append(out, name[:i]+string(r)+name[i+utf8.RuneLen(c):])
		}
	}
	return out
}
