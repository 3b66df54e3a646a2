package policy

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
)

// TestRescanReloadsOnlyChangedContent drives the periodic rescan directly (no file events): touching a file
// or rewriting the same bytes makes no generation, changed bytes make one.
func TestRescanReloadsOnlyChangedContent(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "authz.rego")
	v1 := "package mcp.authz\n\ndecision := {\"allow\": true}\n"
	if err := os.WriteFile(file, []byte(v1), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := NewLive(ctx, config.Policy{Paths: []string{dir}}, LiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name  string
		body  string // empty: only touch the file
		wantG uint64
		allow bool
	}{
		{"touch", "", 1, true},
		{"same bytes", v1, 1, true},
		{"new bytes", "package mcp.authz\n\ndecision := {\"allow\": false}\n", 2, false},
		{"test file added", "", 2, false},
	}
	for _, st := range steps {
		switch {
		case st.name == "test file added":
			if err := os.WriteFile(filepath.Join(dir, "authz_test.rego"), []byte("package x\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		case st.body == "":
			now := time.Now().Add(time.Minute)
			if err := os.Chtimes(file, now, now); err != nil {
				t.Fatal(err)
			}
		default:
			if err := os.WriteFile(file, []byte(st.body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.files.reload(ctx, "rescan"); err != nil {
			t.Fatalf("%s: reload: %v", st.name, err)
		}
		d, err := l.Evaluate(ctx, Map(map[string]any{}))
		if s := l.Status(); s.Generation != st.wantG || err != nil || d.Allow != st.allow {
			t.Fatalf("%s: generation %d, decision %+v, %v; want generation %d, allow %v", st.name, s.Generation, d, err, st.wantG, st.allow)
		}
	}
}
