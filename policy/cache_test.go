package policy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/mcp-authz/mcp-authz/policy"
	"github.com/open-policy-agent/opa/v1/ast"
)

// readonlyData switches on every check of the shipped policy and the read-only example.
const readonlyData = everyFeature + `  readonly_clients: [other-client]
`

// writePolicy writes files (name -> content) into a new temporary folder.
func writePolicy(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// genInput builds a varied policy input: token scopes, claims and client, MCP method, tool and id (or no
// body), and request method, path and headers, which the shipped policy does not read. Some inputs are
// malformed on purpose (no token, a token that is not an object, claims that are an array).
func genInput(r *rand.Rand) map[string]any {
	pick := func(xs ...any) any { return xs[r.IntN(len(xs))] }
	subset := func(xs ...string) []any {
		out := []any{}
		for _, x := range xs {
			if r.IntN(2) == 0 {
				out = append(out, x)
			}
		}
		return out
	}
	claims := map[string]any{"sub": "alice", "jti": fmt.Sprintf("j%d", r.IntN(3))}
	if r.IntN(4) > 0 {
		claims["department"] = pick("engineering", "sales", json.Number("1"))
	}
	if r.IntN(4) > 0 {
		claims["groups"] = subset("developers", "mcp-users", "admins", "readers")
	}
	if r.IntN(3) == 0 {
		claims["teams"] = subset("sre", "web")
	}
	token := map[string]any{"subject": "alice", "issuer": "https://idp.example.com", "scopes": subset("tools:read", "tools:call", "tools:admin", "openid"), "claims": claims}
	if c := pick("mcp-client", "other-client", "intruder", ""); c != "" {
		token["client_id"] = c
	}
	headers := map[string]any{"x-request-id": fmt.Sprintf("r%d", r.IntN(1000)), "x-tenant": pick("a", "b")}
	in := map[string]any{
		"request":  map[string]any{"method": pick("POST", "GET"), "host": "mcp.example.com", "path": pick("/mcp", "/mcp/x", "/other"), "headers": headers},
		"resource": map[string]any{"url": "https://mcp.example.com/mcp"},
	}
	switch r.IntN(20) {
	case 0: // no token
	case 1:
		in["token"] = "not an object"
	case 2:
		token["claims"] = []any{"groups", "admins"}
		in["token"] = token
	case 3:
		delete(token, "scopes")
		in["token"] = token
	default:
		in["token"] = token
	}
	switch r.IntN(6) {
	case 0: // no body
	case 1:
		in["mcp"] = map[string]any{"method": "tools/list", "id": json.Number("1")}
	case 2:
		in["mcp"] = map[string]any{"method": "resources/read", "id": json.Number("2"), "uri": "file:///x"}
	default:
		in["mcp"] = map[string]any{"method": "tools/call", "id": pick(json.Number("3"), "3"), "tool": pick("echo", "list_files", "admin_reset", "deploy", "get_x")}
	}
	return in
}

// TestDifferential checks that decisions through the cache equal those of a fresh uncached evaluation, and
// of the shipped policy as written before the cache (object.get over the bare input), for many generated
// inputs, each asked several times so that most answers after the first come from the cache.
func TestDifferential(t *testing.T) {
	ctx := context.Background()
	shipped := readFile(t, "../deploy/policies/authz.rego")
	readonly := readFile(t, "../deploy/examples/policies/readonly.rego")
	before := readFile(t, "testdata/before-cache/authz.rego")
	for _, tc := range []struct {
		name string
		data string
	}{
		{"shipped data", shippedData(t)},
		{"every feature and the read-only example", readonlyData},
		{"no data", "authorizer: {}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cached, err := policy.Load(ctx, []string{writePolicy(t, map[string]string{"authz.rego": shipped, "readonly.rego": readonly, "data.yaml": tc.data})}, policy.DefaultQuery)
			if err != nil {
				t.Fatal(err)
			}
			if off := cached.DecisionCacheOff(); off != "" {
				t.Fatalf("cache off: %s", off)
			}
			fresh := func(files map[string]string) *policy.Policy {
				p, err := policy.Load(ctx, []string{writePolicy(t, files)}, policy.DefaultQuery, policy.WithDecisionCache(-1))
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			uncached := fresh(map[string]string{"authz.rego": shipped, "readonly.rego": readonly, "data.yaml": tc.data})
			old := fresh(map[string]string{"authz.rego": before, "readonly.rego": readonly, "data.yaml": tc.data})

			r := rand.New(rand.NewPCG(1, 2))
			inputs := make([]ast.Value, 400)
			for i := range inputs {
				v, err := ast.InterfaceToValue(genInput(r))
				if err != nil {
					t.Fatal(err)
				}
				inputs[i] = v
			}
			var wg sync.WaitGroup
			for w := range 4 { // concurrent askers, for the race detector
				wg.Go(func() {
					for round := range 3 {
						for i := range inputs {
							in := inputs[(i*(w+1)+round)%len(inputs)]
							got, gotErr := cached.Evaluate(ctx, policy.Document(in))
							want, wantErr := uncached.Evaluate(ctx, policy.Document(in))
							oldD, oldErr := old.Evaluate(ctx, policy.Document(in))
							if (gotErr != nil) != (wantErr != nil) || !reflect.DeepEqual(got, want) {
								t.Errorf("input %v:\ncached   %+v, %v\nuncached %+v, %v", in, got, gotErr, want, wantErr)
								return
							}
							if (oldErr != nil) != (wantErr != nil) || !reflect.DeepEqual(oldD, want) {
								t.Errorf("input %v:\nrewritten policy %+v, %v\npolicy before    %+v, %v", in, want, wantErr, oldD, oldErr)
								return
							}
						}
					}
				})
			}
			wg.Wait()
			size, hits, misses := cacheStats(cached)
			t.Logf("%d decisions cached, %d hits, %d misses", size, hits, misses)
			if hits == 0 || size == 0 || size > len(inputs) {
				t.Fatalf("%d decisions cached, %d hits: the cache was not exercised", size, hits)
			}
		})
	}
}

// TestCacheKeysOnWhatThePolicyReads checks that a policy reading one request header keys its decisions on
// that header (two requests differing only there get their own decisions, in any order), and that requests
// differing only in what the policy does not read share one decision.
func TestCacheKeysOnWhatThePolicyReads(t *testing.T) {
	ctx := context.Background()
	dir := writePolicy(t, map[string]string{"p.rego": `package mcp.authz

import rego.v1

default tenant := "none"

tenant := input.request.headers["x-tenant"]

decision := {"allow": tenant == "a", "reason": tenant}
`})
	p, err := policy.Load(ctx, []string{dir}, policy.DefaultQuery)
	if err != nil {
		t.Fatal(err)
	}
	req := func(tenant, path string) ast.Value {
		h := map[string]any{"x-request-id": path}
		if tenant != "" {
			h["x-tenant"] = tenant
		}
		v, err := ast.InterfaceToValue(map[string]any{"request": map[string]any{"path": path, "headers": h}})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for i, tc := range []struct {
		tenant, path string
		allow        bool
		reason       string
		hits         uint64
	}{
		{"a", "/1", true, "a", 0},
		{"b", "/1", false, "b", 0},
		{"a", "/2", true, "a", 1}, // only the path differs from the first: a hit
		{"", "/1", false, "none", 1},
		{"b", "/3", false, "b", 2},
		{"", "/4", false, "none", 3},
	} {
		d, err := p.Evaluate(ctx, policy.Document(req(tc.tenant, tc.path)))
		if err != nil || d.Allow != tc.allow || d.Reason != tc.reason {
			t.Fatalf("request %d (x-tenant %q): %+v, %v; want allow %v, reason %q", i, tc.tenant, d, err, tc.allow, tc.reason)
		}
		if _, hits, _ := cacheStats(p); hits != tc.hits {
			t.Fatalf("request %d: %d hits, want %d", i, hits, tc.hits)
		}
	}
}

// TestCacheSeparatesNumberSpellings checks that inputs equal for ast.Compare but told apart by the policy
// (1 and 1.0 through sprintf) get their own decisions.
func TestCacheSeparatesNumberSpellings(t *testing.T) {
	ctx := context.Background()
	dir := writePolicy(t, map[string]string{"p.rego": "package mcp.authz\n\nimport rego.v1\n\ndecision := {\"allow\": true, \"reason\": sprintf(\"%v\", [input.n])}\n"})
	p, err := policy.Load(ctx, []string{dir}, policy.DefaultQuery)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"1", "1.0", "1", "1e0"} {
		v, err := ast.InterfaceToValue(map[string]any{"n": json.Number(n)})
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.Evaluate(ctx, policy.Document(v))
		if err != nil {
			t.Fatal(err)
		}
		want, err := p.Evaluate(ctx, policy.Map(map[string]any{"n": json.Number(n)}))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("n = %s: cached %+v, evaluated %+v (%v)", n, got, want, err)
		}
	}
}

// TestCacheOffOrErrors checks that a generation calling a non-deterministic built-in caches nothing, and
// that errors and missing decisions are never cached.
func TestCacheOffOrErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, rego string
		off        bool
		wantErr    bool
	}{
		{"time.now_ns", "decision := {\"allow\": time.now_ns() > input.t, \"reason\": \"clock\"}\n", true, false},
		{"conflict", "decision := {\"allow\": true} if input.a == 1\n\ndecision := {\"allow\": false} if input.b == 1\n", false, true},
		{"no decision", "decision := {\"allow\": true} if input.a == 2\n", false, true},
		{"malformed decision", "decision := {\"allow\": \"yes\"} if input.a == 1\n", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := policy.Load(ctx, []string{writePolicy(t, map[string]string{"p.rego": "package mcp.authz\n\nimport rego.v1\n\n" + tc.rego})}, policy.DefaultQuery)
			if err != nil {
				t.Fatal(err)
			}
			if off := p.DecisionCacheOff() != ""; off != tc.off {
				t.Fatalf("cache off %v (%q), want %v", off, p.DecisionCacheOff(), tc.off)
			}
			in, err := ast.InterfaceToValue(map[string]any{"a": json.Number("1"), "b": json.Number("1"), "t": json.Number("0")})
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if _, err := p.Evaluate(ctx, policy.Document(in)); (err != nil) != tc.wantErr {
					t.Fatalf("error %v, want one: %v", err, tc.wantErr)
				}
			}
			if size, hits, _ := cacheStats(p); size != 0 || hits != 0 {
				t.Fatalf("%d decisions cached, %d hits; want none", size, hits)
			}
		})
	}
}

// TestCacheBounded checks that the cache never holds more than its size.
func TestCacheBounded(t *testing.T) {
	ctx := context.Background()
	dir := writePolicy(t, map[string]string{"p.rego": "package mcp.authz\n\nimport rego.v1\n\ndecision := {\"allow\": true, \"reason\": input.r}\n"})
	p, err := policy.Load(ctx, []string{dir}, policy.DefaultQuery, policy.WithDecisionCache(8))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		r := fmt.Sprintf("r%d", i%20)
		d, err := p.Evaluate(ctx, policy.Document(ast.NewObject(ast.Item(ast.StringTerm("r"), ast.StringTerm(r)))))
		if err != nil || d.Reason != r {
			t.Fatalf("%+v, %v; want reason %s", d, err, r)
		}
		if size, _, _ := cacheStats(p); size > 8 {
			t.Fatalf("%d decisions cached, more than 8", size)
		}
	}
}

// TestCachedDecisionNotShared checks that a caller modifying a decision's headers or scopes does not change
// what the cache answers next.
func TestCachedDecisionNotShared(t *testing.T) {
	ctx := context.Background()
	dir := writePolicy(t, map[string]string{"p.rego": "package mcp.authz\n\nimport rego.v1\n\ndecision := {\"allow\": false, \"required_scopes\": [\"a\"], \"headers\": {\"x\": \"1\"}}\n"})
	p, err := policy.Load(ctx, []string{dir}, policy.DefaultQuery)
	if err != nil {
		t.Fatal(err)
	}
	in := ast.NewObject()
	for range 3 {
		d, err := p.Evaluate(ctx, policy.Document(in))
		if err != nil || !reflect.DeepEqual(d.RequiredScopes, []string{"a"}) || d.Headers["x"] != "1" {
			t.Fatalf("%+v, %v", d, err)
		}
		d.RequiredScopes[0], d.Headers["x"] = "changed", "changed"
	}
	if _, hits, _ := cacheStats(p); hits != 2 {
		t.Fatalf("%d hits, want 2", hits)
	}
}

// fakeInput is a policy.Input over a document, counting the documents built; lookups of the paths in
// unknown are not known.
type fakeInput struct {
	doc     *ast.Term
	unknown map[string]bool
	built   int
}

func (f *fakeInput) Value(policy.Reads) (ast.Value, error) { f.built++; return f.doc.Value, nil }

func (f *fakeInput) Lookup(path ast.Ref, _ policy.Reads) (*ast.Term, bool) {
	if f.unknown[path.String()] {
		return nil, false
	}
	return policy.Descend(f.doc, path)
}

// TestEvaluateLazyInput checks that a decision cache hit builds no document, that a lookup that is not known
// (or that meets a set) makes Evaluate build and project the document, and that every answer is the
// uncached one.
func TestEvaluateLazyInput(t *testing.T) {
	ctx := context.Background()
	dir := writePolicy(t, map[string]string{"p.rego": `package mcp.authz

import rego.v1

default decision := {"allow": false, "reason": "no"}

decision := {"allow": true, "reason": "ok"} if {
	input.request.method == "POST"
	input.mcp.tool
}
`})
	p, err := policy.Load(ctx, []string{dir}, policy.DefaultQuery)
	if err != nil {
		t.Fatal(err)
	}
	doc := func(method string) *ast.Term {
		return ast.MustParseTerm(fmt.Sprintf(`{"request": {"method": %q, "headers": {"a": "b"}}, "mcp": {"tool": "echo"}}`, method))
	}
	tests := []struct {
		name      string
		in        *fakeInput
		wantAllow bool
		builds    int // documents built over three evaluations
	}{
		{"lookups known: built on the miss only", &fakeInput{doc: doc("POST")}, true, 1},
		{"another key: its own miss", &fakeInput{doc: doc("GET")}, false, 1},
		{"a lookup not known: built every time", &fakeInput{doc: doc("POST"), unknown: map[string]bool{"mcp.tool": true}}, true, 3},
		{"a set on a path: built every time", &fakeInput{doc: ast.MustParseTerm(`{"request": {"method": "POST"}, "mcp": {"tool": {"x"}}}`)}, true, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 3 {
				d, err := p.Evaluate(ctx, tc.in)
				if err != nil || d.Allow != tc.wantAllow {
					t.Fatalf("Evaluate = %+v, %v; want allow %v", d, err, tc.wantAllow)
				}
			}
			if tc.in.built != tc.builds {
				t.Errorf("%d documents built, want %d", tc.in.built, tc.builds)
			}
		})
	}
}

// cacheStats is p.CacheStats as the tests compare it: decisions held, hits, misses.
func cacheStats(p *policy.Policy) (size int, hits, misses uint64) {
	st := p.CacheStats()
	return st.Decisions, st.Hits, st.Misses
}
