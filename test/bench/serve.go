package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/service"
	"github.com/mcp-authz/mcp-authz/telemetry"
	"google.golang.org/grpc"
)

// serveOptions configure one server child process.
type serveOptions struct {
	kind     string // floor, baseline, baseline-jwtcache, mcp-authz, mcp-authz-claims or mcp-authz-assertion
	issuer   string
	policies string
	jwksFile string
	dataFile string
	logLevel string // mcp-authz decision log level; "off" discards the log
	cpus     string // CPUs the child is pinned to ("" = not pinned)
	extra    string // mcp-authz: configuration appended to the benchmark's (e.g. a server: section)
}

// memStats is what a child reports of its Go runtime, for allocations per check and heap size.
type memStats struct {
	Mallocs    uint64 `json:"mallocs"`
	TotalAlloc uint64 `json:"total_alloc"`
	HeapInuse  uint64 `json:"heap_inuse"`
	NumGC      uint32 `json:"num_gc"`
	Goroutines int    `json:"goroutines"`
}

// policyStats is what an mcp-authz child reports of its live policy.
type policyStats struct {
	Generation uint64 `json:"generation"`
	Loads      uint64 `json:"loads"`
	Failures   uint64 `json:"failures"`
	Error      string `json:"error,omitempty"`
}

// serve runs one target server in this (child) process until stdin closes: it prints
// "LISTEN <grpc address> <stats address>" once ready. The stats listener serves /stats (runtime.MemStats,
// with ?gc=1 after a collection, and the goroutine count), /debug/pprof/ and, for mcp-authz, /policy (the
// live policy's status: generation and load counts).
func serve(o serveOptions) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }() // the parent closes stdin (or dies): stop

	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			runtime.GC()
		}
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		json.NewEncoder(w).Encode(memStats{Mallocs: m.Mallocs, TotalAlloc: m.TotalAlloc, HeapInuse: m.HeapInuse, NumGC: m.NumGC, Goroutines: runtime.NumGoroutine()})
	})
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.Handle("/debug/pprof/goroutine", pprof.Handler("goroutine"))
	mux.Handle("/debug/pprof/heap", pprof.Handler("heap"))
	stats := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go stats.Serve(sl)
	defer stats.Close()

	switch o.kind {
	case "mcp-authz":
		return serveAuthz(ctx, o, gl, sl.Addr().String(), mux, o.extra)
	case "mcp-authz-claims":
		return serveAuthz(ctx, o, gl, sl.Addr().String(), mux, "dynamic_metadata: {claims: true}\n"+o.extra)
	case assertionTarget:
		extra, cleanup, err := assertionConfig()
		if err != nil {
			return err
		}
		defer cleanup()
		return serveAuthz(ctx, o, gl, sl.Addr().String(), mux, extra+o.extra)
	case "floor", "baseline", "baseline-jwtcache":
		s := grpc.NewServer()
		if o.kind == "floor" {
			authv3.RegisterAuthorizationServer(s, newFloorServer())
		} else {
			b, err := newBaselineServer(ctx, o.jwksFile, o.issuer, resourceURL, o.dataFile, o.kind == "baseline-jwtcache")
			if err != nil {
				return err
			}
			authv3.RegisterAuthorizationServer(s, b)
		}
		go func() { <-ctx.Done(); s.Stop() }()
		fmt.Printf("LISTEN %s %s\n", gl.Addr(), sl.Addr())
		return s.Serve(gl)
	}
	return fmt.Errorf("unknown server kind %q", o.kind)
}

// serveAuthz runs mcp-authz as `mcp-authz serve` does (service.New, then Serve), logging its decisions
// as `mcp-authz serve` logs them (JSON lines, batched per log.flush_interval) to the child's stderr (which the parent sends to a file), and announces itself once ready.
func serveAuthz(ctx context.Context, o serveOptions, gl net.Listener, statsAddr string, mux *http.ServeMux, extraConfig string) error {
	service.TuneGC(os.Getenv) // the collector's target of `mcp-authz serve`
	level := o.logLevel
	var w io.Writer = os.Stderr
	if level == "off" {
		level, w = "error", io.Discard
	}
	yaml := configYAML(o.issuer, o.policies, level)
	if o.kind == assertionTarget {
		yaml = strings.Replace(yaml, "    name: tools\n", "    name: tools\n    identity_assertion: true\n", 1)
	}
	cfg, err := config.Parse([]byte(yaml + extraConfig))
	if err != nil {
		return err
	}
	log, closeLog := telemetry.NewLogger(w, cfg.Log) // as `mcp-authz serve` logs
	defer closeLog()
	svc, err := service.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	mux.HandleFunc("/policy", func(w http.ResponseWriter, _ *http.Request) {
		st := svc.Policy().Status()
		json.NewEncoder(w).Encode(policyStats{Generation: st.Generation, Loads: st.Loads, Failures: st.Failures, Error: st.Error})
	})
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- svc.Serve(ctx, gl, hl) }()
	deadline := time.Now().Add(20 * time.Second)
	for svc.Ready() != nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("mcp-authz not ready: %v", svc.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Printf("LISTEN %s %s\n", gl.Addr(), statsAddr)
	return <-done
}
