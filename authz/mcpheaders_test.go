package authz

import (
	"encoding/base64"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// TestMCPHeaders reads requests with the MCP 2026-07-28 headers through readMessage: with a body they must
// agree with it (Server Validation, HeaderMismatch -32020); without one they are the message only for a
// resource that trusts them, and only at 2026-07-28 or later.
func TestMCPHeaders(t *testing.T) {
	const v = "2026-07-28"
	call := func(tool, version string) string {
		meta := ""
		if version != "" {
			meta = `,"_meta":{"io.modelcontextprotocol/protocolVersion":"` + version + `"}`
		}
		return `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}` + meta + `}}`
	}
	list := `{"jsonrpc":"2.0","id":6,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"` + v + `"}}}`
	b64 := func(s string) string {
		return base64Prefix + base64.StdEncoding.EncodeToString([]byte(s)) + base64Suffix
	}
	tests := []struct {
		name    string
		headers map[string]string
		body    string
		trust   bool
		want    *Message // nil: no message
		desc    string   // substring of a HeaderMismatch refusal
	}{
		{name: "2026-07-28 call, headers agree", headers: map[string]string{"mcp-protocol-version": v, "mcp-method": "tools/call", "mcp-name": "echo"}, body: call("echo", v),
			want: &Message{Method: "tools/call", ID: []byte("5"), Tool: "echo", ProtocolVersion: v}},
		{name: "name in base64", headers: map[string]string{"mcp-protocol-version": v, "mcp-method": "tools/call", "mcp-name": b64("héllo")}, body: call("héllo", v),
			want: &Message{Method: "tools/call", ID: []byte("5"), Tool: "héllo", ProtocolVersion: v}},
		{name: "2025-11-25 client sends none", headers: map[string]string{"mcp-protocol-version": "2025-11-25"}, body: call("echo", ""),
			want: &Message{Method: "tools/call", ID: []byte("5"), Tool: "echo"}},
		{name: "no headers, no _meta (2025-06-18)", body: call("echo", ""), want: &Message{Method: "tools/call", ID: []byte("5"), Tool: "echo"}},
		{name: "lying Mcp-Name", headers: map[string]string{"mcp-protocol-version": v, "mcp-method": "tools/call", "mcp-name": "list_files"}, body: call("admin_reset", v),
			desc: `Mcp-Name header "list_files" does not match the body's "admin_reset"`},
		{name: "lying Mcp-Method", headers: map[string]string{"mcp-protocol-version": v, "mcp-method": "tools/list", "mcp-name": "admin_reset"}, body: call("admin_reset", v),
			desc: `Mcp-Method header "tools/list" does not match`},
		{name: "lying header from an older client", headers: map[string]string{"mcp-method": "tools/list"}, body: call("admin_reset", ""),
			desc: "Mcp-Method header"},
		{name: "version header differs from _meta", headers: map[string]string{"mcp-protocol-version": "2025-11-25", "mcp-method": "tools/call", "mcp-name": "echo"}, body: call("echo", v),
			desc: `MCP-Protocol-Version header "2025-11-25" does not match the body's "2026-07-28"`},
		{name: "_meta version without the header", headers: map[string]string{"mcp-method": "tools/call", "mcp-name": "echo"}, body: call("echo", v),
			desc: "MCP-Protocol-Version header missing"},
		{name: "2026-07-28 without Mcp-Method", headers: map[string]string{"mcp-protocol-version": v}, body: list, desc: "Mcp-Method header missing"},
		{name: "2026-07-28 call without Mcp-Name", headers: map[string]string{"mcp-protocol-version": v, "mcp-method": "tools/call"}, body: call("echo", v), desc: "Mcp-Name header missing"},
		{name: "Mcp-Name on a method without a name", headers: map[string]string{"mcp-protocol-version": v, "mcp-method": "tools/list", "mcp-name": "x"}, body: list, desc: "Mcp-Name header"},
		{name: "bad base64", headers: map[string]string{"mcp-protocol-version": v, "mcp-method": "tools/call", "mcp-name": "=?base64?!!!?="}, body: call("echo", v), desc: "not valid =?base64?"},
		{name: "base64 of invalid UTF-8", headers: map[string]string{"mcp-protocol-version": v, "mcp-method": "tools/call", "mcp-name": base64Prefix + base64.StdEncoding.EncodeToString([]byte{0xff}) + base64Suffix}, body: call("echo", v), desc: "not valid =?base64?"},
		{name: "control byte", headers: map[string]string{"mcp-protocol-version": v, "mcp-method": "tools/call\x00", "mcp-name": "echo"}, body: call("echo", v), desc: "not visible ASCII"},
		{name: "repeated header joined by the proxy", headers: map[string]string{"mcp-protocol-version": v, "mcp-method": "tools/call,tools/list", "mcp-name": "echo"}, body: call("echo", v), desc: "Mcp-Method header"},

		{name: "no body, not trusted", headers: map[string]string{"mcp-protocol-version": v, "mcp-method": "tools/call", "mcp-name": "admin_reset"}},
		{name: "no body, trusted", headers: map[string]string{"mcp-protocol-version": v, "mcp-method": "tools/call", "mcp-name": "admin_reset"}, trust: true,
			want: &Message{Method: "tools/call", Tool: "admin_reset", ProtocolVersion: v, FromHeaders: true}},
		{name: "no body, trusted, resource", headers: map[string]string{"mcp-protocol-version": v, "mcp-method": "resources/read", "mcp-name": b64("file:///é")}, trust: true,
			want: &Message{Method: "resources/read", URI: "file:///é", ProtocolVersion: v, FromHeaders: true}},
		{name: "no body, trusted, method only", headers: map[string]string{"mcp-protocol-version": v, "mcp-method": "tools/list"}, trust: true,
			want: &Message{Method: "tools/list", ProtocolVersion: v, FromHeaders: true}},
		{name: "no body, trusted, older version ignored", headers: map[string]string{"mcp-protocol-version": "2025-11-25", "mcp-method": "tools/call", "mcp-name": "x"}, trust: true},
		{name: "no body, trusted, unversioned ignored", headers: map[string]string{"mcp-method": "tools/call", "mcp-name": "x"}, trust: true},
		{name: "no body, trusted, call without a name", headers: map[string]string{"mcp-protocol-version": v, "mcp-method": "tools/call"}, trust: true, desc: "Mcp-Name header missing"},
		{name: "no body, trusted, name on tools/list", headers: map[string]string{"mcp-protocol-version": v, "mcp-method": "tools/list", "mcp-name": "x"}, trust: true, desc: "which has no name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{"content-type": "application/json"}
			for k, v := range tc.headers {
				h[k] = v
			}
			m, err := readMessage(&Request{Method: "POST", Headers: h, Body: []byte(tc.body)}, 1<<20, tc.trust)
			if tc.desc != "" {
				if err == nil || err.Status != http.StatusBadRequest || err.RPCCode != rpcHeaderMismatch || !strings.Contains(err.Description, tc.desc) {
					t.Fatalf("err = %+v, want HeaderMismatch with %q", err, tc.desc)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !reflect.DeepEqual(m, tc.want) {
				t.Errorf("message = %+v, want %+v", m, tc.want)
			}
		})
	}
}

// TestHeaderMismatchClipped: a refusal quotes at most 200 bytes of a header or body value, however long.
func TestHeaderMismatchClipped(t *testing.T) {
	long := strings.Repeat("a", 100000)
	h, _ := readMCPHeaders(map[string]string{"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": long})
	e := checkHeaders(h, &Message{Method: "tools/call", Tool: long + "b", ProtocolVersion: "2026-07-28"})
	if e == nil {
		t.Fatal("mismatch not refused")
	}
	if len(e.Description) > 600 {
		t.Fatalf("refusal %d bytes long", len(e.Description))
	}
}
