package policy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/policy"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/rego"
)

// everyFeature is policy data switching on every check of the shipped policy.
const everyFeature = `
authorizer:
  allowed_clients: [mcp-client, other-client]
  allowed_scopes: [tools:read, tools:call]
  custom_claims:
    - {claim: department, operator: EQUALS, value: engineering}
    - {claim: groups, operator: CONTAINS, value: mcp-users}
    - {claim: groups, operator: CONTAINS_ANY, values: [admins, developers]}
  methods:
    tools/call: {required_scopes: [tools:call]}
    resources/read: {groups: [readers]}
  tools:
    admin_reset: {required_scopes: [tools:admin], groups: [admins]}
    deploy: {groups: [sre], groups_claim: teams}
`

// extraRules is a user's own rule file beside the shipped policy, as the README allows; its deadline claim
// is compared with the clock at evaluation time.
const extraRules = `package mcp.authz

import rego.v1

denials contains {"rank": 5, "reason": "session deadline passed"} if {
	time.now_ns() > input.token.claims.deadline_ns
}
`

// TestPreparedEqualsPlain checks that the query Load prepares (partially evaluated against the data) decides
// every input as the plain query over the same modules and data does.
func TestPreparedEqualsPlain(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		data  string
		input map[string]any
	}{
		{"shipped data: allowed tool", shippedData(t), benchInput("echo")},
		{"shipped data: restricted tool", shippedData(t), benchInput("admin_reset")},
		{"all checks: allowed tool", everyFeature, benchInput("echo")},
		{"all checks: restricted tool", everyFeature, benchInput("admin_reset")},
		{"all checks: restricted tool with scope, wrong group", everyFeature, with(benchInput("admin_reset"), []string{"token", "scopes"}, []any{"tools:call", "tools:admin"})},
		{"all checks: restricted tool, scope and group", everyFeature, with(with(benchInput("admin_reset"), []string{"token", "scopes"}, []any{"tools:call", "tools:admin"}), []string{"token", "claims", "groups"}, []any{"mcp-users", "admins"})},
		{"all checks: tool with its own groups claim", everyFeature, with(benchInput("deploy"), []string{"token", "claims", "teams"}, []any{"sre"})},
		{"all checks: client not allowed", everyFeature, with(benchInput("echo"), []string{"token", "client_id"}, "intruder")},
		{"all checks: no allowed scope", everyFeature, with(benchInput("echo"), []string{"token", "scopes"}, []any{"openid"})},
		{"all checks: custom claim differs", everyFeature, with(benchInput("echo"), []string{"token", "claims", "department"}, "sales")},
		{"all checks: groups claim missing", everyFeature, with(benchInput("echo"), []string{"token", "claims", "groups"}, nil)},
		{"all checks: method rule", everyFeature, with(benchInput("echo"), []string{"mcp"}, map[string]any{"method": "resources/read", "uri": "file:///x"})},
		{"all checks: POST without body", everyFeature, with(benchInput("echo"), []string{"mcp"}, nil)},
		{"all checks: GET without body", everyFeature, with(with(benchInput("echo"), []string{"mcp"}, nil), []string{"request", "method"}, "GET")},
		{"all checks: no client, no scopes", everyFeature, with(with(benchInput("echo"), []string{"token", "client_id"}, nil), []string{"token", "scopes"}, nil)},
		{"empty input", everyFeature, map[string]any{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := policyDir(t, tc.data)
			p, err := policy.Load(ctx, []string{dir}, policy.DefaultQuery)
			if err != nil {
				t.Fatal(err)
			}
			want, wantErr := plainEvaluate(t, dir, tc.input)
			got, err := p.Evaluate(ctx, policy.Map(tc.input))
			if (err != nil) != (wantErr != nil) || !reflect.DeepEqual(got, want) {
				t.Fatalf("prepared: %+v, %v; plain: %+v, %v", got, err, want, wantErr)
			}
			v, verr := ast.InterfaceToValue(tc.input)
			if verr != nil {
				t.Fatal(verr)
			}
			gotV, err := p.Evaluate(ctx, policy.Document(v))
			if (err != nil) != (wantErr != nil) || !reflect.DeepEqual(gotV, want) {
				t.Fatalf("Document: %+v, %v; plain: %+v, %v", gotV, err, want, wantErr)
			}
		})
	}
}

// TestPreparedKeepsTheClock checks that a rule reading the clock is evaluated on every call, not once when
// the query is prepared.
func TestPreparedKeepsTheClock(t *testing.T) {
	ctx := context.Background()
	deadline := time.Now().Add(300 * time.Millisecond)
	p, err := policy.Load(ctx, []string{policyDir(t, shippedData(t))}, policy.DefaultQuery)
	if err != nil {
		t.Fatal(err)
	}
	in := with(benchInput("echo"), []string{"token", "claims", "deadline_ns"}, json.Number(strconv.FormatInt(deadline.UnixNano(), 10)))
	for _, tc := range []struct {
		name  string
		allow bool
	}{
		{"before the deadline", true},
		{"after the deadline", false},
	} {
		if !tc.allow {
			time.Sleep(time.Until(deadline) + 10*time.Millisecond)
		} else if time.Until(deadline) < 100*time.Millisecond {
			t.Skip("machine too slow to evaluate before the deadline")
		}
		d, err := p.Evaluate(ctx, policy.Map(in))
		if err != nil || d.Allow != tc.allow {
			t.Errorf("%s: %+v, %v; want allow=%v", tc.name, d, err, tc.allow)
		}
	}
}

func shippedData(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../deploy/policies/data.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// policyDir writes the shipped policy, data and extraRules into a temporary folder.
func policyDir(t *testing.T, data string) string {
	t.Helper()
	dir := t.TempDir()
	rego, err := os.ReadFile("../deploy/policies/authz.rego")
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"authz.rego": string(rego), "data.yaml": data, "extra.rego": extraRules} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// plainEvaluate evaluates the decision over the modules and data in dir with a query prepared as written.
func plainEvaluate(t *testing.T, dir string, input map[string]any) (policy.Decision, error) {
	t.Helper()
	ctx := context.Background()
	res, err := loader.NewFileLoader().WithRegoVersion(ast.RegoV1).All([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	c, err := res.Compiler()
	if err != nil {
		t.Fatal(err)
	}
	st, err := res.Store()
	if err != nil {
		t.Fatal(err)
	}
	pq, err := rego.New(rego.Query(policy.DefaultQuery), rego.Compiler(c), rego.Store(st)).PrepareForEval(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pq.Eval(ctx, rego.EvalInput(input))
	if err != nil {
		return policy.Decision{}, err
	}
	if len(rs) == 0 {
		return policy.Decision{}, policy.ErrNoDecision
	}
	return policy.DecodeForTest(rs[0].Expressions[0].Value)
}

// with returns a deep copy of doc with the value at path set (nil removes it).
func with(doc map[string]any, path []string, v any) map[string]any {
	b, _ := json.Marshal(doc)
	var out map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.Decode(&out)
	m := out
	for _, k := range path[:len(path)-1] {
		m = m[k].(map[string]any)
	}
	if v == nil {
		delete(m, path[len(path)-1])
	} else {
		m[path[len(path)-1]] = v
	}
	return out
}
