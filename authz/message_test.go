package authz

import "testing"

func TestReadMessage(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		ct        string
		truncated bool
		want      Message
		wantNil   bool
		status    int // expected error status; 0 = no error
	}{
		{name: "no body", wantNil: true},
		{name: "tools/call", body: `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo"}}`, want: Message{Method: "tools/call", ID: []byte("3"), Tool: "echo"}},
		{name: "string id", body: `{"jsonrpc":"2.0","id":"x","method":"tools/list"}`, want: Message{Method: "tools/list", ID: []byte(`"x"`)}},
		{name: "notification", body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`, want: Message{Method: "notifications/initialized"}},
		{name: "resources/read", body: `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}`, want: Message{Method: "resources/read", ID: []byte("1"), URI: "file:///a"}},
		{name: "content type with charset", ct: "application/json; charset=utf-8", body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`, want: Message{Method: "ping", ID: []byte("1")}},
		{name: "exact member names", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"NAME":"echo","name":"admin"}}`, want: Message{Method: "tools/call", ID: []byte("1"), Tool: "admin"}},
		{name: "case-variant method ignored", body: `{"jsonrpc":"2.0","id":1,"METHOD":"tools/call","method":"tools/list"}`, want: Message{Method: "tools/list", ID: []byte("1")}},
		{name: "object id ignored", body: `{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`, want: Message{Method: "ping"}},
		{name: "tools/call without name", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}`, status: 400},
		{name: "tool name not a string", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}`, status: 400},
		{name: "batch", body: ` [{"jsonrpc":"2.0","id":1,"method":"ping"}]`, status: 400},
		{name: "not JSON", body: `{"jsonrpc"`, status: 400},
		{name: "not an object", body: `"hello"`, status: 400},
		{name: "wrong version", body: `{"jsonrpc":"1.0","id":1,"method":"ping"}`, status: 400},
		{name: "wrong content type", ct: "text/plain", body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`, status: 400},
		{name: "truncated", body: `{"jsonrpc":"2.0","id":1,"me`, truncated: true, status: 400},
		{name: "too large", body: `{"jsonrpc":"2.0","id":1,"method":"ping","pad":"` + string(make([]byte, 200)) + `"}`, status: 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{}
			if tc.ct != "" {
				h["content-type"] = tc.ct
			}
			m, err := readMessage(&Request{Headers: h, Body: []byte(tc.body), BodyTruncated: tc.truncated}, 200)
			if tc.status != 0 {
				if err == nil || err.Status != tc.status {
					t.Fatalf("err = %v, want status %d", err, tc.status)
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
