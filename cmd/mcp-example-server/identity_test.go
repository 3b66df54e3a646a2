package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestRunIdentityFlags: with -identity-jwks the command refuses (401) a request that carries only identity
// headers, as one that bypasses the proxy does, and logs why; without the issuer or audience it does not
// start.
func TestRunIdentityFlags(t *testing.T) {
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"keys":[]}`)) }))
	defer jwks.Close()
	if err := run(context.Background(), []string{"-listen", "127.0.0.1:0", "-identity-jwks", jwks.URL}, &strings.Builder{}, nil); err == nil ||
		!strings.Contains(err.Error(), "issuer and the audience are required") {
		t.Fatalf("run without issuer and audience: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &strings.Builder{}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-identity-jwks", jwks.URL, "-identity-issuer", "http://127.0.0.1:8080",
			"-identity-audience", "http://127.0.0.1:8000/mcp"}, &lockedWriter{w: logs}, func(u string) { ready <- u })
	}()
	var endpoint string
	select {
	case endpoint = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	req, _ := http.NewRequest("POST", endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Mcp-Subject", "admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status %d, want 401", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if out := logs.String(); !strings.Contains(out, `"msg":"request refused"`) || !strings.Contains(out, "no identity assertion") {
		t.Errorf("log:\n%s", out)
	}
}
