package authz_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/mcp-authz/mcp-authz/authz"
)

// TestDecisionLog checks the fields of the decision line and the reason code of each decision path.
func TestDecisionLog(t *testing.T) {
	tests := []struct {
		name    string
		tracing bool
		headers func(h *harness) map[string]string
		path    string
		body    string
		want    map[string]any // nil value: field absent
	}{
		{"allow with tracing", true, func(h *harness) map[string]string {
			return map[string]string{"authorization": "Bearer " + h.token(t, nil)}
		}, "/mcp", callTool("echo"),
			map[string]any{"decision": "allow", "status": 200.0, "reason_code": "allowed", "reason": "allowed", "resource": resourceURL, "sub": "alice", "client_id": "mcp-client",
				"mcp_method": "tools/call", "tool": "echo", "request_id": "req-1", "http_method": "POST", "host": "mcp.example.com", "path": "/mcp", "trace_id": present{}, "span_id": present{}, "duration_ms": present{}}},
		{"allow without tracing", false, func(h *harness) map[string]string {
			return map[string]string{"authorization": "Bearer " + h.token(t, nil)}
		}, "/mcp", listTools,
			map[string]any{"decision": "allow", "mcp_method": "tools/list", "tool": nil, "trace_id": nil, "span_id": nil}},
		{"missing token", false, func(*harness) map[string]string { return nil }, "/mcp", listTools,
			map[string]any{"decision": "deny", "status": 401.0, "reason_code": "missing_token", "sub": nil}},
		{"token in the query: path logged without it", false, func(h *harness) map[string]string { return nil }, "/mcp?access_token=eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.sig", listTools,
			map[string]any{"decision": "deny", "status": 400.0, "reason_code": "invalid_request", "path": "/mcp"}},
		{"expired token", false, func(h *harness) map[string]string {
			return map[string]string{"authorization": "Bearer " + h.token(t, map[string]any{"exp": 1000, "iat": 900})}
		}, "/mcp", listTools, map[string]any{"decision": "deny", "status": 401.0, "reason_code": "invalid_token"}},
		{"step-up", false, func(h *harness) map[string]string {
			return map[string]string{"authorization": "Bearer " + h.token(t, nil)}
		}, "/mcp", callTool("admin_reset"),
			map[string]any{"decision": "deny", "status": 403.0, "reason_code": "insufficient_scope", "sub": "alice", "tool": "admin_reset"}},
		{"long request id is cut", false, func(*harness) map[string]string { return map[string]string{"x-request-id": strings.Repeat("r", 300)} }, "/mcp", listTools,
			map[string]any{"decision": "deny", "request_id": strings.Repeat("r", 128)}},
		{"origin not allowed", false, func(h *harness) map[string]string { return map[string]string{"origin": "https://evil.example.com"} }, "/mcp", listTools,
			map[string]any{"decision": "deny", "reason_code": "origin_not_allowed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tel *authz.Telemetry
			if tc.tracing {
				tel, _ = tracing(t, true)
			}
			var buf syncBuffer
			h := newHarness(t, tel, slog.New(slog.NewJSONHandler(&buf, nil)), "")
			headers := tc.headers(h)
			// Three times: after the first, a valid token comes from the token cache, whose log attributes
			// are encoded once (identity, and the outcome of an allow).
			for round := range 3 {
				d := h.authz.Check(context.Background(), request(headers, tc.path, tc.body))
				lines := buf.lines(t)
				if len(lines) != round+1 {
					t.Fatalf("%d decision lines after %d checks", len(lines), round+1)
				}
				line := lines[round]
				if got := line["reason_code"]; got != string(d.Code) {
					t.Errorf("round %d: reason_code %v, decision code %s", round, got, d.Code)
				}
				for k, want := range tc.want {
					got, ok := line[k]
					switch want.(type) {
					case nil:
						if ok {
							t.Errorf("round %d: %s = %v, want absent", round, k, got)
						}
					case present:
						if !ok {
							t.Errorf("round %d: %s absent", round, k)
						}
					default:
						if got != want {
							t.Errorf("round %d: %s = %#v, want %#v", round, k, got, want)
						}
					}
				}
				raw := buf.rawLines()[round]
				if dup := repeatedKey(t, raw); dup != "" {
					t.Errorf("round %d: key %q twice in %s", round, dup, raw)
				}
				if auth := headers["authorization"]; auth != "" && strings.Contains(raw, strings.TrimPrefix(auth, "Bearer ")) || jwtLike.MatchString(raw) {
					t.Errorf("decision line holds a token: %.80s", raw)
				}
			}
		})
	}
}

// repeatedKey returns a top-level key that a JSON object line holds twice, or "".
func repeatedKey(t *testing.T, line string) string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		if seen[k.(string)] {
			return k.(string)
		}
		seen[k.(string)] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return ""
}

// present asks for a field with any value.
type present struct{}

// TestAllowSampling: denies are always logged, allows at log.allow_sample_rate.
func TestAllowSampling(t *testing.T) {
	tests := []struct {
		rate             string
		allows, denies   int
		wantAllowLines   func(int) bool
		wantSampleRateIn bool
	}{
		{"0", 20, 5, func(n int) bool { return n == 0 }, false},
		{"1", 20, 5, func(n int) bool { return n == 20 }, false},
		{"0.5", 200, 5, func(n int) bool { return n > 0 && n < 200 }, true}, // P(all or none) = 2^-199
	}
	for _, tc := range tests {
		t.Run(tc.rate, func(t *testing.T) {
			var buf syncBuffer
			h := newHarness(t, nil, slog.New(slog.NewJSONHandler(&buf, nil)), "log: {allow_sample_rate: "+tc.rate+"}")
			allow := request(map[string]string{"authorization": "Bearer " + h.token(t, nil)}, "/mcp", listTools)
			deny := request(nil, "/mcp", listTools)
			for range tc.allows {
				if d := h.authz.Check(context.Background(), allow); !d.Allow {
					t.Fatalf("not allowed: %s", d.Reason)
				}
			}
			for range tc.denies {
				h.authz.Check(context.Background(), deny)
			}
			counts := map[any]int{}
			for _, l := range buf.lines(t) {
				counts[l["decision"]]++
				if _, ok := l["sample_rate"]; ok != (tc.wantSampleRateIn && l["decision"] == "allow") {
					t.Errorf("sample_rate present = %v in %v", ok, l)
				}
			}
			if counts["deny"] != tc.denies {
				t.Errorf("%d deny lines, want %d", counts["deny"], tc.denies)
			}
			if !tc.wantAllowLines(counts["allow"]) {
				t.Errorf("%d allow lines of %d at rate %s", counts["allow"], tc.allows, tc.rate)
			}
		})
	}
}

// rawLines are the decision lines as written.
func (b *syncBuffer) rawLines() []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if strings.Contains(l, `"msg":"decision"`) {
			out = append(out, l)
		}
	}
	return out
}

// lines are the decision lines, decoded.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == "decision" {
			out = append(out, m)
		}
	}
	return out
}
