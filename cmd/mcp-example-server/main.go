// Command mcp-example-server runs the example MCP server of package test/mcpserver (tools list_files, echo
// and admin_reset; with -api, call_api) over streamable HTTP at /mcp. Put it behind a proxy that asks
// mcp-authz. By default it trusts that proxy's identity headers, so keep it on 127.0.0.1; with
// -identity-jwks it verifies the signed identity assertion mcp-authz adds instead
// (resources[].identity_assertion: true) and refuses (401) every request without a valid one, so that a
// request that bypasses the proxy is never served.
//
// Usage:
//
//	mcp-example-server [-listen 127.0.0.1:8001] [-api https://api.example.com/me]
//	    [-identity-jwks http://127.0.0.1:8080/.well-known/jwks.json -identity-issuer http://127.0.0.1:8080
//	     -identity-audience http://127.0.0.1:8000/mcp [-identity-header x-mcp-identity]]
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
	var id mcpserver.IdentityOptions
	fs.StringVar(&id.JWKSURL, "identity-jwks", "", "verify mcp-authz's identity assertion with this JWKS (<public_url>/.well-known/jwks.json); off when empty")
	fs.StringVar(&id.Issuer, "identity-issuer", "", "the assertion's expected iss (mcp-authz's identity_assertion.issuer, default its public_url)")
	fs.StringVar(&id.Audience, "identity-audience", "", "the assertion's expected aud: this server's resource URL in mcp-authz's configuration")
	fs.StringVar(&id.Header, "identity-header", "x-mcp-identity", "the header that carries the assertion")
	api := fs.String("api", "", "URL of an API the tool call_api calls with the Authorization the proxy sends (the token mcp-authz exchanged); empty: no call_api")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	// Log who the proxy says the caller is, and who the assertion proves it is; never any Authorization
	// header nor the assertion.
	opts := []mcpserver.Option{mcpserver.WithRequestLog(func(r mcpserver.Record) {
		attrs := []any{"method", r.Method, "path", r.Path, "subject", r.Header.Get("X-Mcp-Subject"),
			"client_id", r.Header.Get("X-Mcp-Client-Id"), "authorization_present", r.Header.Get("Authorization") != ""}
		if id.JWKSURL != "" {
			attrs = append(attrs, "verified_subject", r.Subject)
		}
		if r.Refusal != "" {
			log.Warn("request refused", append(attrs, "reason", r.Refusal)...)
			return
		}
		log.Info("request", attrs...)
	})}
	if id.JWKSURL != "" {
		v, err := mcpserver.NewIdentityVerifier(ctx, id)
		if err != nil {
			return err
		}
		opts = append(opts, mcpserver.WithIdentityVerifier(v))
	}
	if *api != "" {
		opts = append(opts, mcpserver.WithAPI(*api, nil))
	}
	mcpSrv := mcpserver.New(opts...)
	mux := http.NewServeMux()
	mux.Handle("/mcp", mcpSrv)
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
