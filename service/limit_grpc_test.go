package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/test/idp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestCheckLimitOverGRPC holds the one Check slot of a service with a Check whose key lookup hangs (an
// unknown kid makes the key set refetch from a JWKS endpoint that does not answer), then sends another: it
// is refused with UNAVAILABLE at once, without waiting for the first, and the slot comes back once the first
// ends.
func TestCheckLimitOverGRPC(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + l.Addr().String()
	prov, err := idp.New(issuer)
	if err != nil {
		t.Fatal(err)
	}
	var hang atomic.Bool
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "jwks_uri": issuer + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		json.NewEncoder(w).Encode(prov.PublicJWKS())
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { close(release); srv.Close() })

	inst := startService(t, fmt.Sprintf(`
resources: [{url: %q}]
issuers: [{discovery_url: %q, min_refresh_interval: 1ms}]
policy: {paths: [%q]}
server: {max_concurrent_checks: 1}
`, resourceURL, issuer+"/.well-known/openid-configuration", policyDir(t, testData, nil)), true)
	hang.Store(true)

	unknownKID := idp.UnsignedToken(map[string]any{"alg": "RS256", "kid": "rotated-in"}, map[string]any{"iss": issuer, "sub": "alice",
		"aud": resourceURL, "exp": time.Now().Add(time.Hour).Unix()}) + "c2ln"
	first := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := inst.client.Check(ctx, checkRequest(bearer(unknownKID), "/mcp", listTools))
		first <- err
	}()
	time.Sleep(300 * time.Millisecond) // the first Check is now waiting on the JWKS endpoint

	start := time.Now()
	_, err = inst.client.Check(context.Background(), checkRequest(bearer(mint(t, prov, userClaims(nil))), "/mcp", listTools))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("second Check while the slot is held: %v, want UNAVAILABLE", err)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Errorf("the refusal took %v: it waited for the first Check", waited)
	}
	select {
	case err := <-first:
		t.Logf("first Check ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("first Check never ended")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := inst.client.Check(context.Background(), checkRequest(bearer(mint(t, prov, userClaims(nil))), "/mcp", listTools))
		if err == nil {
			if resp.GetOkResponse() == nil {
				t.Fatalf("Check after the slot came back: %v", resp)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot never came back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
