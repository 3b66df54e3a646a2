package policy

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/mcp-authz/mcp-authz/config"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/types"
)

// compileForTest compiles Rego modules (name -> source) as Load does.
func compileForTest(t *testing.T, modules map[string]string) *ast.Compiler {
	t.Helper()
	parsed := map[string]*ast.Module{}
	for name, src := range modules {
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		parsed[name] = m
	}
	c := ast.NewCompiler()
	if c.Compile(parsed); c.Failed() {
		t.Fatal(c.Errors)
	}
	return c
}

// TestAnalyzeInput checks which input paths the analysis finds, and that each construct through which a
// decision could depend on more than those paths turns the cache off.
func TestAnalyzeInput(t *testing.T) {
	shipped, err := os.ReadFile("../deploy/policies/authz.rego")
	if err != nil {
		t.Fatal(err)
	}
	readonly, err := os.ReadFile("../deploy/examples/policies/readonly.rego")
	if err != nil {
		t.Fatal(err)
	}
	const head = "package mcp.authz\n\nimport rego.v1\n\n"
	tests := []struct {
		name    string
		modules map[string]string
		query   string
		paths   []string // the paths found, when the cache is on
		off     string   // a part of the reason, when it is off
	}{
		{name: "shipped policy", modules: map[string]string{"authz.rego": string(shipped)},
			paths: []string{"input.mcp.method", "input.mcp.tool", "input.request.method", "input.token.claims", "input.token.client_id", "input.token.scopes"}},
		{name: "shipped policy and the read-only example", modules: map[string]string{"authz.rego": string(shipped), "readonly.rego": string(readonly)},
			paths: []string{"input.mcp.method", "input.mcp.tool", "input.request.method", "input.token.claims", "input.token.client_id", "input.token.scopes"}},
		{name: "constant prefix before a variable key", modules: map[string]string{"p.rego": head + `decision := {"allow": true} if { some c in data.cs; input.token.claims[c.claim] == c.value }`},
			paths: []string{"input.token.claims"}},
		{name: "header read with a constant key", modules: map[string]string{"p.rego": head + `decision := {"allow": input.request.headers["x-tenant"] == "a"}`},
			paths: []string{`input.request.headers["x-tenant"]`}},
		{name: "shorter path covers longer ones", modules: map[string]string{"p.rego": head + "decision := {\"allow\": true} if {\n input.mcp.tool == \"x\"\n input.mcp\n input.token.scopes[0] == \"a\"\n}"},
			paths: []string{"input.mcp", "input.token.scopes"}},
		{name: "input inside a variable key", modules: map[string]string{"p.rego": head + `decision := {"allow": data.allowed[input.token.subject]}`},
			paths: []string{"input.token.subject"}},
		{name: "input read inside the key of an input ref", modules: map[string]string{"p.rego": head + `decision := {"allow": true}`}, query: "data.mcp.authz.decision; input.token.claims[input.mcp.tool] == 1",
			paths: []string{"input.mcp.tool", "input.token.claims"}},
		{name: "input in the query", modules: map[string]string{"p.rego": head + `decision := {"allow": true}`}, query: "data.mcp.authz.decision; input.x.y == 1",
			paths: []string{"input.x.y"}},
		{name: "object.get over bare input", modules: map[string]string{"p.rego": head + `decision := {"allow": object.get(input, ["token", "scopes"], []) == []}`}, off: "bare input"},
		{name: "walk over bare input", modules: map[string]string{"p.rego": head + `decision := {"allow": count([x | walk(input, x)]) > 0}`}, off: "bare input"},
		{name: "bare input assigned", modules: map[string]string{"p.rego": head + "decision := {\"allow\": true} if {\n x := input\n x.token\n}"}, off: "bare input"},
		{name: "bare input in the query", modules: map[string]string{"p.rego": head + `decision := {"allow": true}`}, query: "x := input", off: "bare input"},
		{name: "variable key first", modules: map[string]string{"p.rego": head + "decision := {\"allow\": true} if {\n some k\n input[k] == 1\n}"}, off: "non-constant key"},
		{name: "number key first", modules: map[string]string{"p.rego": head + `decision := {"allow": input[0] == 1}`}, off: "non-constant key"},
		{name: "with on input", modules: map[string]string{"p.rego": head + "q if input.a\n\ndecision := {\"allow\": true} if q with input.a as 1"}, off: "with modifier"},
		{name: "with on data", modules: map[string]string{"p.rego": head + "q if data.a\n\ndecision := {\"allow\": true} if q with data.a as 1"}, off: "with modifier"},
		{name: "time.now_ns", modules: map[string]string{"p.rego": head + `decision := {"allow": time.now_ns() > input.token.claims.exp}`}, off: "non-deterministic built-in time.now_ns"},
		{name: "http.send", modules: map[string]string{"p.rego": head + `decision := {"allow": http.send({"method": "GET", "url": "http://127.0.0.1:1"}).status_code == 200}`}, off: "http.send"},
		{name: "rand.intn", modules: map[string]string{"p.rego": head + `decision := {"allow": rand.intn("x", 2) == 0}`}, off: "rand.intn"},
		{name: "uuid.rfc4122", modules: map[string]string{"p.rego": head + `decision := {"allow": uuid.rfc4122("x") != ""}`}, off: "uuid.rfc4122"},
		{name: "net.lookup_ip_addr", modules: map[string]string{"p.rego": head + `decision := {"allow": count(net.lookup_ip_addr("localhost")) > 0}`}, off: "net.lookup_ip_addr"},
		{name: "opa.runtime", modules: map[string]string{"p.rego": head + `decision := {"allow": opa.runtime().version != ""}`}, off: "opa.runtime"},
		{name: "io.jwt.decode_verify", modules: map[string]string{"p.rego": head + `decision := {"allow": io.jwt.decode_verify(input.t, {"secret": "s"})[0]}`}, off: "io.jwt.decode_verify"},
		{name: "x509 verification reads the clock", modules: map[string]string{"p.rego": head + `decision := {"allow": crypto.x509.parse_and_verify_certificates(input.c)[0]}`}, off: "crypto.x509.parse_and_verify_certificates"},
		{name: "non-deterministic call in a helper rule", modules: map[string]string{"p.rego": head + "now := time.now_ns()\n\ndecision := {\"allow\": now > 0}"}, off: "time.now_ns"},
		{name: "non-deterministic call in another module", modules: map[string]string{"p.rego": head + `decision := {"allow": true}`, "q.rego": "package other\n\nimport rego.v1\n\nt := time.now_ns()\n"}, off: "time.now_ns"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			query := tc.query
			if query == "" {
				query = DefaultQuery
			}
			got := analyzeInput(compileForTest(t, tc.modules), query)
			if tc.off != "" {
				if !strings.Contains(got.reason, tc.off) {
					t.Fatalf("reason %q, paths %v; want the cache off because of %q", got.reason, got.paths, tc.off)
				}
				return
			}
			if got.reason != "" {
				t.Fatalf("cache off: %s; want paths %v", got.reason, tc.paths)
			}
			var paths []string
			for _, p := range got.paths {
				paths = append(paths, p.String())
			}
			if !slices.Equal(paths, tc.paths) {
				t.Fatalf("paths %q, want %q", paths, tc.paths)
			}
		})
	}
}

// TestAnalyzeUnknownFunction checks that a function the compiler knows but the analysis cannot vouch for
// (a custom built-in) turns the cache off.
func TestAnalyzeUnknownFunction(t *testing.T) {
	custom := &ast.Builtin{Name: "custom.lookup", Decl: types.NewFunction(types.Args(types.S), types.S)}
	m, err := ast.ParseModuleWithOpts("p.rego", "package mcp.authz\n\nimport rego.v1\n\ndecision := {\"allow\": custom.lookup(input.a) == \"x\"}", ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		t.Fatal(err)
	}
	caps := ast.CapabilitiesForThisVersion()
	caps.Builtins = append(caps.Builtins, custom)
	c := ast.NewCompiler().WithCapabilities(caps)
	if c.Compile(map[string]*ast.Module{"p.rego": m}); c.Failed() {
		t.Fatal(c.Errors)
	}
	// The compiler's capabilities know custom.lookup, so the analysis sees it as a deterministic built-in;
	// this run checks that a compiler without it (as Load builds one) makes the analysis refuse it.
	analysis := analyzeInput(c, DefaultQuery)
	if analysis.reason != "" {
		t.Fatalf("a declared deterministic built-in turned the cache off: %s", analysis.reason)
	}
	c.Capabilities().Builtins = slices.DeleteFunc(slices.Clone(c.Capabilities().Builtins), func(b *ast.Builtin) bool { return b.Name == "custom.lookup" })
	if got := analyzeInput(c, DefaultQuery); !strings.Contains(got.reason, "not a built-in") {
		t.Fatalf("reason %q, want the unknown function to turn the cache off", got.reason)
	}
}

// TestLoadedPolicyCacheState checks, end to end through Load, that the shipped policies keep the cache on
// and that a size of 0 turns it off.
func TestLoadedPolicyCacheState(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		paths []string
		opts  []Option
		off   string
	}{
		{"shipped", []string{"../deploy/policies"}, nil, ""},
		{"shipped and example", []string{"../deploy/policies", "../deploy/examples/policies"}, nil, ""},
		{"size 0", []string{"../deploy/policies"}, []Option{WithDecisionCache(-1)}, "configuration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Load(ctx, tc.paths, DefaultQuery, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.DecisionCacheOff(); (tc.off == "") != (got == "") || !strings.Contains(got, tc.off) {
				t.Fatalf("DecisionCacheOff() = %q, want %q", got, tc.off)
			}
			if (p.cache != nil) != (tc.off == "") {
				t.Fatalf("cache %v with reason %q", p.cache != nil, p.DecisionCacheOff())
			}
		})
	}
}

// TestReloadStartsAnEmptyCache checks that a new generation (a reload) never answers with the decisions of
// the previous one, and that LiveOptions.DecisionCacheSize sets the size of each generation's cache.
func TestReloadStartsAnEmptyCache(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	file := dir + "/authz.rego"
	write := func(reason string) {
		t.Helper()
		body := "package mcp.authz\n\nimport rego.v1\n\ndecision := {\"allow\": input.a == 1, \"reason\": \"" + reason + "\"}\n"
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("one")
	for _, tc := range []struct {
		name string
		size int
		want int // the size of each generation's cache; 0: off
	}{
		{"default size", 0, DefaultDecisionCacheSize},
		{"size 3", 3, 3},
		{"off", -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			write("one")
			l, err := NewLive(ctx, config.Policy{Paths: []string{dir}}, LiveOptions{DecisionCacheSize: tc.size})
			if err != nil {
				t.Fatal(err)
			}
			in := ast.NewObject(ast.Item(ast.StringTerm("a"), ast.IntNumberTerm(1)))
			for _, reason := range []string{"one", "two", "three"} {
				if reason != "one" {
					write(reason)
					if err := l.files.reload(ctx, "change"); err != nil {
						t.Fatal(err)
					}
				}
				for range 2 { // the second answer comes from the cache
					d, err := l.Evaluate(ctx, valueInput{ast.NewTerm(in)})
					if err != nil || !d.Allow || d.Reason != reason {
						t.Fatalf("%+v, %v; want the decision of generation %q", d, err, reason)
					}
				}
				p := l.current.Load()
				switch {
				case tc.want == 0 && p.cache != nil:
					t.Fatal("cache on, want it off")
				case tc.want > 0 && (p.cache == nil || p.cache.max != tc.want || p.cache.len() != 1 || p.cache.hits.Load() != 1):
					t.Fatalf("cache %+v, want size %d holding one decision, hit once", p.cache, tc.want)
				}
			}
		})
	}
}

// TestSameKey checks the comparison a cache hit rests on, which the differential tests reach only through
// hash collisions: a path absent from one input and present in the other (even as null or an empty
// object) is a different key; values must be the same JSON, spelled alike.
func TestSameKey(t *testing.T) {
	c := newDecisionCache([]ast.Ref{ast.MustParseRef("input.a"), ast.MustParseRef("input.b")}, 10, nil)
	key := func(doc string) ast.Value {
		k, ok := c.key(Document(ast.MustParseTerm(doc).Value), Reads{})
		if !ok {
			t.Fatalf("no key for %s", doc)
		}
		return k
	}
	tests := []struct {
		x, y string
		same bool
	}{
		{`{}`, `{}`, true},
		{`{"a": 1}`, `{"a": 1, "c": 2}`, true},
		{`{"a": {"x": [1, "s"]}}`, `{"a": {"x": [1, "s"]}}`, true},
		{`{}`, `{"a": null}`, false},
		{`{"b": {}}`, `{}`, false},
		{`{"a": []}`, `{}`, false},
		{`{"a": 1}`, `{"a": 1.0}`, false},
		{`{"a": "1"}`, `{"a": 1}`, false},
		{`{"a": 1}`, `{"b": 1}`, false},
		{`{"a": {"x": 1}}`, `{"a": {"x": 1, "y": 2}}`, false},
	}
	for _, tc := range tests {
		for _, order := range [][2]string{{tc.x, tc.y}, {tc.y, tc.x}} {
			if got := c.sameKey(key(order[0]), key(order[1])); got != tc.same {
				t.Errorf("sameKey(%s, %s) = %v, want %v", order[0], order[1], got, tc.same)
			}
		}
	}
}

// valueInput is an Input over a built document.
type valueInput struct{ doc *ast.Term }

func (v valueInput) Value(Reads) (ast.Value, error) { return v.doc.Value, nil }

func (v valueInput) Lookup(path ast.Ref, _ Reads) (*ast.Term, bool) { return Descend(v.doc, path) }
