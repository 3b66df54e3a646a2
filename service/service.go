// Package service wires one running mcp-authz: the key sets of the trusted issuers, the policy, the
// authorizer, the Envoy ext_authz gRPC listener and the HTTP listener (Protected Resource Metadata, health,
// readiness), with graceful shutdown.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/mcp-authz/mcp-authz/assertion"
	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/bridge"
	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/envoy"
	"github.com/mcp-authz/mcp-authz/exchange"
	"github.com/mcp-authz/mcp-authz/policy"
	"github.com/mcp-authz/mcp-authz/telemetry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

// Service is one configured mcp-authz, ready to Run.
type Service struct {
	cfg        config.Config
	log        *slog.Logger
	keys       []*authz.KeySet
	policy     *policy.Live
	authorizer *authz.Authorizer
	grpc       *grpc.Server
	health     *health.Server
	http       *http.Server
	telemetry  *telemetry.Providers
	limit      *checkLimit
	assertion  *assertion.Keys // nil without identity_assertion
	bridge     *bridge.Bridge  // nil when no issuer is bridged
	draining   atomic.Bool     // set on shutdown: /readyz answers 503 while in-flight requests finish
}

// Option changes a Service built by New.
type Option func(*options)

type options struct {
	telemetry *telemetry.Providers
	bridge    []bridge.Option
}

// WithTelemetry records spans and metrics with p; the caller shuts p down after Run returns. Without it the
// service serves metrics of its own and traces nothing.
func WithTelemetry(p *telemetry.Providers) Option { return func(o *options) { o.telemetry = p } }

// WithBridgeOptions passes opts to the OAuth bridge (package bridge), when the configuration has one: a
// client for the IdP calls, the roots that verify Client ID Metadata Document hosts, a clock.
func WithBridgeOptions(opts ...bridge.Option) Option {
	return func(o *options) { o.bridge = append(o.bridge, opts...) }
}

// New builds the service from a validated configuration: it compiles the policies (an error names the
// file and line; with a bundle, the first one is downloaded once Run starts) but fetches no keys yet.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opts ...Option) (*Service, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.telemetry == nil {
		var err error
		o.telemetry, err = telemetry.New(ctx, cfg.Telemetry, telemetry.WithGetenv(func(string) string { return "" }))
		if err != nil {
			return nil, err
		}
	}
	tel, err := newTelemetry(o.telemetry)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 10 * time.Second}
	keys := map[string]*authz.KeySet{}
	s := &Service{cfg: cfg, log: log, telemetry: o.telemetry}
	for _, is := range cfg.Issuers {
		ks := authz.NewKeySet(is, client, log, tel)
		keys[is.Issuer] = ks
		s.keys = append(s.keys, ks)
	}
	verifier, err := authz.NewVerifier(cfg.Issuers, keys, time.Duration(cfg.Leeway), time.Now, authz.WithTokenCache(cfg.TokenCache.MaxEntries))
	if err != nil {
		return nil, err
	}
	s.policy, err = policy.NewLive(ctx, cfg.Policy, policy.LiveOptions{Log: log})
	if err != nil {
		return nil, err
	}
	authzOpts := []authz.Option{authz.WithTelemetry(tel)}
	if a := cfg.IdentityAssertion; a != nil {
		if s.assertion, err = assertion.LoadKeys(*a, assertion.KeysOptions{Log: log}); err != nil {
			return nil, err
		}
		minter := assertion.NewMinter(cfg, s.assertion, log, nil)
		if err := observeAssertions(o.telemetry.MeterProvider().Meter("github.com/mcp-authz/mcp-authz/service"), minter); err != nil {
			return nil, err
		}
		authzOpts = append(authzOpts, authz.WithCredentials(minter))
	}
	ex, err := exchange.New(cfg, exchange.Options{Client: &http.Client{}, Log: log,
		Meter: o.telemetry.MeterProvider().Meter("github.com/mcp-authz/mcp-authz/exchange")})
	if err != nil {
		return nil, err
	}
	if ex != nil { // resources with token_exchange: their allows carry the exchanged token
		authzOpts = append(authzOpts, authz.WithCredentials(ex))
	}
	s.authorizer, err = authz.New(cfg, verifier, s.policy, log, authzOpts...)
	if err != nil {
		return nil, err
	}
	if err := observe(tel, s.keys, s.policyStatus, s.policy.CacheStats); err != nil {
		return nil, err
	}
	envoyOpts := []envoy.Option{envoy.WithClaimsMetadata(cfg.DynamicMetadata.Claims)}
	if o.telemetry.Tracing() {
		envoyOpts = append(envoyOpts, envoy.WithTracing(tel))
	}
	s.limit, err = newCheckLimit(cfg.Server.MaxConcurrentChecks, o.telemetry.MeterProvider().Meter("github.com/mcp-authz/mcp-authz/service"), log)
	if err != nil {
		return nil, err
	}
	bridgeOpts := append([]bridge.Option{bridge.WithMeter(o.telemetry.MeterProvider().Meter("github.com/mcp-authz/mcp-authz/bridge"))}, o.bridge...)
	if s.bridge, err = bridge.New(cfg, log, bridgeOpts...); err != nil {
		return nil, err
	}
	s.grpc = grpc.NewServer(grpcOptions(s.limit, cfg.Server.ConnectionAge())...)
	authv3.RegisterAuthorizationServer(s.grpc, envoy.NewServer(s.authorizer, envoyOpts...))
	s.health = health.NewServer()
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	s.health.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	s.http = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	return s, nil
}

// Authorizer returns the service's authorizer.
func (s *Service) Authorizer() *authz.Authorizer { return s.authorizer }

// Policy returns the live policy: its Status (generation, revision, last load error) and Notify, for
// readiness and metrics.
func (s *Service) Policy() *policy.Live { return s.policy }

// Run listens on the configured addresses and serves until ctx ends, then drains in-flight requests.
func (s *Service) Run(ctx context.Context) error {
	var lc net.ListenConfig
	gl, err := lc.Listen(ctx, "tcp", s.cfg.Listen.GRPC)
	if err != nil {
		return fmt.Errorf("listen.grpc: %w", err)
	}
	hl, err := lc.Listen(ctx, "tcp", s.cfg.Listen.HTTP)
	if err != nil {
		gl.Close()
		return fmt.Errorf("listen.http: %w", err)
	}
	return s.Serve(ctx, gl, hl)
}

// Serve serves on the given listeners until ctx ends.
func (s *Service) Serve(ctx context.Context, grpcL, httpL net.Listener) error {
	var policyDone sync.WaitGroup
	defer policyDone.Wait() // after cancel below: the policy watch has stopped when Serve returns
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, ks := range s.keys {
		go ks.Run(ctx)
	}
	policyDone.Go(func() {
		if err := s.policy.Run(ctx); err != nil {
			s.log.Error("policy watch stopped", "error", err.Error())
		}
	})
	if s.assertion != nil {
		go s.assertion.Run(ctx)
	}
	go s.watchReadiness(ctx)
	if s.bridge != nil {
		go s.bridge.Run(ctx)
	}
	s.log.Info("mcp-authz serving", "grpc", grpcL.Addr().String(), "http", httpL.Addr().String(), "resources", len(s.cfg.Resources), "issuers", len(s.cfg.Issuers))
	errc := make(chan error, 2)
	go func() { errc <- s.grpc.Serve(grpcL) }()
	go func() {
		if err := s.http.Serve(httpL); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		s.log.Error("listener failed", "error", err.Error())
	}
	s.drain()
	shutdownCtx, stop := context.WithTimeout(context.Background(), time.Duration(s.cfg.Server.ShutdownTimeout))
	defer stop()
	if herr := s.http.Shutdown(shutdownCtx); herr != nil {
		s.http.Close()
	}
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-shutdownCtx.Done():
		s.grpc.Stop()
	}
	s.log.Info("mcp-authz stopped")
	return err
}

// drain reports not-ready (gRPC health NOT_SERVING, /readyz 503) and keeps serving for the configured
// shutdown delay, so that load balancers and proxies stop sending before the listeners close.
func (s *Service) drain() {
	s.draining.Store(true)
	s.health.Shutdown()
	if d := time.Duration(s.cfg.Server.ShutdownDelay); d > 0 {
		s.log.Info("shutting down: not ready, still serving", "delay", d.String())
		time.Sleep(d)
	}
}

// watchReadiness flips the gRPC health status to SERVING once every issuer's keys are loaded.
func (s *Service) watchReadiness(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if s.Ready() == nil {
			s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
			s.health.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
			s.log.Info("ready: keys and policies loaded")
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Ready reports why the service cannot decide yet (keys not loaded, no policy generation) or should not be
// sent more requests (shutting down), or nil.
func (s *Service) Ready() error {
	if s.draining.Load() {
		return errShuttingDown
	}
	return errors.Join(s.authorizer.Ready(), s.policy.Ready())
}

var errShuttingDown = errors.New("shutting down")
