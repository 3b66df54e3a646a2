package service_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/service"
	"github.com/mcp-authz/mcp-authz/telemetry"
	"google.golang.org/grpc/metadata"
)

// jaeger is one Jaeger v2 process with in-memory storage, on 127.0.0.1.
type jaeger struct {
	otlpGRPC, otlpHTTP string // host:port of the OTLP receivers
	query              string // base URL of the query API
}

// jaegerBinary is $MCP_AUTHZ_JAEGER or bin/jaeger at the repository root; the test skips without one.
func jaegerBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("MCP_AUTHZ_JAEGER"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("MCP_AUTHZ_JAEGER=%s: %v", p, err)
		}
		return p
	}
	p, err := filepath.Abs("../bin/jaeger")
	if err == nil {
		if _, err = os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("no Jaeger binary: set MCP_AUTHZ_JAEGER=/path/to/jaeger or build bin/jaeger (test/tools/build.sh jaeger)")
	return ""
}

// freePorts reserves n distinct free ports on 127.0.0.1 (released just before Jaeger binds them).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	ls := make([]net.Listener, n)
	for i := range ls {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls[i] = l
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// jaegerConfig is deploy/local/jaeger.yaml with every port chosen by the test.
const jaegerConfig = `
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [jaeger_storage_exporter]}
  telemetry:
    metrics: {level: none}
    logs: {level: warn}
extensions:
  jaeger_storage:
    backends: {memstore: {memory: {max_traces: 10000}}}
  jaeger_query:
    storage: {traces: memstore}
    http: {endpoint: "127.0.0.1:%d"}
    grpc: {endpoint: "127.0.0.1:%d"}
  healthcheckv2:
    use_v2: true
    http: {endpoint: "127.0.0.1:%d"}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:%d"}
      http: {endpoint: "127.0.0.1:%d"}
processors:
  batch: {timeout: 100ms}
exporters:
  jaeger_storage_exporter: {trace_storage: memstore}
`

// startJaeger runs Jaeger until the test ends and waits for its health endpoint.
func startJaeger(t *testing.T) *jaeger {
	t.Helper()
	bin := jaegerBinary(t)
	p := freePorts(t, 5)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(jaegerConfig, p[0], p[1], p[2], p[3], p[4])), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "--config", "file:"+cfg)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start jaeger: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("jaeger output:\n%s", out.String())
		}
	})
	health := fmt.Sprintf("http://127.0.0.1:%d/status", p[2])
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("jaeger exited: %v", err)
		default:
		}
		if resp, err := http.Get(health); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("jaeger not healthy at %s", health)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return &jaeger{otlpGRPC: fmt.Sprintf("127.0.0.1:%d", p[3]), otlpHTTP: fmt.Sprintf("127.0.0.1:%d", p[4]), query: fmt.Sprintf("http://127.0.0.1:%d", p[0])}
}

// jaegerTrace is the query API's view of one trace.
type jaegerTrace struct {
	TraceID string `json:"traceID"`
	Spans   []struct {
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		References    []struct {
			RefType string `json:"refType"`
			TraceID string `json:"traceID"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
		Tags      []jaegerTag `json:"tags"`
		ProcessID string      `json:"processID"`
	} `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

type jaegerTag struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

// getJSON GETs url into v and returns the raw body; a 404 is reported as found=false.
func getJSON(url string, v any) (raw []byte, found bool, err error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	raw, err = io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode == http.StatusNotFound {
		return raw, false, err
	}
	if resp.StatusCode != http.StatusOK {
		return raw, false, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, raw)
	}
	return raw, true, json.Unmarshal(raw, v)
}

// waitTrace polls GET /api/traces/<id> until the trace holds every named operation (bounded deadline).
func (j *jaeger) waitTrace(t *testing.T, traceID string, ops ...string) (jaegerTrace, []byte) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var doc struct {
			Data []jaegerTrace `json:"data"`
		}
		raw, found, err := getJSON(j.query+"/api/traces/"+traceID, &doc)
		if err != nil {
			t.Fatal(err)
		}
		if found && len(doc.Data) == 1 {
			have := map[string]bool{}
			for _, s := range doc.Data[0].Spans {
				have[s.OperationName] = true
			}
			all := true
			for _, op := range ops {
				all = all && have[op]
			}
			if all {
				return doc.Data[0], raw
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s with %v not in Jaeger; last answer %s", traceID, ops, raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// assertNoToken fails when any string anywhere in the Jaeger answer holds the token or anything JWT-shaped.
func assertNoToken(t *testing.T, raw []byte, token string) {
	t.Helper()
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				walk(path+"."+k, e)
			}
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		case string:
			if strings.Contains(v, token) || strings.Contains(v, "Bearer ") || jwtLike.MatchString(v) {
				t.Errorf("%s holds a token: %.24q…", path, v)
			}
		}
	}
	walk("", doc)
}

// TestTracesInJaeger sends Checks carrying a known trace context (W3C or B3, as gRPC metadata or inside
// the checked request's headers) through a real gRPC server exporting OTLP to a real Jaeger, then reads
// each trace back: the Check server span is a child of the given parent, verification and policy spans
// are its children, the attributes describe the decision, and no value anywhere holds a token.
func TestTracesInJaeger(t *testing.T) {
	j := startJaeger(t)
	for _, run := range []struct {
		protocol     string
		endpoint     string
		traceSubject bool
	}{
		{telemetry.ProtocolGRPC, "http://" + j.otlpGRPC, true},
		{telemetry.ProtocolHTTP, "http://" + j.otlpHTTP, false},
	} {
		t.Run(strings.ReplaceAll(run.protocol, "/", "-"), func(t *testing.T) {
			serviceName := "mcp-authz-test-" + randomHex(t, 4)
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", run.endpoint)
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", run.protocol)
			t.Setenv("OTEL_SERVICE_NAME", serviceName)
			t.Setenv("OTEL_SDK_DISABLED", "")
			t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")
			idpSrv := startIdP(t)
			yaml := fmt.Sprintf(`
resources: [{url: %s, name: tools}]
issuers: [{discovery_url: %s/.well-known/openid-configuration}]
policy: {paths: [%s]}
telemetry: {trace_subject: %v}
`, resourceURL, idpSrv.Issuer(), policyDir(t, testData, nil), run.traceSubject)
			cfg, err := config.Parse([]byte(yaml))
			if err != nil {
				t.Fatal(err)
			}
			tel, err := telemetry.New(context.Background(), cfg.Telemetry)
			if err != nil {
				t.Fatal(err)
			}
			if !tel.Tracing() {
				t.Fatal("tracing off with an OTLP endpoint set")
			}
			t.Cleanup(func() { tel.Shutdown(context.Background()) })
			inst := startService(t, yaml, true, service.WithTelemetry(tel))
			token := mint(t, idpSrv, userClaims(nil))
			assertTraces(t, j, inst, tel, token, serviceName, idpSrv.Issuer(), run.traceSubject)
			assertRefreshTrace(t, j, serviceName, idpSrv.Issuer())
		})
	}
}

func assertTraces(t *testing.T, j *jaeger, inst *instance, tel *telemetry.Providers, token, serviceName, issuer string, traceSubject bool) {
	traceparent := func(trace, span string) string { return "00-" + trace + "-" + span + "-01" }
	type carrier int
	const (
		grpcMetadata carrier = iota
		httpHeaders
	)
	tests := []struct {
		name     string
		via      carrier
		headers  func(trace, span string) map[string]string
		body     string
		decision string
		reason   string
		status   float64
		tool     string
	}{
		{"traceparent in gRPC metadata", grpcMetadata, func(tr, sp string) map[string]string {
			return map[string]string{"traceparent": traceparent(tr, sp)}
		}, callTool("echo"), "allow", "allowed", 200, "echo"},
		{"traceparent in the request headers", httpHeaders, func(tr, sp string) map[string]string {
			return map[string]string{"traceparent": traceparent(tr, sp)}
		}, callTool("echo"), "allow", "allowed", 200, "echo"},
		{"B3 multi headers in the request headers", httpHeaders, func(tr, sp string) map[string]string {
			return map[string]string{"x-b3-traceid": tr, "x-b3-spanid": sp, "x-b3-sampled": "1"}
		}, callTool("echo"), "allow", "allowed", 200, "echo"},
		{"B3 single header in gRPC metadata", grpcMetadata, func(tr, sp string) map[string]string {
			return map[string]string{"b3": tr + "-" + sp + "-1"}
		}, listTools, "allow", "allowed", 200, ""},
		{"step-up deny, traceparent in the request headers", httpHeaders, func(tr, sp string) map[string]string {
			return map[string]string{"traceparent": traceparent(tr, sp)}
		}, callTool("admin_reset"), "deny", "insufficient_scope", 403, "admin_reset"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			traceID, parentID := randomHex(t, 16), randomHex(t, 8)
			headers := map[string]string{"authorization": "Bearer " + token, "x-request-id": "req-" + parentID}
			ctx := context.Background()
			if tc.via == grpcMetadata {
				for k, v := range tc.headers(traceID, parentID) {
					ctx = metadata.AppendToOutgoingContext(ctx, k, v)
				}
			} else {
				for k, v := range tc.headers(traceID, parentID) {
					headers[k] = v
				}
			}
			req := checkRequest(headers, "/mcp", tc.body)
			resp, err := inst.client.Check(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if (resp.GetOkResponse() != nil) != (tc.decision == "allow") {
				t.Fatalf("response %v, want %s", resp, tc.decision)
			}
			if err := tel.ForceFlush(ctx); err != nil {
				t.Fatal(err)
			}
			tr, raw := j.waitTrace(t, traceID, "authz.Check", "authz.VerifyToken", "policy.Evaluate")
			assertNoToken(t, raw, token)

			byName := map[string][]int{}
			for i, s := range tr.Spans {
				byName[s.OperationName] = append(byName[s.OperationName], i)
			}
			if len(byName["authz.Check"]) != 1 {
				t.Fatalf("%d authz.Check spans, want 1", len(byName["authz.Check"]))
			}
			check := tr.Spans[byName["authz.Check"][0]]
			parentOf := func(i int) string {
				for _, r := range tr.Spans[i].References {
					if r.RefType == "CHILD_OF" && r.TraceID == traceID {
						return r.SpanID
					}
				}
				return ""
			}
			if got := parentOf(byName["authz.Check"][0]); got != parentID {
				t.Errorf("authz.Check parent = %q, want the proxy's span %s", got, parentID)
			}
			for _, child := range []string{"authz.VerifyToken", "policy.Evaluate"} {
				for _, i := range byName[child] {
					if got := parentOf(i); got != check.SpanID {
						t.Errorf("%s parent = %q, want authz.Check %s", child, got, check.SpanID)
					}
				}
			}
			if svc := tr.Processes[check.ProcessID].ServiceName; svc != serviceName {
				t.Errorf("service = %q, want %q", svc, serviceName)
			}
			tags := map[string]any{}
			for _, tag := range check.Tags {
				tags[tag.Key] = tag.Value
			}
			want := map[string]any{
				"span.kind":          "server",
				"authz.decision":     tc.decision,
				"authz.reason_code":  tc.reason,
				"authz.status":       tc.status,
				"authz.resource":     resourceURL,
				"authz.issuer":       issuer,
				"authz.client_id":    "mcp-client",
				"authz.request_id":   "req-" + parentID,
				"mcp.method.name":    map[bool]string{true: "tools/call", false: "tools/list"}[tc.tool != ""],
				"gen_ai.tool.name":   nilIfEmpty(tc.tool),
				"enduser.id":         map[bool]any{true: "alice", false: nil}[traceSubject],
				"authz.reason":       nonEmpty{},
				"http.authorization": nil,
			}
			for k, v := range want {
				got, ok := tags[k]
				switch v := v.(type) {
				case nil:
					if ok {
						t.Errorf("tag %s = %v, want none", k, got)
					}
				case nonEmpty:
					if s, _ := got.(string); s == "" {
						t.Errorf("tag %s = %v, want a value", k, got)
					}
				default:
					if got != v {
						t.Errorf("tag %s = %#v, want %#v", k, got, v)
					}
				}
			}
		})
	}
}

// assertRefreshTrace finds the key set's background fetch: a root span of its own with the fetch as child.
func assertRefreshTrace(t *testing.T, j *jaeger, serviceName, issuer string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var doc struct {
			Data []jaegerTrace `json:"data"`
		}
		_, _, err := getJSON(j.query+"/api/traces?service="+serviceName+"&operation=authz.RefreshKeys", &doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range doc.Data {
			var root, fetch string
			var rootIssuer any
			for _, s := range tr.Spans {
				switch s.OperationName {
				case "authz.RefreshKeys":
					if len(s.References) == 0 {
						root = s.SpanID
						for _, tag := range s.Tags {
							if tag.Key == "authz.issuer" {
								rootIssuer = tag.Value
							}
						}
					}
				case "authz.FetchKeys":
					if len(s.References) == 1 {
						fetch = s.References[0].SpanID
					}
				}
			}
			if root != "" && fetch == root && rootIssuer == issuer {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no root authz.RefreshKeys span of %s with an authz.FetchKeys child: %+v", issuer, doc.Data)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// nonEmpty asks for any non-empty string tag.
type nonEmpty struct{}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
