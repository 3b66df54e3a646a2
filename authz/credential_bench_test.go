package authz_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/exchange"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// BenchmarkCheckTokenExchange is a whole allow of a cached token without token exchange (off) and with it
// on a cache hit (hit): the difference is what token exchange adds to an allow once the user's token is
// exchanged. cpu-ns/op (the process's CPU time per Check) is steadier than ns/op on a shared machine.
func BenchmarkCheckTokenExchange(b *testing.B) {
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "exchanged", "token_type": "Bearer", "expires_in": 3600})
	}))
	defer as.Close()
	secret := filepath.Join(b.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cret"), 0o600); err != nil {
		b.Fatal(err)
	}
	ex, err := exchange.New(config.Config{
		Resources: []config.Resource{{URL: resourceURL, TokenExchange: &config.TokenExchange{TokenEndpoint: as.URL + "/token",
			Audience: "https://api.example.com", ClientID: "mcp-authz", ClientSecretFile: secret,
			RequestedTokenType: config.TokenTypeAccessToken, Timeout: config.Duration(5 * time.Second)}}},
		TokenExchangeCache: config.TokenExchangeCache{MaxEntries: 4096},
	}, exchange.Options{Meter: sdkmetric.NewMeterProvider().Meter("bench")})
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name string
		opts []authz.Option
	}{{"off", nil}, {"hit", []authz.Option{authz.WithCredentials(ex)}}} {
		b.Run(tc.name, func(b *testing.B) {
			h := newHarness(b, nil, log, "log: {allow_sample_rate: 0}\n", tc.opts...)
			req := request(map[string]string{"authorization": "Bearer " + h.token(b, nil)}, "/mcp", listTools)
			if d := h.authz.Check(context.Background(), req); !d.Allow {
				b.Fatalf("denied: %s", d.Reason)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime(b)
			for b.Loop() {
				if d := h.authz.Check(context.Background(), req); !d.Allow {
					b.Fatalf("denied: %s", d.Reason)
				}
			}
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the CPU time the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
