package authz

import "testing"

// BenchmarkReadMessage reads typical MCP request bodies: a tools/list, a tools/call with small arguments and
// one whose arguments carry a few KiB (skipped over, never decoded).
func BenchmarkReadMessage(b *testing.B) {
	big := `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"/tmp/x","content":"`
	for range 64 {
		big += `lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor \"incididunt\" ut labore `
	}
	big += `"},"_meta":{"progressToken":"p-1"}}}`
	for _, bc := range []struct{ name, body string }{
		{"tools-list", `{"jsonrpc":"2.0","id":7,"method":"tools/list"}`},
		{"tools-call", `{"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{"name":"list_files","arguments":{"path":"/tmp","query":"benchmark"}}}`},
		{"tools-call-6KiB", big},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := &Request{Headers: map[string]string{"content-type": "application/json"}, Body: []byte(bc.body)}
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.body)))
			for b.Loop() {
				if _, err := readMessage(req, 1<<20, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
