package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// shipped is the folder of the shipped policies, from this package's folder.
const shipped = "../../deploy/policies"

// policyFixture writes files into a temporary folder and returns it.
func policyFixture(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const (
	okRego     = "package mcp.authz\n\nimport rego.v1\n\ndecision := {\"allow\": input.ok == true, \"reason\": \"fixture\"}\n"
	okTest     = "package mcp.authz_test\n\nimport rego.v1\n\nimport data.mcp.authz\n\ntest_ok if authz.decision.allow with input as {\"ok\": true}\n"
	badTest    = "package mcp.authz_test\n\nimport rego.v1\n\nimport data.mcp.authz\n\ntest_wrong if authz.decision.allow with input as {\"ok\": false}\n"
	brokenRego = "package mcp.authz\n\nimport rego.v1\n\ndecision := {\"allow\": x}\n"
)

type cliCase struct {
	name      string
	args      []string
	code      int
	stdout    []string // substrings of stdout
	stderr    []string // substrings of stderr
	notStdout []string
}

func runCases(t *testing.T, cases []cliCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout.String(), stderr.String())
			}
			for _, want := range tc.stdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
				}
			}
			for _, want := range tc.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			for _, unwanted := range tc.notStdout {
				if strings.Contains(stdout.String(), unwanted) {
					t.Errorf("stdout has %q:\n%s", unwanted, stdout.String())
				}
			}
		})
	}
}

// TestPolicyTestCommand runs `mcp-authz policy test`: the shipped tests pass; a failing test, a broken
// module or no test at all exit 1.
func TestPolicyTestCommand(t *testing.T) {
	failing := policyFixture(t, map[string]string{"authz.rego": okRego, "authz_test.rego": okTest + "\n" + strings.SplitN(badTest, "import data.mcp.authz\n", 2)[1]})
	broken := policyFixture(t, map[string]string{"authz.rego": brokenRego, "authz_test.rego": okTest})
	untested := policyFixture(t, map[string]string{"authz.rego": okRego})
	runCases(t, []cliCase{
		{name: "shipped policies pass", args: []string{"policy", "test", shipped}, code: 0, stdout: []string{"PASS: "}, notStdout: []string{"FAIL"}},
		{name: "verbose lists each test", args: []string{"policy", "test", "-v", shipped}, code: 0, stdout: []string{"test_client_not_allowed: PASS", "PASS: "}},
		{name: "flag after the path", args: []string{"policy", "test", shipped, "-v"}, code: 0, stdout: []string{"test_client_not_allowed: PASS"}},
		{name: "a failing test", args: []string{"policy", "test", failing}, code: 1, stdout: []string{"test_wrong: FAIL", "FAIL: 1/2"}},
		{name: "a broken module", args: []string{"policy", "test", broken}, code: 1, stderr: []string{filepath.Join(broken, "authz.rego") + ":5: rego_unsafe_var_error"}},
		{name: "no tests", args: []string{"policy", "test", untested}, code: 1, stderr: []string{"no tests found"}},
		{name: "unknown flag", args: []string{"policy", "test", "--bogus"}, code: 2},
	})
}

// TestPolicyCheckCommand runs `mcp-authz policy check`: the shipped policies compile; errors name file and
// line; a query no rule defines is an error.
func TestPolicyCheckCommand(t *testing.T) {
	broken := policyFixture(t, map[string]string{"authz.rego": brokenRego})
	badData := policyFixture(t, map[string]string{"authz.rego": okRego, "data.yaml": "a: [1, 2\nb: 3\n"})
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	abs, err := filepath.Abs(shipped)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("resources: [{url: https://mcp.example.com/mcp}]\nissuers: [{discovery_url: https://idp.example.com/.well-known/openid-configuration}]\npolicy: {paths: ["+abs+"]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runCases(t, []cliCase{
		{name: "shipped policies compile", args: []string{"policy", "check", shipped}, code: 0, stdout: []string{"ok: ", "data.mcp.authz.decision",
			"decision cache: keyed on input.mcp.method, input.mcp.tool, input.request.method, input.token.claims, input.token.client_id, input.token.scopes",
			"input.token.claims: only groups (token_claims and constant reads)"}},
		{name: "from a configuration", args: []string{"policy", "check", "--config", cfg}, code: 0, stdout: []string{"ok: " + abs}},
		{name: "compile error with file and line", args: []string{"policy", "check", broken}, code: 1, stderr: []string{filepath.Join(broken, "authz.rego") + ":5: rego_unsafe_var_error: var x is unsafe"}},
		{name: "bad data file", args: []string{"policy", "check", badData}, code: 1, stderr: []string{filepath.Join(badData, "data.yaml")}},
		{name: "undefined query", args: []string{"policy", "check", "--query", "data.nope.decision", shipped}, code: 1, stderr: []string{"no rule defines data.nope.decision"}},
		{name: "config and paths", args: []string{"policy", "check", "--config", cfg, shipped}, code: 2, stderr: []string{"either --config or paths"}},
		{name: "missing path", args: []string{"policy", "check", "/nonexistent/policies"}, code: 1, stderr: []string{"/nonexistent/policies"}},
	})
}

// TestPolicyEvalCommand runs `mcp-authz policy eval`: it prints the decision document, the denials of the
// default policy, OPA's trace with --explain, and fails on a policy error.
func TestPolicyEvalCommand(t *testing.T) {
	dir := t.TempDir()
	input := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	allowed := input("allowed.json", `{"token": {"client_id": "mcp-client", "scopes": ["tools:read"]}, "request": {"method": "POST"}, "mcp": {"method": "tools/list"}}`)
	stepUp := input("step-up.yaml", "token: {client_id: mcp-client, scopes: [tools:read]}\nrequest: {method: POST}\nmcp: {method: tools/call, tool: admin_reset}\n")
	notObject := input("list.json", `[1, 2]`)
	conflict := policyFixture(t, map[string]string{"authz.rego": okRego + "\ndecision := {\"allow\": false} if input.conflict\n"})
	runCases(t, []cliCase{
		{name: "allow", args: []string{"policy", "eval", "--input", allowed, shipped}, code: 0, stdout: []string{`"allow": true`, `"reason": "allowed"`}},
		{name: "deny shows denials", args: []string{"policy", "eval", "--input", stepUp, shipped}, code: 0,
			stdout: []string{`"allow": false`, "denials (data.mcp.authz.denials):", "tool admin_reset requires scopes tools:admin", "tool admin_reset is limited to groups admins"}},
		{name: "explain", args: []string{"policy", "eval", "--explain", "--input", stepUp, shipped}, code: 0, stdout: []string{"explanation (full):", "Enter data.mcp.authz.decision", "authz.rego:"}},
		{name: "explain fails", args: []string{"policy", "eval", "--explain=fails", "--input", allowed, shipped}, code: 0, stdout: []string{"explanation (fails):", "Fail "}},
		{name: "bad explain mode", args: []string{"policy", "eval", "--explain=loud", "--input", allowed, shipped}, code: 2},
		{name: "no input", args: []string{"policy", "eval", shipped}, code: 2, stderr: []string{"--input is required"}},
		{name: "input not an object", args: []string{"policy", "eval", "--input", notObject, shipped}, code: 1, stderr: []string{"not a JSON or YAML object"}},
		{name: "missing input", args: []string{"policy", "eval", "--input", filepath.Join(dir, "none.json"), shipped}, code: 1, stderr: []string{"read input"}},
		{name: "runtime error", args: []string{"policy", "eval", "--input", input("conflict.json", `{"ok": true, "conflict": true}`), conflict}, code: 1, stderr: []string{"conflict", "the service denies"}},
		{name: "undefined decision", args: []string{"policy", "eval", "--query", "data.mcp.authz.nothing", "--input", allowed, shipped}, code: 1, stderr: []string{"no rule defines"}},
		{name: "unknown subcommand", args: []string{"policy", "lint"}, code: 2, stderr: []string{`unknown command "lint"`}},
	})
}
