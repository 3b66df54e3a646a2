package telemetry

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
)

// recorder is an io.Writer that keeps each write apart; it fails with err when set.
type recorder struct {
	mu     sync.Mutex
	writes [][]byte
	err    error
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return 0, r.err
	}
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}

func (r *recorder) snapshot() (writes int, all string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.writes), string(bytes.Join(r.writes, nil))
}

func TestLogWriter(t *testing.T) {
	line := func(g, i int) string {
		return fmt.Sprintf(`{"msg":"decision","g":%d,"i":%d,"pad":%q}`+"\n", g, i, strings.Repeat("x", 200))
	}
	tests := []struct {
		name       string
		goroutines int
		lines      int
		check      func(t *testing.T, r *recorder, l *LogWriter)
	}{
		{"held until close, then whole and in order per writer", 4, 50, func(t *testing.T, r *recorder, l *LogWriter) {
			if n, _ := r.snapshot(); n != 0 {
				t.Errorf("%d writes before Close; want the lines held", n)
			}
		}},
		{"a full buffer is written out before Close", 2, 1000, func(t *testing.T, r *recorder, l *LogWriter) {
			n, all := r.snapshot()
			if n == 0 {
				t.Fatal("no write before Close although more than the buffer was logged")
			}
			if !strings.HasSuffix(all, "\n") {
				t.Errorf("a write ends inside a line")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			l := NewLogWriter(r, time.Hour) // the ticker never fires during the test
			var wg sync.WaitGroup
			for g := range tc.goroutines {
				wg.Go(func() {
					for i := range tc.lines {
						if _, err := l.Write([]byte(line(g, i))); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			tc.check(t, r, l)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			_, all := r.snapshot()
			next := make([]int, tc.goroutines)
			lines := strings.Split(strings.TrimSuffix(all, "\n"), "\n")
			for _, s := range lines {
				var g, i int
				if _, err := fmt.Sscanf(s, `{"msg":"decision","g":%d,"i":%d,`, &g, &i); err != nil || s+"\n" != line(g, i) {
					t.Fatalf("line cut or merged: %.80q", s)
				}
				if i != next[g] {
					t.Fatalf("goroutine %d: line %d after %d", g, i, next[g]-1)
				}
				next[g]++
			}
			if len(lines) != tc.goroutines*tc.lines {
				t.Errorf("%d lines written out, want %d", len(lines), tc.goroutines*tc.lines)
			}
			// After Close a line goes straight through.
			n, _ := r.snapshot()
			l.Write([]byte("late\n"))
			if m, all := r.snapshot(); m != n+1 || !strings.HasSuffix(all, "late\n") {
				t.Errorf("a write after Close was not written through")
			}
		})
	}
}

// TestLogWriterFlushes checks the periodic flush (by waiting for it, never by timing it), that a line larger
// than the buffer goes through whole, and that a write error is reported.
func TestLogWriterFlushes(t *testing.T) {
	r := &recorder{}
	l := NewLogWriter(r, 10*time.Millisecond)
	defer l.Close()
	l.Write([]byte("one\n"))
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, all := r.snapshot(); all == "one\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the line was never flushed by the ticker")
		}
		time.Sleep(5 * time.Millisecond)
	}
	big := strings.Repeat("y", logBufferSize+1) + "\n"
	l.Write([]byte("two\n"))
	l.Write([]byte(big))
	if _, all := r.snapshot(); !strings.HasSuffix(all, "two\n"+big) {
		t.Errorf("a line larger than the buffer was not written whole, after what was held")
	}
	r.mu.Lock()
	r.err = errors.New("disk full")
	r.mu.Unlock()
	l.Write([]byte("three\n"))
	if err := l.Flush(); err == nil || err.Error() != "disk full" {
		t.Errorf("Flush = %v, want the write error", err)
	}
}

func TestNewLogger(t *testing.T) {
	zero := config.Duration(0)
	tests := []struct {
		name     string
		cfg      config.Log
		buffered bool
	}{
		{"default: batched", config.Log{Level: "info"}, true},
		{"flush_interval 0s: every line at once", config.Log{Level: "info", FlushInterval: &zero}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			log, closeLog := NewLogger(r, tc.cfg)
			log.Debug("hidden")
			log.Info("decision", "sub", "alice")
			if n, _ := r.snapshot(); (n == 0) != tc.buffered {
				t.Errorf("%d writes before close; buffered %v", n, tc.buffered)
			}
			if err := closeLog(); err != nil {
				t.Fatal(err)
			}
			if _, all := r.snapshot(); !strings.Contains(all, `"msg":"decision","sub":"alice"`) || strings.Contains(all, "hidden") {
				t.Errorf("log = %q", all)
			}
		})
	}
}
