package telemetry

import (
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
)

// logBufferSize is how many bytes of log lines a LogWriter holds before it writes them out.
const logBufferSize = 256 << 10

// LogWriter batches log lines: it writes what it holds every interval, as soon as the buffer fills, and on
// Flush and Close, so that a busy server makes one write system call per batch rather than one per
// decision (as Envoy's own access logs do). A line is never split between two writes. Safe for concurrent
// use.
type LogWriter struct {
	mu     sync.Mutex
	w      io.Writer
	buf    []byte
	err    error // the last write error, reported by the next Write, Flush or Close
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

// NewLogWriter writes to w what is written to it, in batches flushed every interval (which must be
// positive). Close it to write out the rest.
func NewLogWriter(w io.Writer, interval time.Duration) *LogWriter {
	l := &LogWriter{w: w, buf: make([]byte, 0, logBufferSize), stop: make(chan struct{}), done: make(chan struct{})}
	go l.run(interval)
	return l
}

func (l *LogWriter) run(interval time.Duration) {
	defer close(l.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.Flush()
		case <-l.stop:
			return
		}
	}
}

// Write buffers p (one log line, as slog handlers write them), writing out the buffer first when p does
// not fit. After Close, it writes p through.
func (l *LogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || len(p) > cap(l.buf) {
		if err := l.flushLocked(); err != nil {
			return 0, err
		}
		return l.w.Write(p)
	}
	if len(l.buf)+len(p) > cap(l.buf) {
		if err := l.flushLocked(); err != nil {
			return 0, err
		}
	}
	l.buf = append(l.buf, p...)
	return len(p), nil
}

// Flush writes out what the writer holds.
func (l *LogWriter) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.flushLocked()
}

func (l *LogWriter) flushLocked() error {
	if len(l.buf) > 0 {
		_, err := l.w.Write(l.buf)
		l.buf = l.buf[:0] // a failed write is not retried: the lines are lost, the error reported
		if err != nil {
			l.err = err
		}
	}
	err := l.err
	l.err = nil
	return err
}

// Close stops the periodic flush and writes out what the writer holds; later writes go straight through.
func (l *LogWriter) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	<-l.done
	return l.Flush()
}

// NewLogger is mcp-authz's logger: JSON lines at the configured level to w, batched by a LogWriter when
// cfg.FlushEvery() is positive. Call close on exit to write out the lines still held.
func NewLogger(w io.Writer, cfg config.Log) (log *slog.Logger, close func() error) {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level)) // validated by config
	close = func() error { return nil }
	if every := cfg.FlushEvery(); every > 0 {
		lw := NewLogWriter(w, every)
		w, close = lw, lw.Close
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})), close
}
