package policy

import (
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
)

// RunTests runs the Rego unit tests (`test_` rules, usually in `*_test.rego` files) found under paths, with
// the data files beside them, the way `opa test` does, and returns the results in source order. Hidden files and folders below each path are skipped
// as Load skips them (editor swap files, the `..data` folders of a ConfigMap mount).
func RunTests(ctx context.Context, paths []string) ([]*tester.Result, error) {
	modules, store, err := tester.LoadWithRegoVersion(paths, skipHidden, ast.RegoV1)
	if err != nil {
		return nil, fmt.Errorf("load policy tests: %w", err)
	}
	ch, err := tester.NewRunner().SetStore(store).SetModules(modules).RunTests(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("run policy tests: %w", err)
	}
	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
	}
	// Tests run in parallel; report them in source order.
	slices.SortFunc(results, func(a, b *tester.Result) int {
		if a.Location == nil || b.Location == nil {
			return cmp.Compare(a.Package+a.Name, b.Package+b.Name)
		}
		return cmp.Or(cmp.Compare(a.Location.File, b.Location.File), cmp.Compare(a.Location.Row, b.Location.Row))
	})
	return results, nil
}

// skipHidden leaves hidden files and folders below the roots out.
func skipHidden(_ string, info fs.FileInfo, depth int) bool {
	return depth > 0 && strings.HasPrefix(info.Name(), ".")
}
