// Command mcp-authz is an Envoy external-authorization service that puts OAuth in front of MCP servers.
//
//	mcp-authz serve --config config.yaml
//	mcp-authz policy test|check|eval …   (policy tooling; see `mcp-authz policy help`)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/service"
	"github.com/mcp-authz/mcp-authz/telemetry"
)

const usage = `usage: mcp-authz <command> [flags]

commands:
  serve   --config FILE   run the ext_authz gRPC and metadata HTTP listeners
  policy  test|check|eval test, compile or evaluate Rego policies (mcp-authz policy help)
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "policy":
		return policyCommand(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "mcp-authz: unknown command %q\n%s", args[0], usage)
		return 2
	}
}

func serve(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "config.yaml", "configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "mcp-authz: %v\n", err)
		return 1
	}
	log, closeLog := telemetry.NewLogger(stderr, cfg.Log)
	defer closeLog() // last: after the shutdown's own lines
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	tel, err := telemetry.New(ctx, cfg.Telemetry)
	if err != nil {
		log.Error("start-up failed", "error", err.Error())
		return 1
	}
	defer func() {
		// Flush the spans still buffered; ctx is already cancelled by the signal.
		flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tel.Shutdown(flushCtx); err != nil {
			log.Warn("telemetry shutdown", "error", err.Error())
		}
	}()
	log.Info("telemetry", "tracing", tel.Tracing(), "metrics", tel.MetricsHandler() != nil)
	log.Info("runtime", "gogc", service.TuneGC(os.Getenv), "gomemlimit_bytes", debug.SetMemoryLimit(-1))
	svc, err := service.New(ctx, cfg, log, service.WithTelemetry(tel))
	if err != nil {
		log.Error("start-up failed", "error", err.Error())
		return 1
	}
	if err := svc.Run(ctx); err != nil {
		log.Error("serve failed", "error", err.Error())
		return 1
	}
	return 0
}
