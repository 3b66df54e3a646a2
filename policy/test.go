package policy

import (
	"context"
	"fmt"

	"github.com/open-policy-agent/opa/v1/tester"
)

// RunTests runs the Rego unit tests (`test_` rules, usually in `*_test.rego` files) found under paths, with
// the data files beside them, the way `opa test` does.
func RunTests(ctx context.Context, paths []string) ([]*tester.Result, error) {
	results, err := tester.Run(ctx, paths...)
	if err != nil {
		return nil, fmt.Errorf("run policy tests: %w", err)
	}
	return results, nil
}
