package service

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// TestCheckLimit fills every slot with a Check stream in progress, then checks that one more is refused at
// once (gRPC UNAVAILABLE at its arrival, HTTP 503), that other gRPC methods still pass, and that the slots
// come back when the streams end.
func TestCheckLimit(t *testing.T) {
	const n = 3
	l, err := newCheckLimit(n, noop.NewMeterProvider().Meter("test"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	check := &tap.Info{FullMethodName: checkMethod}
	var ends []context.CancelFunc
	for range n {
		ctx, end := context.WithCancel(context.Background())
		ends = append(ends, end)
		if _, err := l.tap(ctx, check); err != nil {
			t.Fatalf("Check %d within the limit refused: %v", len(ends), err)
		}
	}
	if _, err := l.tap(context.Background(), check); status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC Check over the limit: %v, want UNAVAILABLE", err)
	}
	if _, err := l.tap(context.Background(), &tap.Info{FullMethodName: "/grpc.health.v1.Health/Check"}); err != nil {
		t.Errorf("health check over the limit: %v, want it served", err)
	}
	w := httptest.NewRecorder()
	l.handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })).ServeHTTP(w, httptest.NewRequest("GET", "/authz", nil))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("HTTP check over the limit: %d %v, want 503 with Retry-After", w.Code, w.Header())
	}

	for _, end := range ends {
		end()
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(l.slots) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d slots still held after every stream ended", len(l.slots))
		}
		time.Sleep(time.Millisecond)
	}
	ctx, end := context.WithCancel(context.Background())
	defer end()
	if _, err := l.tap(ctx, check); err != nil {
		t.Errorf("Check after slots were freed: %v", err)
	}
}
