package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/service"
	"github.com/mcp-authz/mcp-authz/test/envoystandin"
	"github.com/mcp-authz/mcp-authz/test/mcpserver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// requiredEnv makes a missing external program a failure instead of a skip.
const requiredEnv = "MCP_AUTHZ_E2E_REQUIRED"

// findProgram returns the first candidate that is an executable file (a bare name is looked up in PATH).
// When none is, the test is skipped with a message, or fails when MCP_AUTHZ_E2E_REQUIRED is set.
func findProgram(t testing.TB, what, install string, candidates ...string) string {
	t.Helper()
	if p := lookProgram(candidates...); p != "" {
		return p
	}
	missing(t, fmt.Sprintf("%s not found (looked for %s); %s", what, strings.Join(nonEmpty(candidates), ", "), install))
	return ""
}

// missing skips the test with msg, or fails it when MCP_AUTHZ_E2E_REQUIRED is set.
func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv(requiredEnv) != "" {
		t.Fatalf("%s; %s is set, so this is a failure", msg, requiredEnv)
	}
	t.Skipf("%s; skipping (set %s=1 to make this a failure)", msg, requiredEnv)
}

func nonEmpty(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// repoRoot is the module root, two levels above this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

// listen opens a listener on a free 127.0.0.1 port.
func listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// freePort returns a 127.0.0.1 port that was free a moment ago, for programs that must be told their port.
// It is drawn below Linux's ephemeral range (32768-60999), so that the listeners the suite opens on port 0
// in the meantime (mcp-authz, the MCP server, the stand-ins) cannot be handed the same port before the
// program binds it.
func freePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("no free port in 20000-31999")
	return 0
}

// serve runs h on l until the test ends.
func serve(t testing.TB, l net.Listener, h http.Handler) {
	t.Helper()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		<-done
	})
}

// process is an external program run by the suite.
type process struct {
	name string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

// syncBuffer is a bounded, concurrency-safe log of a process's output (the last 256 KiB).
type syncBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - 256<<10; over > 0 {
		b.buf = b.buf[over:]
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// start runs a program until the test ends (or stop is called); its output is logged when the test fails.
func start(t testing.TB, name string, env []string, dir string, argv ...string) *process {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	p := &process{name: name, cmd: cmd, log: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- %s output (tail) ---\n%s", name, tail(p.log.String(), 8000))
		}
	})
	return p
}

// stop ends the process (SIGTERM, then SIGKILL after 5s) and waits for it.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// waitHTTP polls url until it answers 200, for at most d.
func waitHTTP(t testing.TB, url string, d time.Duration, p *process) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		resp, err := http.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if p != nil {
			select {
			case <-p.done:
				t.Fatalf("%s exited while waiting for %s:\n%s", p.name, url, tail(p.log.String(), 4000))
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s: %v", url, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// authzInstance is mcp-authz running in process.
type authzInstance struct {
	grpcAddr string
	httpURL  string
	client   authv3.AuthorizationClient
	// logs is everything mcp-authz logged (JSON lines, the last 256 KiB).
	logs *syncBuffer
}

// startAuthz runs mcp-authz in process with the given configuration document on the given listeners
// and waits until it is ready (every issuer's keys loaded). opts are service options (the bridge's, say).
func startAuthz(t testing.TB, yaml string, gl, hl net.Listener, opts ...service.Option) *authzInstance {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := service.New(ctx, cfg, log, opts...)
	if err != nil {
		cancel()
		t.Fatalf("service.New: %v", err)
	}
	done := make(chan struct{})
	go func() { svc.Serve(ctx, gl, hl); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("--- mcp-authz log (tail) ---\n%s", tail(logs.String(), 8000))
		}
		if strings.Contains(logs.String(), "eyJ") {
			t.Errorf("mcp-authz logged something that looks like a JWT")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for svc.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("mcp-authz not ready: %v", svc.Ready())
		}
		time.Sleep(50 * time.Millisecond)
	}
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &authzInstance{grpcAddr: gl.Addr().String(), httpURL: "http://" + hl.Addr().String(), client: authv3.NewAuthorizationClient(conn), logs: logs}
}

// startMCPServer runs the example MCP server in process on every path and returns it with its base URL.
func startMCPServer(t testing.TB) (*mcpserver.Server, *url.URL) {
	t.Helper()
	l := listen(t)
	s := mcpserver.New()
	serve(t, l, s)
	u, _ := url.Parse("http://" + l.Addr().String())
	return s, u
}

// startStandin runs the Envoy stand-in on l: the well-known metadata routes go to mcp-authz's HTTP
// listener without a check (ExtAuthzPerRoute disabled), everything else to the MCP server after the check:
// Check over gRPC, or with hs the HTTP authorization endpoint (http_service mode, with_request_body).
func startStandin(t testing.TB, l net.Listener, az *authzInstance, upstream *url.URL, hs *envoystandin.HTTPService) {
	t.Helper()
	meta, _ := url.Parse(az.httpURL)
	p := envoystandin.New(az.client, []envoystandin.Route{
		{Prefix: "/", Upstream: upstream},
		{Prefix: "/.well-known/oauth-protected-resource", Upstream: meta, CheckDisabled: true},
	}, envoystandin.Options{StatusOnError: http.StatusServiceUnavailable, HTTPService: hs})
	serve(t, l, p)
}
