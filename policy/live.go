package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
)

// ErrNoPolicy is returned by Live.Evaluate before any generation has been loaded (a bundle not yet
// downloaded): callers deny.
var ErrNoPolicy = errors.New("no policy generation loaded yet")

// Status describes the generation a Live serves and its last load attempt. It is a snapshot: reading it
// never races with a reload (its slices are shared between snapshots: do not modify them).
type Status struct {
	// Generation numbers the loaded generations from 1; 0 means none is loaded yet.
	Generation uint64 `json:"generation"`
	// Revision identifies the generation's content: the bundle manifest's revision (else its ETag), or
	// `sha256:` and the start of the digest of the policy files. Replicas serving the same content report
	// the same revision.
	Revision string `json:"revision,omitempty"`
	// LoadedAt is when the generation was swapped in.
	LoadedAt time.Time `json:"loaded_at,omitzero"`
	// Sources are the files of the generation, or the bundle's URL.
	Sources []string `json:"sources,omitempty"`
	// Error is the last load attempt's error when it failed (the generation above keeps serving); empty
	// once a later attempt succeeds.
	Error string `json:"error,omitempty"`
	// Problems are Error's file, line and message, when OPA reported them.
	Problems []Problem `json:"problems,omitempty"`
	// LastAttempt is when the last load attempt (successful or not) ended.
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	// Loads counts the successful load attempts, Failures the failed ones.
	Loads, Failures uint64 `json:"-"`
}

// LiveOptions tunes a Live. Zero values take defaults.
type LiveOptions struct {
	// Log receives load results; nil discards them.
	Log *slog.Logger
	// Debounce is how long file events must be quiet before a reload. Default 200ms.
	Debounce time.Duration
	// Rescan is the period of the fallback re-read of the policy files, for the changes file events miss
	// (network file systems, a replaced watched folder, exhausted inotify watches). Default 10s.
	Rescan time.Duration
	// DecisionCacheSize is how many decisions each generation caches (see WithDecisionCache). 0 takes
	// DefaultDecisionCacheSize; a negative size turns the cache off.
	DecisionCacheSize int
}

// Live serves the current generation of the policies and replaces it when its source changes: watched
// policy files, or an OPA bundle server. New generations are compiled off the request path and swapped in
// atomically; an Evaluate finishes on the generation it started with. A generation that fails to load is
// logged and reported in Status, and the previous one keeps serving. Live is safe for concurrent use and
// satisfies authz.Policy.
type Live struct {
	query string
	log   *slog.Logger
	opts  LiveOptions
	files *fileSource   // set when the policies are local paths
	bndl  *bundleSource // set when they come from a bundle server

	current atomic.Pointer[Policy] // the generation being served
	status  atomic.Pointer[Status]

	mu        sync.Mutex // serializes load attempts and guards what follows
	listeners []func(Status)

	counts cacheCounts // decision cache lookups of every generation
}

// NewLive returns a Live for the configured policy source. With paths, the first generation is loaded
// now and an error (naming file and line) fails start-up; with a bundle, nothing is loaded until Run
// activates the first bundle (Evaluate returns ErrNoPolicy and Ready an error until then).
func NewLive(ctx context.Context, cfg config.Policy, opts LiveOptions) (*Live, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 200 * time.Millisecond
	}
	if opts.Rescan <= 0 {
		opts.Rescan = 10 * time.Second
	}
	query := cfg.Query
	if query == "" {
		query = DefaultQuery
	}
	l := &Live{query: query, log: opts.Log, opts: opts}
	l.status.Store(&Status{})
	if cfg.Bundle != nil {
		b, err := newBundleSource(*cfg.Bundle, l)
		if err != nil {
			return nil, err
		}
		l.bndl = b
		l.log.Info("policy bundle configured; not ready until the first bundle is activated", "url", b.url)
		return l, nil
	}
	if len(cfg.Paths) == 0 {
		return nil, errors.New("policy: no paths and no bundle configured")
	}
	l.files = &fileSource{paths: slices.Clone(cfg.Paths), live: l}
	if err := l.files.reload(ctx, "start"); err != nil {
		return nil, err
	}
	return l, nil
}

// Run watches the policy source and loads each change until ctx ends. Call it once.
func (l *Live) Run(ctx context.Context) error {
	if l.bndl != nil {
		return l.bndl.run(ctx)
	}
	return l.files.run(ctx)
}

// Evaluate decides in with the current generation (Policy.Evaluate); ErrNoPolicy before the first one.
func (l *Live) Evaluate(ctx context.Context, in Input) (Decision, error) {
	p := l.current.Load()
	if p == nil {
		return Decision{}, ErrNoPolicy
	}
	d, err := p.Evaluate(ctx, in)
	d.Revision = p.revision
	return d, err
}

// policyOptions are the options of every generation this Live loads.
func (l *Live) policyOptions() []Option {
	return []Option{WithDecisionCache(l.opts.DecisionCacheSize), WithLogger(l.log), func(o *options) { o.counts = &l.counts }}
}

// CacheStats reports the decision caches: the decisions the current generation holds, and the lookups of
// every generation so far, answered from a cache (Hits) or evaluated (Misses; a generation with its cache
// off counts none).
func (l *Live) CacheStats() CacheStats {
	var s CacheStats
	if p := l.current.Load(); p != nil && p.cache != nil {
		s.Decisions = p.cache.len()
	}
	s.Hits, s.Misses = l.counts.hits.Load(), l.counts.misses.Load()
	return s
}

// Status reports the current generation and the last load attempt.
func (l *Live) Status() Status { return *l.status.Load() }

// Ready reports why no policy can decide yet, or nil once a generation serves (even if a later load failed:
// the last good generation keeps serving, and Status says why it is not the newest).
func (l *Live) Ready() error {
	if l.current.Load() != nil {
		return nil
	}
	if s := l.status.Load(); s.Error != "" {
		return fmt.Errorf("policy: %w: %s", ErrNoPolicy, s.Error)
	}
	return fmt.Errorf("policy: %w", ErrNoPolicy)
}

// Notify registers f to be called, on the loading goroutine, after every load attempt from now on.
// f must not block.
func (l *Live) Notify(f func(Status)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.listeners = append(l.listeners, f)
}

// install swaps p in as the next generation. The caller holds l.mu.
func (l *Live) install(ctx context.Context, p *Policy, revision string, sources []string, trigger string) Status {
	prev := l.status.Load()
	now := time.Now()
	s := Status{
		Generation:  prev.Generation + 1,
		Revision:    revision,
		LoadedAt:    now,
		Sources:     sources,
		LastAttempt: now,
		Loads:       prev.Loads + 1,
		Failures:    prev.Failures,
	}
	p.revision = revision // before the generation is published: never written once it serves
	l.current.Store(p)
	l.status.Store(&s)
	l.log.InfoContext(ctx, "policy loaded", "generation", s.Generation, "revision", revision, "files", p.files, "trigger", trigger)
	l.notify(s)
	return s
}

// refuse records a failed load attempt; the current generation keeps serving. Each problem is logged with
// its file and line; an attempt failing exactly as the previous one is logged at debug level only (a bundle
// server down, polled again and again). The caller holds l.mu.
func (l *Live) refuse(ctx context.Context, err error, revision, trigger string) Status {
	prev := l.status.Load()
	s := *prev
	s.Error = err.Error()
	s.Problems = Problems(err)
	s.LastAttempt = time.Now()
	s.Failures++
	l.status.Store(&s)
	level := slog.LevelError
	if prev.Error == s.Error {
		level = slog.LevelDebug
	}
	msg := "policy load failed; keeping the last good generation"
	if s.Generation == 0 {
		msg = "policy load failed; no generation to serve"
	}
	problems := s.Problems
	if len(problems) == 0 {
		problems = []Problem{{Message: s.Error}}
	}
	for _, p := range problems {
		attrs := make([]slog.Attr, 0, 6)
		if p.File != "" {
			attrs = append(attrs, slog.String("file", p.File))
		}
		if p.Line > 0 {
			attrs = append(attrs, slog.Int("line", p.Line))
		}
		attrs = append(attrs, slog.String("message", p.Message), slog.Uint64("generation", s.Generation), slog.String("trigger", trigger))
		if revision != "" {
			attrs = append(attrs, slog.String("revision", revision))
		}
		l.log.LogAttrs(ctx, level, msg, attrs...)
	}
	l.notify(s)
	return s
}

func (l *Live) notify(s Status) {
	for _, f := range l.listeners {
		f(s)
	}
}
