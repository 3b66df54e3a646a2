package policy

import (
	"context"
	"fmt"
	"io/fs"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
)

// RunTests runs the Rego unit tests (`test_` rules, usually in `*_test.rego` files) found under paths, with
// the data files beside them, the way `opa test` does. Hidden files and folders below each path are skipped
// as Load skips them (editor swap files, the `..data` folders of a ConfigMap mount).
func RunTests(ctx context.Context, paths []string) ([]*tester.Result, error) {
	modules, store, err := tester.LoadWithRegoVersion(paths, skipHidden, ast.RegoV1)
	if err != nil {
		return nil, fmt.Errorf("load policy tests: %w", err)
	}
	ch, err := tester.NewRunner().SetStore(store).Run(ctx, modules)
	if err != nil {
		return nil, fmt.Errorf("run policy tests: %w", err)
	}
	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
	}
	return results, nil
}

// skipHidden leaves hidden files and folders below the roots out.
func skipHidden(_ string, info fs.FileInfo, depth int) bool {
	return depth > 0 && strings.HasPrefix(info.Name(), ".")
}
