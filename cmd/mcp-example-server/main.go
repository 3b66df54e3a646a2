// Command mcp-example-server runs the example MCP server of package test/mcpserver (tools list_files, echo
// and admin_reset) over streamable HTTP at /mcp. It does no authorization of its own: put it behind a proxy
// that asks mcp-authz, and keep it on 127.0.0.1.
//
// Usage:
//
//	mcp-example-server [-listen 127.0.0.1:8001]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mcp-authz/mcp-authz/test/mcpserver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "mcp-example-server:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done. ready, if not nil, is called with the MCP endpoint's URL once listening.
func run(ctx context.Context, args []string, stderr io.Writer, ready func(url string)) error {
	fs := flag.NewFlagSet("mcp-example-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8001", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	mcpSrv := mcpserver.New()
	mux := http.NewServeMux()
	mux.Handle("/mcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Log who the proxy says the caller is; never any Authorization header.
		log.Info("request", "method", r.Method, "path", r.URL.Path, "subject", r.Header.Get("X-Mcp-Subject"),
			"client_id", r.Header.Get("X-Mcp-Client-Id"), "authorization_present", r.Header.Get("Authorization") != "")
		mcpSrv.ServeHTTP(w, r)
	}))
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	endpoint := "http://" + ln.Addr().String() + "/mcp"
	log.Info("listening", "url", endpoint)
	if ready != nil {
		ready(endpoint)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
