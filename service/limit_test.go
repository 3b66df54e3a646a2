package service

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestCheckLimit fills every slot with a Check that waits, then checks that one more is refused at once
// (gRPC UNAVAILABLE, HTTP 503), that other gRPC methods still pass, and that a freed slot admits again.
func TestCheckLimit(t *testing.T) {
	const n = 3
	l, err := newCheckLimit(n, noop.NewMeterProvider().Meter("test"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var started, done sync.WaitGroup
	blocking := func(context.Context, any) (any, error) { started.Done(); <-release; return "decided", nil }
	check := &grpc.UnaryServerInfo{FullMethod: checkMethod}
	for range n {
		started.Add(1)
		done.Add(1)
		go func() { defer done.Done(); l.unary(context.Background(), nil, check, blocking) }()
	}
	started.Wait()

	quick := func(context.Context, any) (any, error) { return "decided", nil }
	if _, err := l.unary(context.Background(), nil, check, quick); status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC Check over the limit: %v, want UNAVAILABLE", err)
	}
	if v, err := l.unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/grpc.health.v1.Health/Check"}, quick); err != nil || v != "decided" {
		t.Errorf("health check over the limit: %v %v, want it served", v, err)
	}
	w := httptest.NewRecorder()
	l.handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })).ServeHTTP(w, httptest.NewRequest("GET", "/authz", nil))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("HTTP check over the limit: %d %v, want 503 with Retry-After", w.Code, w.Header())
	}

	close(release)
	done.Wait()
	if v, err := l.unary(context.Background(), nil, check, quick); err != nil || v != "decided" {
		t.Errorf("Check after slots were freed: %v %v", v, err)
	}
	if len(l.slots) != 0 {
		t.Errorf("%d slots still held", len(l.slots))
	}
}
