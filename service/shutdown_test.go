package service_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/service"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestShutdownDrains stops a service configured with a shutdown delay: during the delay it reports
// not-ready on gRPC health and /readyz but still decides Checks; then its listeners close.
func TestShutdownDrains(t *testing.T) {
	idp := startIdP(t)
	dir := policyDir(t, testData, nil)
	cfg, err := config.Parse(fmt.Appendf(nil, `
resources: [{url: %q}]
issuers: [{discovery_url: %q}]
policy: {paths: [%q]}
server: {shutdown_delay: 1s, shutdown_timeout: 2s}
`, resourceURL, idp.Issuer()+"/.well-known/openid-configuration", dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc, err := service.New(ctx, cfg, slog.New(slog.NewJSONHandler(testWriter{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	gl, _ := net.Listen("tcp", "127.0.0.1:0")
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	stopped := make(chan struct{})
	go func() { svc.Serve(ctx, gl, hl); close(stopped) }()
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health, client := healthpb.NewHealthClient(conn), authv3.NewAuthorizationClient(conn)
	readyz := func() int {
		resp, err := http.Get("http://" + hl.Addr().String() + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(10 * time.Second)
	for readyz() != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	req := checkRequest(bearer(mint(t, idp, userClaims(nil))), "/mcp", listTools)
	if resp, err := client.Check(ctx, req); err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("Check before shutdown: %v %v", resp, err)
	}

	cancel()
	time.Sleep(200 * time.Millisecond) // inside the 1s delay
	if h, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil || h.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("gRPC health while draining: %v %v, want NOT_SERVING", h, err)
	}
	if got := readyz(); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: %d, want 503", got)
	}
	if resp, err := client.Check(context.Background(), req); err != nil || resp.GetOkResponse() == nil {
		t.Errorf("Check while draining: %v %v, want it still decided", resp, err)
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("service did not stop after its delay and timeout")
	}
	if got := readyz(); got != 0 {
		t.Errorf("/readyz after shutdown answered %d", got)
	}
}
