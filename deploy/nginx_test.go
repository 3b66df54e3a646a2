package deploy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const nginxConf = "nginx/nginx.conf"

// ngxDirective is one nginx directive with its arguments (quotes removed) and block, if any.
type ngxDirective struct {
	Name  string
	Args  []string
	Block []ngxDirective
}

// parseNginx parses nginx's configuration syntax: words, quoted strings, comments, blocks.
func parseNginx(src string) ([]ngxDirective, error) {
	var toks []string
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '{' || c == '}' || c == ';':
			toks = append(toks, string(c))
			i++
		case c == '"' || c == '\'':
			j := i + 1
			for j < len(src) && src[j] != c {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(src) {
				return nil, fmt.Errorf("unterminated quote at byte %d", i)
			}
			toks = append(toks, "\x00"+src[i+1:j])
			i = j + 1
		default:
			j := i
			for j < len(src) && !strings.ContainsRune(" \t\r\n{};", rune(src[j])) {
				j++
			}
			toks = append(toks, src[i:j])
			i = j
		}
	}
	var parse func(pos int, depth int) ([]ngxDirective, int, error)
	parse = func(pos int, depth int) ([]ngxDirective, int, error) {
		var out []ngxDirective
		var cur []string
		for pos < len(toks) {
			t := toks[pos]
			pos++
			switch t {
			case ";":
				if len(cur) == 0 {
					return nil, pos, fmt.Errorf("empty directive")
				}
				out = append(out, ngxDirective{Name: cur[0], Args: cur[1:]})
				cur = nil
			case "{":
				if len(cur) == 0 {
					return nil, pos, fmt.Errorf("block without a directive")
				}
				block, next, err := parse(pos, depth+1)
				if err != nil {
					return nil, next, err
				}
				out = append(out, ngxDirective{Name: cur[0], Args: cur[1:], Block: block})
				cur, pos = nil, next
			case "}":
				if depth == 0 || len(cur) > 0 {
					return nil, pos, fmt.Errorf("unexpected }")
				}
				return out, pos, nil
			default:
				cur = append(cur, strings.TrimPrefix(t, "\x00"))
			}
		}
		if depth > 0 || len(cur) > 0 {
			return nil, pos, fmt.Errorf("unexpected end of file")
		}
		return out, pos, nil
	}
	d, _, err := parse(0, 0)
	return d, err
}

func ngxAll(ds []ngxDirective, name string) []ngxDirective {
	var out []ngxDirective
	for _, d := range ds {
		if d.Name == name {
			out = append(out, d)
		}
	}
	return out
}

// ngxDeep finds directives named name in ds and in nested blocks (if, limit_except).
func ngxDeep(ds []ngxDirective, name string) []ngxDirective {
	var out []ngxDirective
	for _, d := range ds {
		if d.Name == name {
			out = append(out, d)
		}
		if d.Name != "location" {
			out = append(out, ngxDeep(d.Block, name)...)
		}
	}
	return out
}

// ngxHeaders maps lower-case header names to the value proxy_set_header gives them in a block.
func ngxHeaders(ds []ngxDirective) map[string]string {
	out := map[string]string{}
	for _, d := range ngxAll(ds, "proxy_set_header") {
		if len(d.Args) == 2 {
			out[strings.ToLower(d.Args[0])] = d.Args[1]
		}
	}
	return out
}

// checkNginx checks the front proxy's structure: auth_request on every MCP location (which must proxy_pass,
// never return), the internal subrequest location, identity headers from mcp-authz's answer only, no token
// passthrough, challenges on 401/403, public metadata, loopback listeners.
func checkNginx(src string, identity []string) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	top, err := parseNginx(src)
	if err != nil {
		return []error{err}
	}
	if len(ngxAll(top, "daemon")) != 1 || ngxAll(top, "daemon")[0].Args[0] != "off" {
		bad("want daemon off (foreground, runs under nginx -p)")
	}
	if p := ngxAll(top, "pid"); len(p) != 1 || filepath.IsAbs(p[0].Args[0]) {
		bad("want a pid file relative to the prefix")
	}
	https := ngxAll(top, "http")
	if len(https) != 1 {
		return append(errs, fmt.Errorf("want one http block"))
	}
	for _, d := range https[0].Block {
		if strings.HasSuffix(d.Name, "_temp_path") && filepath.IsAbs(d.Args[0]) {
			bad("%s %s: keep temp paths under the prefix", d.Name, d.Args[0])
		}
	}
	authzUpstream := ""
	for _, srv := range ngxAll(https[0].Block, "server") {
		for _, l := range ngxAll(srv.Block, "listen") {
			if !strings.HasPrefix(l.Args[0], "127.0.0.1:") {
				bad("listen %s: bind 127.0.0.1", l.Args[0])
			}
		}
		locs := map[string]ngxDirective{}
		for _, l := range ngxAll(srv.Block, "location") {
			locs[l.Args[len(l.Args)-1]] = l
		}
		// inherited returns a location's directives named name, else the server's (nginx array inheritance).
		inherited := func(loc ngxDirective, name string) []ngxDirective {
			if ds := ngxAll(loc.Block, name); len(ds) > 0 {
				return ds
			}
			return ngxAll(srv.Block, name)
		}
		protected := 0
		for _, loc := range ngxAll(srv.Block, "location") {
			where := "location " + strings.Join(loc.Args, " ")
			ar := ngxAll(loc.Block, "auth_request")
			path := loc.Args[len(loc.Args)-1]
			if strings.HasPrefix(path, wellKnownPRM) {
				if len(ar) > 0 {
					bad("%s: the metadata must be public (no auth_request)", where)
				}
				if pp := ngxAll(loc.Block, "proxy_pass"); len(pp) != 1 || strings.Count(pp[0].Args[0], "/") > 2 {
					bad("%s: proxy_pass the whole URI to mcp-authz (no URI part)", where)
				} else {
					authzUpstream = strings.TrimPrefix(pp[0].Args[0], "http://")
				}
				continue
			}
			if len(ar) == 0 || ar[0].Args[0] == "off" {
				continue
			}
			protected++
			if len(ngxDeep(loc.Block, "return")) > 0 {
				bad("%s: return runs before auth_request and bypasses it; proxy_pass instead", where)
			}
			if len(ngxAll(loc.Block, "proxy_pass")) != 1 {
				bad("%s: a protected location must proxy_pass", where)
			}
			hs := ngxHeaders(loc.Block)
			if v, ok := hs["authorization"]; !ok || v != "" {
				bad("%s: set proxy_set_header Authorization \"\" (no token passthrough)", where)
			}
			// Each identity header comes from a variable that auth_request_set fills from mcp-authz's answer.
			fromAuthz := map[string]string{}
			for _, d := range inherited(loc, "auth_request_set") {
				fromAuthz[d.Args[0]] = d.Args[1]
			}
			for _, h := range identity {
				v, ok := hs[h]
				if !ok {
					bad("%s: %s is not set from mcp-authz's answer (a client copy would pass)", where, h)
					continue
				}
				if want := "$upstream_http_" + strings.ReplaceAll(h, "-", "_"); fromAuthz[v] != want {
					bad("%s: %s is %s, want a variable auth_request_set from %s", where, h, v, want)
				}
			}
			// The subrequest location.
			sub, ok := locs[ar[0].Args[0]]
			if !ok || sub.Args[0] != "=" {
				bad("%s: auth_request %s has no exact (=) location", where, ar[0].Args[0])
				continue
			}
			if len(ngxAll(sub.Block, "internal")) == 0 {
				bad("location %s: must be internal", ar[0].Args[0])
			}
			if pp := ngxAll(sub.Block, "proxy_pass"); len(pp) != 1 || !strings.HasSuffix(pp[0].Args[0], "/authz") {
				bad("location %s: proxy_pass to mcp-authz's /authz", ar[0].Args[0])
			} else if authzUpstream != "" && !strings.HasPrefix(pp[0].Args[0], "http://"+authzUpstream+"/") {
				bad("location %s: %s is not the metadata's upstream %s", ar[0].Args[0], pp[0].Args[0], authzUpstream)
			}
			if b := ngxAll(sub.Block, "proxy_pass_request_body"); len(b) != 1 || b[0].Args[0] != "off" {
				bad("location %s: proxy_pass_request_body off", ar[0].Args[0])
			}
			sh := ngxHeaders(sub.Block)
			for h, v := range map[string]string{"content-length": "", "x-forwarded-uri": "$request_uri", "x-forwarded-method": "$request_method", "x-original-uri": "$request_uri", "x-original-method": "$request_method", "x-forwarded-host": "$host", "x-forwarded-proto": "$scheme"} {
				if got, ok := sh[h]; !ok || got != v {
					bad("location %s: proxy_set_header %s %q, want %q", ar[0].Args[0], h, got, v)
				}
			}
			// Denials carry mcp-authz's challenge.
			pages := map[string]string{}
			for _, d := range inherited(loc, "error_page") {
				for _, code := range d.Args[:len(d.Args)-1] {
					pages[code] = d.Args[len(d.Args)-1]
				}
			}
			challengeVar := ""
			for v, src := range fromAuthz {
				if src == "$upstream_http_www_authenticate" {
					challengeVar = v
				}
			}
			for _, code := range []string{"401", "403"} {
				named, ok := locs[pages[code]]
				if !ok || !strings.HasPrefix(pages[code], "@") {
					bad("%s: error_page %s = @named location is missing", where, code)
					continue
				}
				ah := slices.ContainsFunc(ngxAll(named.Block, "add_header"), func(d ngxDirective) bool {
					return len(d.Args) == 3 && strings.EqualFold(d.Args[0], "WWW-Authenticate") && d.Args[1] == challengeVar && challengeVar != "" && d.Args[2] == "always"
				})
				switch {
				case code == "401" && len(ngxDeep(named.Block, "add_header")) > 0:
					// auth_request already copies the subrequest's WWW-Authenticate on 401.
					bad("location %s: auth_request copies WWW-Authenticate on 401 by itself; adding it sends the challenge twice", pages[code])
				case code != "401" && !ah:
					bad("location %s: want add_header WWW-Authenticate <auth_request_set from www-authenticate> always", pages[code])
				}
				if r := ngxDeep(named.Block, "return"); len(r) == 0 || r[len(r)-1].Args[0] != code && code != "500" {
					bad("location %s: want return %s with a JSON-RPC body", pages[code], code)
				}
			}
		}
		if protected < 2 {
			bad("want two protected MCP locations, got %d", protected)
		}
	}
	if authzUpstream == "" {
		bad("no %s location proxying to mcp-authz", wellKnownPRM)
	}
	return errs
}

var nginxIdentity = []string{"x-mcp-subject", "x-mcp-client-id", "x-mcp-scopes", "x-mcp-issuer", "x-mcp-email"}

func TestNginxConfig(t *testing.T) {
	src := string(readFile(t, nginxConf))
	if errs := checkNginx(src, nginxIdentity); len(errs) > 0 {
		t.Fatal(joinErrs(errs))
	}
	const protectedTail = "            proxy_set_header Authorization \"\";\n            proxy_set_header Host $host;\n            proxy_set_header X-Forwarded-Proto $scheme;\n            proxy_http_version 1.1;\n            proxy_set_header Connection \"\";\n            proxy_buffering off;"
	negatives := []struct{ name, old, new, want string }{
		{"return bypasses auth_request", "proxy_pass http://mcp_server;", "return 200;", "bypasses"},
		{"no proxy_pass", "proxy_pass http://mcp_public;", "", "must proxy_pass"},
		{"body forwarded", "proxy_pass_request_body off;", "", "proxy_pass_request_body off"},
		{"content length kept", "proxy_set_header Content-Length \"\";", "", "content-length"},
		{"uri without query", "X-Original-URI $request_uri", "X-Original-URI $uri", "x-original-uri"},
		{"forwarded uri not set", "proxy_set_header X-Forwarded-Uri $request_uri;", "", "x-forwarded-uri"},
		{"forwarded method from the client", "X-Forwarded-Method $request_method", "X-Forwarded-Method $http_x_forwarded_method", "x-forwarded-method"},
		{"token passthrough", protectedTail, strings.Replace(protectedTail, "proxy_set_header Authorization \"\";\n", "", 1), "Authorization"},
		{"client email passes", "proxy_set_header X-MCP-Email $authz_email;", "", "x-mcp-email is not set"},
		{"identity from the client", "auth_request_set $authz_subject $upstream_http_x_mcp_subject;", "auth_request_set $authz_subject $http_x_mcp_subject;", "x-mcp-subject is $authz_subject"},
		{"challenge not always", "add_header WWW-Authenticate $authz_www_authenticate always;\n            default_type application/json;\n            if ($authz_body = \"\") {\n                return 403", "add_header WWW-Authenticate $authz_www_authenticate;\n            default_type application/json;\n            if ($authz_body = \"\") {\n                return 403", "@forbidden"},
		{"challenge twice on 401", "        location @unauthorized {\n", "        location @unauthorized {\n            add_header WWW-Authenticate $authz_www_authenticate always;\n", "twice"},
		{"no 403 page", "error_page 403 = @forbidden;", "", "error_page 403"},
		{"public listener", "listen 127.0.0.1:8000;", "listen 8000;", "bind 127.0.0.1"},
		{"not internal", "            internal;\n", "", "must be internal"},
		{"metadata behind auth", "location /.well-known/oauth-protected-resource {\n", "location /.well-known/oauth-protected-resource {\n            auth_request /_authz;\n", "must be public"},
		{"absolute temp path", "proxy_temp_path tmp/proxy;", "proxy_temp_path /var/lib/nginx/proxy;", "temp paths"},
		{"unbalanced", "events {\n", "events {\n    {\n", "block without"},
	}
	for _, n := range negatives {
		t.Run("negative/"+n.name, func(t *testing.T) {
			err := joinErrs(checkNginx(mutate(t, src, n.old, n.new), nginxIdentity))
			if !errorsContain(err, n.want) {
				t.Fatalf("want an error containing %q, got %v", n.want, err)
			}
		})
	}
}

// nginxPrefix makes a prefix folder with the logs/ and tmp/ folders the configuration uses, readable by the
// unprivileged worker user when the test runs as root.
func nginxPrefix(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mcp-nginx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{"logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o777); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir + "/"
}

func nginxBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("nginx")
	if err != nil {
		for _, c := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
			if _, err := os.Stat(c); err == nil {
				return c
			}
		}
		t.Skip("nginx is not installed (apt-get install -y nginx); CI installs it")
	}
	return p
}

// TestNginxSyntax runs nginx -t on the configuration.
func TestNginxSyntax(t *testing.T) {
	bin := nginxBinary(t)
	conf, err := filepath.Abs(nginxConf)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-t", "-e", "stderr", "-c", conf, "-p", nginxPrefix(t)).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("test is successful")) {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

// seen records what a stand-in server received.
type seen struct {
	mu   sync.Mutex
	reqs []seenRequest
}

type seenRequest struct {
	Path   string
	Header http.Header
	Body   string
}

func (s *seen) add(r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, seenRequest{r.URL.RequestURI(), r.Header.Clone(), string(b)})
}

func (s *seen) take() []seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reqs
	s.reqs = nil
	return r
}

const (
	challenge401 = `Bearer resource_metadata="http://localhost:8000/.well-known/oauth-protected-resource/mcp"`
	challenge403 = `Bearer error="insufficient_scope", scope="mcp:tools", resource_metadata="http://localhost:8000/.well-known/oauth-protected-resource/mcp"`
	challenge400 = `Bearer error="invalid_request"`
)

// standInAuthz answers like mcp-authz's HTTP listener, keyed by the bearer token.
func standInAuthz(rec *seen) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.add(r)
		if strings.HasPrefix(r.URL.Path, wellKnownPRM) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"resource":"http://localhost:8000/mcp"}`)
			return
		}
		if r.URL.Path != "/authz" {
			http.NotFound(w, r)
			return
		}
		deny := func(code int, ch string) {
			w.Header().Set("WWW-Authenticate", ch)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			fmt.Fprint(w, `{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"denied"}}`)
		}
		switch r.Header.Get("Authorization") {
		case "Bearer good":
			w.Header().Set("X-MCP-Subject", "alice")
			w.Header().Set("X-MCP-Client-Id", "client-1")
			w.Header().Set("X-MCP-Scopes", "mcp:tools")
			w.Header().Set("X-MCP-Issuer", "http://idp:9000")
			w.WriteHeader(http.StatusOK)
		case "Bearer noscope":
			deny(http.StatusForbidden, challenge403)
		case "Bearer malformed":
			deny(http.StatusBadRequest, challenge400)
		case "Bearer boom":
			w.WriteHeader(http.StatusInternalServerError)
		default:
			deny(http.StatusUnauthorized, challenge401)
		}
	})
}

func standInMCP(name string, rec *seen) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.add(r)
		fmt.Fprint(w, name)
	})
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestNginxFrontProxy runs nginx with the configuration (addresses rewritten to stand-ins on loopback) and
// checks what clients, mcp-authz and the MCP servers see.
func TestNginxFrontProxy(t *testing.T) {
	bin := nginxBinary(t)
	var authzSeen, mcpSeen, publicSeen seen
	authz := httptest.NewServer(standInAuthz(&authzSeen))
	defer authz.Close()
	mcp := httptest.NewServer(standInMCP("mcp-server", &mcpSeen))
	defer mcp.Close()
	public := httptest.NewServer(standInMCP("mcp-public", &publicSeen))
	defer public.Close()
	listen := freeAddr(t)

	src := string(readFile(t, nginxConf))
	src = mutate(t, src, "server 127.0.0.1:8080;", "server "+authz.Listener.Addr().String()+";")
	src = mutate(t, src, "server 127.0.0.1:3000;", "server "+mcp.Listener.Addr().String()+";")
	src = mutate(t, src, "server 127.0.0.1:3001;", "server "+public.Listener.Addr().String()+";")
	src = mutate(t, src, "listen 127.0.0.1:8000;", "listen "+listen+";")
	prefix := nginxPrefix(t)
	conf := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(conf, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-e", "stderr", "-c", conf, "-p", prefix)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		// Fast shutdown of the master (it stops its workers), then make sure the group is gone.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("nginx output:\n%s", logs.String())
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", listen, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s: %v\n%s", listen, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	const rpc = `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
	client := &http.Client{Timeout: 10 * time.Second}
	cases := []struct {
		name, method, path, token string
		header                    map[string]string
		wantStatus                int
		wantChallenge             string // the WWW-Authenticate the client must get, exactly once
		wantBody                  string // substring
		wantUpstream              *seen  // the MCP server that must see the request (nil: none)
		check                     func(t *testing.T, authz, up []seenRequest)
	}{
		{name: "metadata is public", method: "GET", path: "/.well-known/oauth-protected-resource/mcp", wantStatus: 200, wantBody: `"resource"`,
			check: func(t *testing.T, authz, _ []seenRequest) {
				if len(authz) != 1 || authz[0].Path != "/.well-known/oauth-protected-resource/mcp" {
					t.Errorf("mcp-authz saw %v, want only the metadata request", authz)
				}
			}},
		{name: "no token", method: "POST", path: "/mcp", wantStatus: 401, wantChallenge: challenge401, wantBody: `"jsonrpc":"2.0"`},
		{name: "allowed", method: "POST", path: "/mcp?x=1", token: "good",
			header:     map[string]string{"X-MCP-Subject": "mallory", "X-MCP-Email": "mallory@example.com", "X-Original-URI": "/elsewhere", "X-Forwarded-Uri": "/public/mcp", "Origin": "https://app.example.com"},
			wantStatus: 200, wantBody: "mcp-server", wantUpstream: &mcpSeen,
			check: func(t *testing.T, authz, up []seenRequest) {
				if len(authz) != 1 {
					t.Fatalf("mcp-authz saw %d requests", len(authz))
				}
				a := authz[0].Header
				for h, want := range map[string]string{"X-Original-Uri": "/mcp?x=1", "X-Original-Method": "POST", "X-Forwarded-Uri": "/mcp?x=1", "X-Forwarded-Method": "POST", "X-Forwarded-Host": "localhost", "X-Forwarded-Proto": "http", "Authorization": "Bearer good", "Origin": "https://app.example.com"} {
					if got := a.Values(h); len(got) != 1 || got[0] != want {
						t.Errorf("mcp-authz got %s %q, want %q", h, got, want)
					}
				}
				if authz[0].Path != "/authz" || authz[0].Body != "" {
					t.Errorf("mcp-authz got %s with body %q, want /authz without body", authz[0].Path, authz[0].Body)
				}
				u := up[0].Header
				if got := u.Values("X-Mcp-Subject"); len(got) != 1 || got[0] != "alice" {
					t.Errorf("MCP server got X-MCP-Subject %q, want only mcp-authz's alice", got)
				}
				if got := u.Values("X-Mcp-Email"); len(got) != 0 {
					t.Errorf("MCP server got the client's X-MCP-Email %q", got)
				}
				if got := u.Get("Authorization"); got != "" {
					t.Errorf("MCP server got the token: %q", got)
				}
				if up[0].Body != rpc {
					t.Errorf("MCP server got body %q", up[0].Body)
				}
			}},
		{name: "second server", method: "POST", path: "/public/mcp", token: "good", wantStatus: 200, wantBody: "mcp-public", wantUpstream: &publicSeen},
		{name: "insufficient scope", method: "POST", path: "/mcp", token: "noscope", wantStatus: 403, wantChallenge: challenge403, wantBody: `"jsonrpc":"2.0"`},
		{name: "invalid request", method: "POST", path: "/public/mcp", token: "malformed", wantStatus: 400, wantChallenge: challenge400, wantBody: `"jsonrpc":"2.0"`},
		{name: "authorizer error fails closed", method: "POST", path: "/mcp", token: "boom", wantStatus: 503, wantBody: `"jsonrpc":"2.0"`},
		{name: "unknown path", method: "GET", path: "/other", token: "good", wantStatus: 404,
			check: func(t *testing.T, authz, _ []seenRequest) {
				if len(authz) != 0 {
					t.Errorf("mcp-authz was asked about an unrouted path")
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			authzSeen.take()
			mcpSeen.take()
			publicSeen.take()
			req, err := http.NewRequest(c.method, "http://"+listen+c.path, strings.NewReader(rpc))
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "localhost:8000"
			req.Header.Set("Content-Type", "application/json")
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			for k, v := range c.header {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.wantStatus {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, c.wantStatus, body)
			}
			if !strings.Contains(string(body), c.wantBody) {
				t.Errorf("body %q does not contain %q", body, c.wantBody)
			}
			if c.wantChallenge != "" {
				if got := resp.Header.Values("WWW-Authenticate"); len(got) != 1 || got[0] != c.wantChallenge {
					t.Errorf("WWW-Authenticate %q, want exactly [%q]", got, c.wantChallenge)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q, want application/json", ct)
				}
			}
			up := append(mcpSeen.take(), publicSeen.take()...)
			switch {
			case c.wantUpstream == nil && len(up) > 0:
				t.Errorf("an MCP server was reached: %v", up)
			case c.wantUpstream != nil && len(up) != 1:
				t.Errorf("MCP servers saw %d requests, want 1", len(up))
			}
			if c.check != nil && (c.wantUpstream == nil || len(up) == 1) {
				c.check(t, authzSeen.take(), up)
			}
		})
	}
}
