package service

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// checkLimit bounds the Checks in progress, over gRPC and HTTP together. A Check over the bound is refused
// at once rather than queued: under overload a queue only adds latency to every Check until the proxy's own
// timeout turns them all into errors, while a fast refusal lets the proxy fail closed (or retry on another
// replica) and keeps the admitted Checks' latency bounded. A gRPC Check counts from the moment its stream
// arrives (tap), before its request is read or decoded, for that is where the queue forms when the CPU is
// short, and until its stream ends.
type checkLimit struct {
	slots   chan struct{}
	shed    metric.Int64Counter
	log     *slog.Logger
	lastLog atomic.Int64 // unix nanoseconds of the last "shedding" log line: one a second at most
}

// checkMethod is the full gRPC method name of ext_authz Check: the only method limited.
var checkMethod = "/" + authv3.Authorization_ServiceDesc.ServiceName + "/Check"

func newCheckLimit(n int, meter metric.Meter, log *slog.Logger) (*checkLimit, error) {
	shed, err := meter.Int64Counter("mcp_authz.checks.shed", metric.WithUnit("{check}"),
		metric.WithDescription("Checks refused without a decision because server.max_concurrent_checks were in flight"))
	if err != nil {
		return nil, fmt.Errorf("metric mcp_authz.checks.shed: %w", err)
	}
	return &checkLimit{slots: make(chan struct{}, n), shed: shed, log: log}, nil
}

// acquire takes a slot if one is free; the caller releases it when the Check is answered.
func (l *checkLimit) acquire(ctx context.Context, transport string) bool {
	select {
	case l.slots <- struct{}{}:
		return true
	default:
	}
	l.shed.Add(ctx, 1)
	now := time.Now().UnixNano()
	if last := l.lastLog.Load(); now-last > int64(time.Second) && l.lastLog.CompareAndSwap(last, now) {
		l.log.Warn("shedding checks: server.max_concurrent_checks in flight", "limit", cap(l.slots), "transport", transport)
	}
	return false
}

func (l *checkLimit) release() { <-l.slots }

// tap admits an ext_authz Check stream as it arrives, or refuses it with UNAVAILABLE before anything of it
// is read; the slot is released when the stream's context ends, however the stream ends. Other methods
// (health, reflection) pass.
func (l *checkLimit) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	if info.FullMethodName != checkMethod {
		return ctx, nil
	}
	if !l.acquire(ctx, "grpc") {
		return nil, status.Error(codes.Unavailable, "mcp-authz overloaded: check refused without a decision")
	}
	context.AfterFunc(ctx, l.release)
	return ctx, nil
}

// handler limits HTTP authorization requests: over the bound, 503 (nginx and Caddy fail closed on it).
func (l *checkLimit) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !l.acquire(r.Context(), "http") {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"jsonrpc": "2.0", "id": nil,
				"error": map[string]any{"code": -32603, "message": "mcp-authz overloaded"}})
			return
		}
		defer l.release()
		next.ServeHTTP(w, r)
	})
}
