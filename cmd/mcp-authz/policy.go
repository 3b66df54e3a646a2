package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/policy"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/lineage"
	"sigs.k8s.io/yaml"
)

const policyUsage = `usage: mcp-authz policy <command> [flags] [PATH...]

Policy tooling, with the OPA embedded in mcp-authz. PATHs are Rego and JSON/YAML data files or folders
(default: the current folder, or policy.paths of --config FILE).

commands:
  test  [-v] [--config FILE] [PATH...]
        run the Rego unit tests (test_ rules, *_test.rego) as ` + "`opa test`" + ` does; exit 1 on a failure
  check [--config FILE] [--query Q] [PATH...]
        compile the policies as the service would, without serving; exit 1 with file:line errors
  eval  --input FILE [--config FILE | PATH...] [--query Q] [--explain[=full|notes|fails|debug]]
        evaluate one input document (JSON or YAML, the policy input of the README) and print the
        decision document and why: the denials of the default policy, or OPA's trace with --explain
`

// policyCommand runs `mcp-authz policy …`.
func policyCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsage)
		return 2
	}
	switch args[0] {
	case "test":
		return policyTest(ctx, args[1:], stdout, stderr)
	case "check":
		return policyCheck(ctx, args[1:], stdout, stderr)
	case "eval":
		return policyEval(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, policyUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "mcp-authz policy: unknown command %q\n%s", args[0], policyUsage)
		return 2
	}
}

// policyFlags are the flags every policy command shares.
type policyFlags struct {
	fs     *flag.FlagSet
	config *string
	query  *string
}

func newPolicyFlags(name string, stderr io.Writer) policyFlags {
	fs := flag.NewFlagSet("policy "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return policyFlags{
		fs:     fs,
		config: fs.String("config", "", "take the policy paths and query from this configuration file"),
		query:  fs.String("query", "", "decision query (default: the configuration's, else "+policy.DefaultQuery+")"),
	}
}

// parse parses flags placed before, between or after the paths, and returns the paths and query to use.
func (p policyFlags) parse(args []string) (paths []string, query string, err error) {
	for {
		if err := p.fs.Parse(args); err != nil {
			return nil, "", err
		}
		args = p.fs.Args()
		if len(args) == 0 {
			break
		}
		paths, args = append(paths, args[0]), args[1:]
	}
	query = *p.query
	if *p.config != "" {
		if len(paths) > 0 {
			return nil, "", errors.New("give either --config or paths, not both")
		}
		cfg, err := config.Load(*p.config)
		if err != nil {
			return nil, "", err
		}
		if cfg.Policy.Bundle != nil {
			return nil, "", fmt.Errorf("%s loads policies from a bundle (policy.bundle); pass the folders the bundle is built from", *p.config)
		}
		paths = cfg.Policy.Paths
		if query == "" {
			query = cfg.Policy.Query
		}
	}
	if len(paths) == 0 {
		paths = []string{"."}
	}
	if query == "" {
		query = policy.DefaultQuery
	}
	return paths, query, nil
}

// policyTest runs the Rego unit tests and reports them the way `opa test` does.
func policyTest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newPolicyFlags("test", stderr)
	verbose := f.fs.Bool("v", false, "print every test, not only failures")
	paths, _, err := f.parse(args)
	if err != nil {
		return usageError(stderr, err)
	}
	results, err := policy.RunTests(ctx, paths)
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	if len(results) == 0 {
		fmt.Fprintf(stderr, "mcp-authz policy test: no tests found in %s\n", strings.Join(paths, ", "))
		return 1
	}
	ch := make(chan *tester.Result, len(results))
	failed := false
	for _, r := range results {
		failed = failed || !r.Pass() && !r.Skip
		ch <- r
	}
	close(ch)
	if err := (tester.PrettyReporter{Output: stdout, Verbose: *verbose, FailureLine: true}).Report(ch); err != nil {
		fmt.Fprintf(stderr, "mcp-authz policy test: %v\n", err)
		return 1
	}
	if failed {
		return 1
	}
	return 0
}

// policyCheck compiles the policies as the service does at start-up and on each reload.
func policyCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newPolicyFlags("check", stderr)
	paths, query, err := f.parse(args)
	if err != nil {
		return usageError(stderr, err)
	}
	warnings := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := policy.Load(ctx, paths, query, policy.WithLogger(warnings))
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "ok: %s compile and define %s\n", strings.Join(paths, ", "), query)
	if off := p.DecisionCacheOff(); off != "" {
		fmt.Fprintf(stdout, "decision cache: off (%s)\n", off)
	} else {
		fmt.Fprintf(stdout, "decision cache: keyed on %s\n", strings.Join(p.Reads().Paths(), ", "))
	}
	if c := p.Reads().Claims(); c != nil {
		fmt.Fprintf(stdout, "input.token.claims: only %s (token_claims and constant reads)\n", strings.Join(c.Names(), ", "))
	} else {
		fmt.Fprintln(stdout, "input.token.claims: every claim (no token_claims rule)")
	}
	return 0
}

// policyEval evaluates one input document and explains the decision.
func policyEval(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newPolicyFlags("eval", stderr)
	inputFile := f.fs.String("input", "", "input document, JSON or YAML (required)")
	var explain explainMode
	f.fs.Var(&explain, "explain", "print OPA's evaluation trace: full (default), notes, fails or debug")
	paths, query, err := f.parse(args)
	if err != nil {
		return usageError(stderr, err)
	}
	if *inputFile == "" {
		return usageError(stderr, errors.New("--input is required"))
	}
	raw, err := os.ReadFile(*inputFile)
	if err != nil {
		fmt.Fprintf(stderr, "mcp-authz policy eval: read input: %v\n", err)
		return 1
	}
	var input map[string]any
	if err := yaml.Unmarshal(raw, &input); err != nil {
		fmt.Fprintf(stderr, "mcp-authz policy eval: %s: not a JSON or YAML object: %v\n", *inputFile, err)
		return 1
	}
	p, err := policy.Load(ctx, paths, query)
	if err != nil {
		printProblems(stderr, err)
		return 1
	}
	ex, err := p.Explain(ctx, input, "", explain != "")
	if err != nil {
		fmt.Fprintf(stderr, "mcp-authz policy eval: %v (the service denies)\n", err)
		return 1
	}
	if !ex.Defined {
		fmt.Fprintf(stdout, "%s is undefined for this input (the service denies)\n", query)
	} else {
		writeIndented(stdout, ex.Value)
	}
	if i := strings.LastIndex(query, "."); i > 0 {
		denialsQuery := query[:i] + ".denials"
		if d, err := p.Explain(ctx, input, denialsQuery, false); err == nil && d.Defined {
			fmt.Fprintf(stdout, "denials (%s):\n", denialsQuery)
			list, ok := d.Value.([]any)
			if !ok {
				list = []any{d.Value}
			}
			for _, v := range list {
				b, _ := json.Marshal(v)
				fmt.Fprintf(stdout, "  %s\n", b)
			}
		}
	}
	if explain != "" {
		fmt.Fprintf(stdout, "explanation (%s):\n", explain)
		topdown.PrettyTraceWithLocation(stdout, explain.filter(ex.Trace))
	}
	if !ex.Defined {
		return 1
	}
	// The service decodes the document strictly: say so when it would turn it into a deny.
	if _, err := p.Evaluate(ctx, policy.Map(input)); err != nil {
		fmt.Fprintf(stderr, "mcp-authz policy eval: %v (the service denies)\n", err)
		return 1
	}
	return 0
}

// explainMode is the --explain flag: a boolean flag (`--explain` means full) that also takes a value.
type explainMode string

// String returns the mode.
func (e *explainMode) String() string { return string(*e) }

// Set reads `true` (bare flag), `false`, full, notes, fails or debug.
func (e *explainMode) Set(v string) error {
	switch v {
	case "true":
		*e = "full"
	case "false":
		*e = ""
	case "full", "notes", "fails", "debug":
		*e = explainMode(v)
	default:
		return fmt.Errorf("explain mode %q: want full, notes, fails or debug", v)
	}
	return nil
}

// IsBoolFlag lets --explain stand alone.
func (e *explainMode) IsBoolFlag() bool { return true }

// filter keeps the trace events the mode asks for, with OPA's lineage filters (as `opa eval --explain`).
func (e explainMode) filter(trace []*topdown.Event) []*topdown.Event {
	switch e {
	case "notes":
		return lineage.Notes(trace)
	case "fails":
		return lineage.Fails(trace)
	case "debug":
		return lineage.Debug(trace)
	default:
		return lineage.Full(trace)
	}
}

func writeIndented(w io.Writer, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		fmt.Fprintf(w, "%v\n", v)
		return
	}
	fmt.Fprintf(w, "%s\n", b)
}

// printProblems writes one `file:line: message` line per error OPA reported.
func printProblems(w io.Writer, err error) {
	for _, p := range policy.Problems(err) {
		fmt.Fprintln(w, p.String())
	}
}

func usageError(stderr io.Writer, err error) int {
	if !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stderr, "mcp-authz policy: %v\n", err)
	}
	return 2
}
