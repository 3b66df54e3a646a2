package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nodeTools finds node, the suite's npm packages (test/e2e/node, installed by `npm ci`) and Chromium;
// missing ones skip the test (or fail it under MCP_AUTHZ_E2E_REQUIRED).
func nodeTools(t testing.TB, needChromium bool) (node, dir, chromium string) {
	t.Helper()
	node = findProgram(t, "node", "apt-get install -y nodejs", "node")
	dir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	findProgram(t, "the suite's npm packages", "run `npm ci` in test/e2e/node", filepath.Join(dir, "node_modules", ".bin", "mcp-remote"))
	if needChromium {
		chromium = findProgram(t, "Chromium", "apt-get install -y chromium", "/usr/lib/chromium/chromium", "/usr/bin/chromium")
	}
	return node, dir, chromium
}

// mcpRemote is mcp-remote 0.15.1 run as an MCP client would run it (stdio), its browser a headless
// Chromium that logs in on the IdP's page.
type mcpRemote struct {
	t      testing.TB
	stdin  io.WriteCloser
	lines  chan string
	nextID int
}

// startMCPRemote runs mcp-remote for endpoint with a static public client and the given callback port.
// extra are more mcp-remote flags.
func startMCPRemote(t testing.TB, endpoint, clientID string, callbackPort int, user string, extra ...string) *mcpRemote {
	t.Helper()
	info, _ := json.Marshal(map[string]string{"client_id": clientID})
	return startMCPRemoteWith(t, endpoint, callbackPort, remoteOptions{
		browser: "browser.mjs", env: []string{"E2E_USER=" + user},
		flags: append([]string{"--static-oauth-client-info", string(info)}, extra...),
	})
}

// remoteOptions configure startMCPRemoteWith.
type remoteOptions struct {
	// browser is the script of test/e2e/node that mcp-remote runs as $BROWSER with the authorization URL.
	browser string
	// env is added to mcp-remote's environment (its browser inherits it).
	env []string
	// flags are more mcp-remote flags.
	flags []string
}

// startMCPRemoteWith runs mcp-remote for endpoint with the given callback port, its browser a node script
// driving Chromium.
func startMCPRemoteWith(t testing.TB, endpoint string, callbackPort int, o remoteOptions) *mcpRemote {
	t.Helper()
	node, dir, chromium := nodeTools(t, true)
	tmp := t.TempDir()
	browserLog := filepath.Join(tmp, "browser.log")
	wrapper := filepath.Join(tmp, "browser.sh")
	script := fmt.Sprintf("#!/bin/sh\nexec %q %q \"$1\" >>%q 2>&1\n", node, filepath.Join(dir, o.browser), browserLog)
	if err := os.WriteFile(wrapper, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	args := append([]string{filepath.Join(dir, "node_modules", "mcp-remote", "dist", "proxy.js"), endpoint, fmt.Sprint(callbackPort),
		"--host", "127.0.0.1", "--allow-http"}, o.flags...)
	cmd := exec.Command(node, args...)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "BROWSER="+wrapper, "MCP_REMOTE_CONFIG_DIR="+filepath.Join(tmp, "config"),
		"E2E_CHROMIUM="+chromium, "DISPLAY=", "WAYLAND_DISPLAY=")
	cmd.Env = append(cmd.Env, o.env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &mcpRemote{t: t, stdin: stdin, lines: make(chan string, 64)}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			m.lines <- sc.Text()
		}
		close(m.lines)
	}()
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(browserLog)
			t.Logf("--- mcp-remote stderr (tail) ---\n%s\n--- browser ---\n%s", tail(stderr.String(), 6000), tail(string(b), 3000))
		}
	})
	return m
}

// request sends a JSON-RPC request and waits (at most d) for its response, skipping other messages.
func (m *mcpRemote) request(method string, params any, d time.Duration) (json.RawMessage, error) {
	m.nextID++
	id := m.nextID
	msg, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	if _, err := m.stdin.Write(append(msg, '\n')); err != nil {
		return nil, err
	}
	timeout := time.After(d)
	for {
		select {
		case line, ok := <-m.lines:
			if !ok {
				return nil, fmt.Errorf("mcp-remote exited while waiting for %s", method)
			}
			var resp struct {
				ID     *int            `json:"id"`
				Result json.RawMessage `json:"result"`
				Error  json.RawMessage `json:"error"`
			}
			if json.Unmarshal([]byte(line), &resp) != nil || resp.ID == nil || *resp.ID != id {
				continue
			}
			if len(resp.Error) > 0 {
				return nil, fmt.Errorf("%s: error %s", method, resp.Error)
			}
			return resp.Result, nil
		case <-timeout:
			return nil, fmt.Errorf("no answer to %s within %s", method, d)
		}
	}
}

// notify sends a JSON-RPC notification.
func (m *mcpRemote) notify(method string) {
	msg, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method})
	m.stdin.Write(append(msg, '\n'))
}

// mcpRemoteScenario: mcp-remote connects through the proxy, gets 401, discovers the IdP, opens Chromium on
// its login page (the user logs in), then lists and calls tools; the MCP server sees the user's identity
// and no Authorization header.
func mcpRemoteScenario(t *testing.T, st *stack, px proxy, env idpEnv, clientID string, callbackPort int) {
	start := time.Now()
	user := "alice" // an IdP without a login page approves as alice
	if env.userLogin {
		user = "bob"
	}
	m := startMCPRemote(t, px.resource(), clientID, callbackPort, user)
	before := len(st.mcp.Records())
	res, err := m.request("initialize", map[string]any{
		"protocolVersion": "2025-06-18", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "e2e-over-mcp-remote", "version": "1"},
	}, 90*time.Second)
	if err != nil {
		t.Fatalf("initialize: %v", err)
	}
	if !strings.Contains(string(res), "mcp-example-server") {
		t.Errorf("initialize result %s", res)
	}
	t.Logf("initialized through login in %s", time.Since(start).Round(time.Millisecond))
	m.notify("notifications/initialized")
	res, err = m.request("tools/list", map[string]any{}, 20*time.Second)
	if err != nil || !strings.Contains(string(res), "list_files") {
		t.Fatalf("tools/list: %s %v", res, err)
	}
	res, err = m.request("tools/call", map[string]any{"name": "echo", "arguments": map[string]any{"message": "via mcp-remote"}}, 20*time.Second)
	if err != nil || !strings.Contains(string(res), "via mcp-remote") {
		t.Fatalf("tools/call echo: %s %v", res, err)
	}
	recs := st.mcp.Records()[before:]
	if len(recs) == 0 {
		t.Fatal("the MCP server saw nothing")
	}
	for _, rec := range recs {
		if rec.Header.Get("Authorization") != "" {
			t.Errorf("%s %s reached the MCP server with an Authorization header", rec.Method, rec.Path)
		}
		if got := rec.Header.Get("X-Mcp-Subject"); got != user {
			t.Errorf("%s %s: X-Mcp-Subject = %q, want %s", rec.Method, rec.Path, got, user)
		}
		if got := rec.Header.Get("X-Mcp-Client-Id"); got != clientID {
			t.Errorf("%s %s: X-Mcp-Client-Id = %q, want %s", rec.Method, rec.Path, got, clientID)
		}
	}
}
