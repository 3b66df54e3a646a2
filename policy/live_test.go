package policy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/policy"
)

// regoReturning is a policy whose decision is fixed: allow and reason.
func regoReturning(allow bool, reason string) string {
	return fmt.Sprintf("package mcp.authz\n\nimport rego.v1\n\ndecision := {\"allow\": %v, \"reason\": %q}\n", allow, reason)
}

// logBuffer collects slog JSON lines from concurrent goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	t.Helper()
	buf := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// replaceFile writes body to a hidden file beside path and renames it over path, as editors save: the
// policy never sees a half-written file.
func replaceFile(t *testing.T, path, body string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	writeFile(t, tmp, body)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// startLive builds a Live on paths and runs it until the test ends. The rescan is long so that only file
// events can trigger a reload.
func startLive(t *testing.T, paths []string, log *slog.Logger) *policy.Live {
	t.Helper()
	return startLiveRescan(t, paths, log, time.Hour)
}

func startLiveRescan(t *testing.T, paths []string, log *slog.Logger, rescan time.Duration) *policy.Live {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	live, err := policy.NewLive(ctx, config.Policy{Paths: paths}, policy.LiveOptions{Log: log, Debounce: 20 * time.Millisecond, Rescan: rescan})
	if err != nil {
		cancel()
		t.Fatalf("NewLive: %v", err)
	}
	done := make(chan struct{})
	go func() { live.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return live
}

// eventually polls cond until it holds or a bounded deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func reasonIs(l *policy.Live, reason string) func() bool {
	return func() bool {
		d, err := l.Evaluate(context.Background(), policy.Map(map[string]any{}))
		return err == nil && d.Reason == reason
	}
}

// TestLiveReloadsEditedFileUnderLoad edits the policy file in place while goroutines evaluate in a loop:
// every evaluation during the swap returns either the old or the new decision (never an error, never a
// mix, never old after new), and the new one arrives without a restart.
func TestLiveReloadsEditedFileUnderLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "authz.rego")
	writeFile(t, file, regoReturning(true, "v1"))
	log, _ := newLogger(t)
	live := startLive(t, []string{dir}, log)
	if s := live.Status(); s.Generation != 1 || !strings.HasPrefix(s.Revision, "sha256:") || len(s.Sources) != 1 {
		t.Fatalf("status after start = %+v", s)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var evals, wrong atomic.Int64
	var firstWrong atomic.Pointer[string]
	for range 4 {
		wg.Go(func() {
			sawNew := false
			for i := 0; i < 200000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				d, err := live.Evaluate(context.Background(), policy.Map(map[string]any{}))
				evals.Add(1)
				ok := err == nil && ((d.Allow && d.Reason == "v1" && !sawNew) || (!d.Allow && d.Reason == "v2"))
				if !ok {
					msg := fmt.Sprintf("decision %+v, error %v, after new: %v", d, err, sawNew)
					firstWrong.CompareAndSwap(nil, &msg)
					wrong.Add(1)
				}
				sawNew = sawNew || d.Reason == "v2"
			}
		})
	}
	eventually(t, "evaluations to flow", func() bool { return evals.Load() > 100 })
	writeFile(t, file, regoReturning(false, "v2")) // in place: a reader may see it truncated, never an allow
	eventually(t, "the edited policy to serve", reasonIs(live, "v2"))
	close(stop)
	wg.Wait()
	if n := wrong.Load(); n > 0 {
		t.Fatalf("%d of %d evaluations were wrong; first: %s", n, evals.Load(), *firstWrong.Load())
	}
	s := live.Status()
	if s.Generation < 2 || s.Error != "" {
		t.Fatalf("status after reload = %+v", s)
	}
}

// TestLiveKeepsLastGoodGeneration writes broken policies: each is refused with its file and line in the
// log and the status, the last good generation keeps deciding, and a fix is picked up.
func TestLiveKeepsLastGoodGeneration(t *testing.T) {
	cases := []struct {
		name, file, body string
		line             int
		message          string
	}{
		{"syntax error", "authz.rego", "package mcp.authz\n\nimport rego.v1\n\ndecision := {\"allow\": true,\n\nx := 1\n", 7, "rego_parse_error"},
		{"type error", "authz.rego", "package mcp.authz\n\nimport rego.v1\n\ndecision := {\"allow\": true}\n\nn := count(1)\n", 7, "rego_type_error"},
		{"unsafe variable", "authz.rego", "package mcp.authz\n\nimport rego.v1\n\ndecision := {\"allow\": x}\n", 5, "rego_unsafe_var_error"},
		{"bad data file", "data.yaml", "config:\n  a: [1, 2\n  b: 3\n", 0, "yaml"},
		{"no module left", "authz.rego", "", 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "authz.rego"), regoReturning(true, "good"))
			writeFile(t, filepath.Join(dir, "data.yaml"), "config: {a: 1}\n")
			log, logs := newLogger(t)
			live := startLive(t, []string{dir}, log)
			var notified atomic.Int64
			live.Notify(func(s policy.Status) {
				if s.Error != "" {
					notified.Add(1)
				}
			})
			broken := filepath.Join(dir, tc.file)
			if tc.body == "" {
				if err := os.Remove(broken); err != nil {
					t.Fatal(err)
				}
			} else {
				replaceFile(t, broken, tc.body)
			}
			eventually(t, "the broken policy to be refused", func() bool {
				s := live.Status()
				return s.Error != "" && strings.Contains(s.Error, tc.message) && notified.Load() > 0
			})
			// Let any trailing event settle, then check that the good generation still decides.
			s := live.Status()
			if s.Generation != 1 {
				t.Fatalf("generation = %d after a refused load, want 1", s.Generation)
			}
			d, err := live.Evaluate(context.Background(), policy.Map(map[string]any{}))
			if err != nil || !d.Allow || d.Reason != "good" {
				t.Fatalf("Evaluate after a refused load = %+v, %v; want the last good decision", d, err)
			}
			if live.Ready() != nil {
				t.Fatalf("Ready() = %v while a last good generation serves", live.Ready())
			}
			if tc.message != "" {
				if len(s.Problems) == 0 || !strings.HasSuffix(s.Problems[0].File, tc.file) || s.Problems[0].Line != tc.line && tc.line != 0 || !strings.Contains(s.Error, tc.message) {
					t.Fatalf("status = %+v, want %s:%d %s", s, tc.file, tc.line, tc.message)
				}
				wantLog := fmt.Sprintf(`"file":%q`, broken)
				if !strings.Contains(logs.String(), wantLog) {
					t.Fatalf("log lacks %s:\n%s", wantLog, logs.String())
				}
				if tc.line > 0 && !strings.Contains(logs.String(), fmt.Sprintf(`"line":%d`, tc.line)) {
					t.Fatalf("log lacks line %d", tc.line)
				}
			}
			if !strings.Contains(logs.String(), "policy load failed; keeping the last good generation") {
				t.Fatal("the refused load was not logged")
			}

			// Repair: the fixed policy becomes generation 2 and the error clears.
			replaceFile(t, filepath.Join(dir, "data.yaml"), "config: {a: 2}\n")
			replaceFile(t, filepath.Join(dir, "authz.rego"), regoReturning(false, "fixed"))
			eventually(t, "the fixed policy to serve", reasonIs(live, "fixed"))
			if s := live.Status(); s.Error != "" || s.Generation != 2 || s.Failures == 0 {
				t.Fatalf("status after the fix = %+v", s)
			}
		})
	}
}

// TestLiveConfigMapSymlinkSwap mounts policies the way the kubelet does (files symlinked through `..data`,
// itself a symlink to a timestamped folder) and swaps `..data` atomically: each file is loaded once and
// the swap is picked up.
func TestLiveConfigMapSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(name, reason string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name, "authz.rego"), regoReturning(true, reason))
		writeFile(t, filepath.Join(dir, name, "data.yaml"), "config: {version: "+reason+"}\n")
	}
	version("..2026_11_26_05_00_00.1", "v1")
	if err := os.Symlink("..2026_11_26_05_00_00.1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"authz.rego", "data.yaml"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	log, _ := newLogger(t)
	live := startLive(t, []string{dir}, log)
	if !reasonIs(live, "v1")() {
		t.Fatal("the mounted policy does not decide")
	}
	if s := live.Status(); len(s.Sources) != 2 {
		t.Fatalf("sources = %v, want authz.rego and data.yaml once each", s.Sources)
	}

	// The kubelet's atomic update: new folder, new symlink, rename over ..data, old folder removed.
	version("..2026_11_26_05_01_00.2", "v2")
	if err := os.Symlink("..2026_11_26_05_01_00.2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..2026_11_26_05_00_00.1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the swapped ConfigMap to serve", reasonIs(live, "v2"))
	if s := live.Status(); s.Error != "" || s.Generation != 2 {
		t.Fatalf("status after the swap = %+v", s)
	}
}

// TestLiveWatchesConfiguredFiles configures files (not a folder) and replaces one by rename, as editors
// save: the folder holding it is watched.
func TestLiveWatchesConfiguredFiles(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "authz.rego")
	writeFile(t, file, regoReturning(true, "v1"))
	log, _ := newLogger(t)
	live := startLive(t, []string{file}, log)
	replaceFile(t, file, regoReturning(false, "v2"))
	eventually(t, "the renamed file to serve", reasonIs(live, "v2"))
}

// TestLiveRescanCatchesMissedChanges configures a symlink to a folder and points it elsewhere: the watch
// follows the old folder, which never changes, so no file event comes; the periodic rescan loads the new
// target.
func TestLiveRescanCatchesMissedChanges(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"v1", "v2"} {
		if err := os.Mkdir(filepath.Join(root, v), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, v, "authz.rego"), regoReturning(true, v))
	}
	link := filepath.Join(root, "current")
	if err := os.Symlink("v1", link); err != nil {
		t.Fatal(err)
	}
	log, _ := newLogger(t)
	live := startLiveRescan(t, []string{link}, log, 50*time.Millisecond)
	if !reasonIs(live, "v1")() {
		t.Fatal("v1 does not decide")
	}
	if err := os.Symlink("v2", link+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(link+".new", link); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the rescan to load the new target", reasonIs(live, "v2"))
}

// TestNewLiveFailsOnBrokenPolicy keeps start-up failing closed: no generation, an error naming file and line.
func TestNewLiveFailsOnBrokenPolicy(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "authz.rego"), "package mcp.authz\n\ndecision := {\n\nx := 1\n")
	_, err := policy.NewLive(context.Background(), config.Policy{Paths: []string{dir}}, policy.LiveOptions{})
	if err == nil {
		t.Fatal("NewLive accepted a broken policy")
	}
	ps := policy.Problems(err)
	if len(ps) == 0 || ps[0].File != filepath.Join(dir, "authz.rego") || ps[0].Line != 5 {
		t.Fatalf("problems = %+v (error %v)", ps, err)
	}
}

// TestRuntimeErrorIsAnError evaluates a policy that fails at run time (conflicting outputs for one input):
// Evaluate returns an error, which callers turn into a deny, naming the conflict.
func TestRuntimeErrorIsAnError(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "authz.rego"), `package mcp.authz

import rego.v1

decision := {"allow": true} if input.a

decision := {"allow": false} if input.b
`)
	p, err := policy.Load(context.Background(), []string{dir}, policy.DefaultQuery)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := p.Evaluate(context.Background(), policy.Map(map[string]any{"a": true})); err != nil || !d.Allow {
		t.Fatalf("Evaluate(a) = %+v, %v", d, err)
	}
	d, err := p.Evaluate(context.Background(), policy.Map(map[string]any{"a": true, "b": true}))
	if err == nil || d.Allow || !strings.Contains(err.Error(), "conflict") {
		t.Fatalf("Evaluate(a, b) = %+v, %v; want a conflict error", d, err)
	}
	if errors.Is(err, policy.ErrNoDecision) {
		t.Fatal("a conflict is not an undefined decision")
	}
}

// TestLiveCacheStats checks that a Live's decision cache counts add up over its generations, and that the
// decisions held are the current generation's.
func TestLiveCacheStats(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "authz.rego")
	writeFile(t, file, regoReturning(true, "first"))
	live := startLive(t, []string{dir}, nil)
	in := policy.Map(map[string]any{"request": map[string]any{"method": "POST"}})
	for range 3 { // one evaluation, two hits
		if _, err := live.Evaluate(t.Context(), in); err != nil {
			t.Fatal(err)
		}
	}
	replaceFile(t, file, regoReturning(true, "second"))
	eventually(t, "the second generation", reasonIs(live, "second")) // its first lookup misses
	if _, err := live.Evaluate(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	st := live.CacheStats()
	if st.Decisions < 1 || st.Hits < 2 || st.Misses < 2 {
		t.Errorf("CacheStats = %+v, want the first generation's 2 hits and 1 miss added to the second's lookups", st)
	}
	if first := st.Hits + st.Misses; first < 5 {
		t.Errorf("%d lookups counted, want at least 5", first)
	}
}
