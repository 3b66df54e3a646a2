package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// maxDepth bounds folder recursion (symlink loops).
const maxDepth = 32

// fileSource reloads a Live from policy files and folders: fsnotify events on the folders that hold them
// (debounced), plus a periodic re-read. A reload happens only when the content digest changed, so
// spurious events, touched files or a ConfigMap update with identical content make no new generation.
type fileSource struct {
	paths []string
	live  *Live
	// digest is the content digest of the last load attempt, good or bad (guarded by live.mu).
	digest string
}

// run watches until ctx ends.
func (f *fileSource) run(ctx context.Context) error {
	l := f.live
	w, err := fsnotify.NewWatcher()
	var events <-chan fsnotify.Event
	var errs <-chan error
	if err != nil {
		l.log.Warn("policy file watch unavailable; rescanning periodically only", "error", err.Error(), "every", l.opts.Rescan.String())
	} else {
		defer w.Close()
		events, errs = w.Events, w.Errors
		f.watch(w)
	}
	// Catch what changed between NewLive and now.
	f.reload(ctx, "start")

	rescan := time.NewTicker(l.opts.Rescan)
	defer rescan.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	var pending bool
	var pendingSince time.Time
	maxWait := 10 * l.opts.Debounce
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			// Trailing debounce, bounded so that a steady stream of writes still reloads.
			if !pending {
				pending, pendingSince = true, time.Now()
				debounce.Reset(l.opts.Debounce)
			} else if time.Since(pendingSince) < maxWait {
				debounce.Reset(l.opts.Debounce)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			l.log.Warn("policy file watch error; the periodic rescan still applies", "error", err.Error())
		case <-debounce.C:
			pending = false
			f.watch(w)
			f.reload(ctx, "change")
		case <-rescan.C:
			f.watch(w)
			f.reload(ctx, "rescan")
		}
	}
}

// watch adds a watch on every folder that holds policy files and is not watched yet: each configured
// folder and its sub-folders, and the folder of each configured file (so that editors' rename-on-save and
// ConfigMap `..data` swaps are seen).
func (f *fileSource) watch(w *fsnotify.Watcher) {
	if w == nil {
		return
	}
	watched := w.WatchList()
	var dirs []string
	for _, p := range f.paths {
		info, err := os.Stat(p)
		if err != nil {
			if d := filepath.Dir(p); d != p {
				dirs = append(dirs, d) // the file may come back
			}
			continue
		}
		if !info.IsDir() {
			dirs = append(dirs, filepath.Dir(p))
			continue
		}
		_ = walk(p, func(path string, info os.FileInfo, depth int) error {
			if info.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
	}
	for _, d := range dirs {
		if slices.Contains(watched, d) {
			continue
		}
		if err := w.Add(d); err != nil {
			f.live.log.Debug("policy folder not watched", "path", d, "error", err.Error())
			continue
		}
		watched = append(watched, d)
	}
}

// reload loads the files when their content changed since the last attempt. Load reads the files after the
// digest is taken; when the digest differs afterwards the files were changing, and the attempt is retried
// so that a generation's revision always names the content it was built from.
func (f *fileSource) reload(ctx context.Context, trigger string) error {
	l := f.live
	l.mu.Lock()
	defer l.mu.Unlock()
	for range 3 {
		before, files := digest(f.paths) // an unreadable path has a digest of its own; Load reports it
		if before == f.digest {
			return nil
		}
		p, err := Load(ctx, f.paths, l.query, l.policyOptions()...)
		if ctx.Err() != nil {
			return ctx.Err() // shutting down: not a policy error
		}
		after, _ := digest(f.paths)
		if after != before {
			continue
		}
		f.digest = before
		revision := "sha256:" + before[:min(16, len(before))]
		if err != nil {
			l.refuse(ctx, err, revision, trigger)
			return err
		}
		l.install(ctx, p, revision, files, trigger)
		return nil
	}
	l.log.Warn("policy files kept changing during the load; retrying at the next change or rescan", "trigger", trigger)
	return errors.New("policy files kept changing during the load")
}

// digest hashes the names and contents of the files Load reads under paths (following symlinks, skipping
// tests and hidden entries as Load does) and lists them. A path that cannot be read makes a digest of the
// error, so that the failure is loaded (and reported) once.
func digest(paths []string) (string, []string) {
	h := sha256.New()
	var files []string
	for _, root := range paths {
		err := walk(root, func(path string, info os.FileInfo, depth int) error {
			if info.IsDir() || (depth > 0 && !policyFile(path)) {
				return nil
			}
			fh, err := os.Open(path)
			if err != nil {
				return err
			}
			defer fh.Close()
			fmt.Fprintf(h, "%s\x00%d\x00", path, info.Size())
			if _, err := io.Copy(h, fh); err != nil {
				return fmt.Errorf("read %s: %w", path, err)
			}
			files = append(files, path)
			return nil
		})
		if err != nil {
			sum := sha256.Sum256([]byte(err.Error()))
			return hex.EncodeToString(sum[:]), files
		}
	}
	return hex.EncodeToString(h.Sum(nil)), files
}

// policyFile reports whether Load reads a file found inside a folder.
func policyFile(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".rego", ".json", ".yaml", ".yml":
		return true
	}
	return false
}

// walk visits root and, when it is a folder, everything under it, following symlinks and skipping what
// Load skips (tests, hidden files and folders below the root), in lexical order.
func walk(root string, visit func(path string, info os.FileInfo, depth int) error) error {
	var rec func(path string, depth int) error
	rec = func(path string, depth int) error {
		info, err := os.Stat(path)
		if err != nil {
			return err
		}
		if skipTests(path, info, depth) {
			return nil
		}
		if err := visit(path, info, depth); err != nil {
			return err
		}
		if !info.IsDir() || depth >= maxDepth {
			return nil
		}
		entries, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := rec(filepath.Join(path, e.Name()), depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return rec(root, 0)
}
