// Command mcp-devidp runs the development OpenID provider of package test/idp: discovery, JWKS,
// authorization code with PKCE (auto-approved as one user), refresh tokens, client credentials and
// dynamic client registration. It approves everyone, so it binds to 127.0.0.1 by default.
//
// Usage:
//
//	mcp-devidp [-listen 127.0.0.1:9000] [-issuer URL] [-shape standard|okta|cognito] [-ttl 1h]
//	           [-user dev-user] [-email dev-user@example.com] [-groups developers]
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
	"strings"
	"syscall"
	"time"

	"github.com/mcp-authz/mcp-authz/test/idp"
)

// exampleResource is the audience used in the printed curl example.
const exampleResource = "http://127.0.0.1:8000/mcp"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "mcp-devidp:", err)
		os.Exit(1)
	}
}

// run serves the provider until ctx is done. ready, if not nil, is called with the issuer once the
// listener is open.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(issuer string)) error {
	fs := flag.NewFlagSet("mcp-devidp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9000", "address to listen on")
	issuer := fs.String("issuer", "", "issuer URL (default http://<listen address>)")
	shapeName := fs.String("shape", "standard", "access token claim shape: standard, okta or cognito")
	ttl := fs.Duration("ttl", time.Hour, "access token lifetime")
	sub := fs.String("user", "dev-user", "sub of the auto-approved user")
	email := fs.String("email", "dev-user@example.com", "email of the auto-approved user")
	groups := fs.String("groups", "developers", "comma-separated groups of the auto-approved user")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	shape, err := idp.ParseShape(*shapeName)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	defer ln.Close()
	if *issuer == "" {
		*issuer = "http://" + ln.Addr().String()
	}
	var groupList []string
	for g := range strings.SplitSeq(*groups, ",") {
		if g = strings.TrimSpace(g); g != "" {
			groupList = append(groupList, g)
		}
	}
	p, err := idp.New(*issuer,
		idp.WithClaimShape(shape),
		idp.WithAccessTokenTTL(*ttl),
		idp.WithUser(*sub, *email, groupList),
	)
	if err != nil {
		return fmt.Errorf("create provider: %w", err)
	}

	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	srv := &http.Server{
		Handler:           logRequests(logger, p.Handler()),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	printBanner(stdout, p.Issuer(), shape)
	logger.Info("listening", "addr", ln.Addr().String(), "issuer", p.Issuer(), "shape", shape.String())
	if ready != nil {
		ready(p.Issuer())
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

func printBanner(w io.Writer, issuer string, shape idp.Shape) {
	base := strings.TrimSuffix(issuer, "/")
	fmt.Fprintf(w, `mcp-devidp: development OpenID provider (approves everyone; claim shape %s)
  issuer:    %s
  discovery: %s/.well-known/openid-configuration
  clients:   mcp-client (public, PKCE, any loopback redirect URI), demo-service / demo-secret (confidential)

Get a client_credentials token:
  curl -s -u demo-service:demo-secret \
    -d grant_type=client_credentials \
    --data-urlencode 'scope=tools:read tools:call' \
    --data-urlencode 'resource=%s' \
    %s/token

`, shape, issuer, base, exampleResource, base)
}

// logRequests logs one JSON line per request: method, path (without the query, which may carry codes
// and state), status, size and duration. Tokens, codes and secrets are never logged.
func logRequests(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		logger.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status),
			slog.Int("bytes", rec.bytes),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote", r.RemoteAddr),
		)
	})
}

// statusRecorder remembers the status and body size written through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (s *statusRecorder) WriteHeader(status int) {
	s.status = status
	s.ResponseWriter.WriteHeader(status)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	n, err := s.ResponseWriter.Write(b)
	s.bytes += n
	return n, err
}
