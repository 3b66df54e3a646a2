package policy_test

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/mcp-authz/mcp-authz/policy"
)

// TestTokenClaims checks how a generation finds the claims its input holds: the token_claims rule of the
// decision's package, evaluated on data alone, plus the claims its modules read by a constant name; every
// claim without the rule; a start-up error naming the rule when its value cannot be honoured.
func TestTokenClaims(t *testing.T) {
	const head = "package mcp.authz\n\nimport rego.v1\n\ndefault decision := {\"allow\": true}\n\n"
	tests := []struct {
		name    string
		rego    string
		data    string
		want    []string // nil: every claim
		wantErr string
	}{
		{name: "no rule: every claim", rego: `deny if input.token.claims[data.claim] == "x"`, data: `{"claim": "team"}`},
		{name: "set from data", rego: "token_claims contains c if some c in data.claims\n", data: `{"claims": ["team", "groups"]}`, want: []string{"groups", "team"}},
		{name: "empty set", rego: "token_claims contains c if some c in data.claims\n", data: `{"claims": []}`, want: []string{}},
		{name: "array", rego: `token_claims := ["b", "a", "b"]`, want: []string{"a", "b"}},
		{name: "constant reads added", rego: "token_claims := {\"team\"}\n\nx if input.token.claims.department == \"eng\"\n\ny if input.token.claims[\"level\"].n > 1\n", want: []string{"department", "level", "team"}},
		{name: "constant reads without the rule: every claim", rego: `x if input.token.claims.department == "eng"`},
		{name: "undefined without input", rego: `token_claims := {"a"} if input.token.subject == "alice"`, wantErr: "data.mcp.authz.token_claims is undefined without input"},
		{name: "not a collection", rego: `token_claims := "groups"`, wantErr: "data.mcp.authz.token_claims is string, not a set of claim names"},
		{name: "not strings", rego: `token_claims := {"groups", 1}`, wantErr: "data.mcp.authz.token_claims holds 1, not a claim name"},
		{name: "evaluation error", rego: "token_claims := {\"a\"} if data.x\n\ntoken_claims := {\"b\"} if data.x\n", data: `{"x": true}`, wantErr: "evaluate data.mcp.authz.token_claims"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"p.rego": head + tc.rego + "\n"}
			if tc.data != "" {
				files["data.json"] = tc.data
			}
			p, err := policy.Load(t.Context(), []string{writePolicy(t, files)}, policy.DefaultQuery)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			claims := p.Reads().Claims()
			if got := claims.Names(); (claims == nil) != (tc.want == nil) || claims != nil && !slices.Equal(got, tc.want) {
				t.Errorf("claims = %v (nil %v), want %v", got, claims == nil, tc.want)
			}
		})
	}
}

// TestTokenClaimsFilter checks that a policy declaring its claims sees no other claim, whatever the input
// builder (Map, Explain), and that its decisions are cached across tokens that differ only in the claims
// it does not read.
func TestTokenClaimsFilter(t *testing.T) {
	dir := writePolicy(t, map[string]string{"p.rego": `package mcp.authz

import rego.v1

token_claims := {"team"}

decision := {"allow": true, "reason": json.marshal(object.keys(input.token.claims))}
`})
	p, err := policy.Load(t.Context(), []string{dir}, policy.DefaultQuery)
	if err != nil {
		t.Fatal(err)
	}
	input := func(sub string) map[string]any {
		return map[string]any{"token": map[string]any{"subject": sub, "claims": map[string]any{"sub": sub, "team": "a", "jti": sub + "-1"}}}
	}
	for _, sub := range []string{"alice", "bob"} {
		d, err := p.Evaluate(t.Context(), policy.Map(input(sub)))
		if err != nil {
			t.Fatal(err)
		}
		if d.Reason != `["team"]` {
			t.Errorf("%s: the policy saw claims %s, want only team", sub, d.Reason)
		}
		e, err := p.Explain(t.Context(), input(sub), "", false)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Value.(map[string]any)["reason"]; got != `["team"]` {
			t.Errorf("%s: Explain saw claims %v, want only team", sub, got)
		}
	}
	if size, hits, _ := cacheStats(p); size != 1 || hits != 1 {
		t.Errorf("decision cache holds %d decisions after %d hits, want 1 decision shared by alice and bob", size, hits)
	}
	if in := input("carol"); in["token"].(map[string]any)["claims"].(map[string]any)["jti"] != "carol-1" {
		t.Error("the caller's document was modified")
	}
}

// TestTokenClaimsWholeTokenWarning checks that a policy declaring token_claims but reading input.token as
// one value (through which it may read claims the analysis cannot name) is loaded with a warning, and one
// reading only members is not.
func TestTokenClaimsWholeTokenWarning(t *testing.T) {
	const head = "package mcp.authz\n\nimport rego.v1\n\ntoken_claims := {\"team\"}\n\n"
	tests := []struct {
		name, rego string
		warn       bool
	}{
		{"members only", `decision := {"allow": input.token.claims.team == "a"}`, false},
		{"whole token", "decision := {\"allow\": t.claims.level == \"x\"} if t := input.token\n", true},
		{"whole input", "decision := {\"allow\": true} if count(input) > 0\n", true},
		{"no declaration", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := head + tc.rego
			if tc.rego == "" {
				body = "package mcp.authz\n\nimport rego.v1\n\ndecision := {\"allow\": t.claims.level == \"x\"} if t := input.token\n"
			}
			var buf bytes.Buffer
			_, err := policy.Load(t.Context(), []string{writePolicy(t, map[string]string{"p.rego": body})}, policy.DefaultQuery,
				policy.WithLogger(slog.New(slog.NewTextHandler(&buf, nil))))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(buf.String(), "may read input.token whole"); got != tc.warn {
				t.Errorf("warning %v, want %v; log: %s", got, tc.warn, buf.String())
			}
		})
	}
}

// TestTokenClaimsUndeclaredReads checks that a file of its own reading claims by a variable name, directly
// or through a function that does (the shipped policy's claim), is reported at load: with token_claims
// declared elsewhere, those claims would be absent and a denial testing them would not deny.
func TestTokenClaimsUndeclaredReads(t *testing.T) {
	shipped := readFile(t, "../deploy/policies/authz.rego")
	tests := []struct {
		name, extra string
		warn        string // "" for no warning
	}{
		{"shipped alone", "", ""},
		{"constant read", "denials contains {\"rank\": 70, \"reason\": \"x\"} if input.token.claims.department == \"sales\"\n", ""},
		{"direct variable read", "denials contains {\"rank\": 70, \"reason\": \"x\"} if {\n\tsome c in object.get(authorizer, \"banned\", [])\n\tinput.token.claims[c.claim] == c.value\n}\n", "extra.rego:7"},
		{"through claim()", "denials contains {\"rank\": 70, \"reason\": \"x\"} if {\n\tsome c in object.get(authorizer, \"banned\", [])\n\tclaim(c.claim, null) == c.value\n}\n", "extra.rego:7"},
		{"declared in the same file", "token_claims contains c.claim if some c in object.get(authorizer, \"banned\", [])\n\ndenials contains {\"rank\": 70, \"reason\": \"x\"} if {\n\tsome c in object.get(authorizer, \"banned\", [])\n\tclaim(c.claim, null) == c.value\n}\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"authz.rego": shipped}
			if tc.extra != "" {
				files["extra.rego"] = "package mcp.authz\n\nimport rego.v1\n\n" + tc.extra
			}
			var buf bytes.Buffer
			if _, err := policy.Load(t.Context(), []string{writePolicy(t, files)}, policy.DefaultQuery,
				policy.WithLogger(slog.New(slog.NewTextHandler(&buf, nil)))); err != nil {
				t.Fatal(err)
			}
			got := buf.String()
			warned := strings.Contains(got, "reads claims by a variable name outside")
			if warned != (tc.warn != "") || tc.warn != "" && !strings.Contains(got, tc.warn) {
				t.Errorf("log %q, want a warning at %q", got, tc.warn)
			}
		})
	}
}
