package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestRun: the command serves the example server at /mcp; an MCP client lists and calls its tools, and
// the log names the caller from the proxy's identity header but never carries the Authorization header.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &strings.Builder{}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0"}, &lockedWriter{w: logs}, func(u string) { ready <- u })
	}()
	var endpoint string
	select {
	case endpoint = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	hc := &http.Client{Transport: headerTransport{"X-Mcp-Subject": "alice", "Authorization": "Bearer secret-token"}}
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	s, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		tool string
		args any
		want string
	}{
		{"echo", map[string]any{"message": "hi"}, `"message":"hi"`},
		{"list_files", nil, `"README.md"`},
		{"admin_reset", nil, `"resets":1`},
	}
	for _, tc := range tests {
		res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tc.tool, Arguments: tc.args})
		if err != nil || res.IsError {
			t.Fatalf("%s: %v %v", tc.tool, err, res)
		}
		if text := res.Content[0].(*mcp.TextContent).Text; !strings.Contains(text, tc.want) {
			t.Errorf("%s = %s, want it to contain %s", tc.tool, text, tc.want)
		}
	}
	s.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, `"subject":"alice"`) || strings.Contains(out, "secret-token") {
		t.Errorf("log:\n%s", out)
	}
}

// headerTransport adds fixed headers, as a front proxy would.
type headerTransport map[string]string

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// lockedWriter serializes writes from the server's goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
