package assertion_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/assertion"
	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/envoy"
	"github.com/mcp-authz/mcp-authz/test/benchenv"
	"google.golang.org/protobuf/proto"
)

// BenchmarkAllow measures the whole allow path in process (envoy.Server.Check and the response encoded,
// as envoy.BenchmarkCheck does) over the load benchmark's small corpus, with the identity assertion off
// and on: "on" over "off" is the assertion's cost on the cached path (tokens seen before). cpu-ns/op is
// the process's CPU time per Check (user and system, garbage collection included): unlike ns/op it does
// not count the time spent waiting for a core on a shared machine.
func BenchmarkAllow(b *testing.B) {
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	e, err := benchenv.New(context.Background(), "../deploy/policies", log)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	corpus, err := benchenv.Corpus(e.IdP.Provider, 4)
	if err != nil {
		b.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	file := filepath.Join(b.TempDir(), "key.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg := e.Config
	cfg.Resources = append([]config.Resource(nil), cfg.Resources...)
	cfg.Resources[0].IdentityAssertion = true
	cfg.IdentityAssertion = &config.IdentityAssertion{Issuer: "https://authz.example.com", Header: config.DefaultAssertionHeader,
		TTL: config.Duration(time.Minute), SigningKeys: []string{file}, RotationGrace: config.Duration(10 * time.Minute)}
	keys, err := assertion.LoadKeys(*cfg.IdentityAssertion, assertion.KeysOptions{})
	if err != nil {
		b.Fatal(err)
	}
	minter := assertion.NewMinter(cfg, keys, log, nil)
	on, err := authz.New(cfg, e.Verifier, e.Policy, log, authz.WithCredentials(minter))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		a    *authz.Authorizer
	}{{"off", e.Authorizer}, {"on", on}} {
		b.Run(bc.name, func(b *testing.B) {
			srv := envoy.NewServer(bc.a)
			before := minter.Minted()
			cpu := cpuTime(b)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c := corpus[i%len(corpus)]
				i++
				resp, err := srv.Check(ctx, c.Request)
				if err != nil || (resp.GetOkResponse() != nil) != c.Allow {
					b.Fatalf("%s: %v %v", c.Name, resp, err)
				}
				if _, err := proto.Marshal(resp); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(minter.Minted()-before)/float64(b.N), "mints/op")
		})
	}
}

// cpuTime is the CPU time this process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
