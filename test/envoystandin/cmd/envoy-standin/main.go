// Command envoy-standin runs test/envoystandin as the front proxy of the local stack (`make run`): Envoy
// cannot be installed on the machines this project builds on, and the stack needs a proxy that sends the
// request body to mcp-authz (ext_authz over gRPC, with_request_body), so that method and tool rules hold for
// every MCP client. It is not Envoy: with a real Envoy use deploy/envoy/envoy.yaml.
//
// Usage:
//
//	envoy-standin -listen 127.0.0.1:8000 -authz 127.0.0.1:9191 -metadata http://127.0.0.1:8080 -upstream http://127.0.0.1:8001
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/mcp-authz/mcp-authz/test/envoystandin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "envoy-standin:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("envoy-standin", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8000", "address to listen on")
	authz := fs.String("authz", "127.0.0.1:9191", "mcp-authz's ext_authz gRPC address")
	metadata := fs.String("metadata", "http://127.0.0.1:8080", "mcp-authz's HTTP listener, for the well-known metadata (no check)")
	upstream := fs.String("upstream", "http://127.0.0.1:8001", "the MCP server")
	if err := fs.Parse(args); err != nil {
		return err
	}
	up, err := url.Parse(*upstream)
	if err != nil {
		return fmt.Errorf("-upstream: %w", err)
	}
	meta, err := url.Parse(*metadata)
	if err != nil {
		return fmt.Errorf("-metadata: %w", err)
	}
	conn, err := grpc.NewClient(*authz, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("-authz: %w", err)
	}
	defer conn.Close()
	proxy := envoystandin.New(authv3.NewAuthorizationClient(conn), []envoystandin.Route{
		{Prefix: "/", Upstream: up},
		{Prefix: "/.well-known/oauth-protected-resource", Upstream: meta, CheckDisabled: true},
	}, envoystandin.Options{StatusOnError: http.StatusServiceUnavailable, Timeout: 500 * time.Millisecond})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
