package authz

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/policy"
	"github.com/mcp-authz/mcp-authz/test/idp"
)

// FuzzCheck feeds hostile Authorization headers and bodies to the whole decision path: it must never panic,
// and it must never allow anything but the one valid token it was seeded with.
func FuzzCheck(f *testing.F) {
	const issuer = "https://idp.example.com"
	const resURL = "https://mcp.example.com/mcp"
	p, err := idp.New(issuer)
	if err != nil {
		f.Fatal(err)
	}
	valid, err := p.Mint(map[string]any{"sub": "alice", "aud": resURL, "client_id": "c", "scope": "tools:read"})
	if err != nil {
		f.Fatal(err)
	}
	is := config.Issuer{Issuer: issuer, DiscoveryURL: issuer + config.OIDCDiscoverySuffix, Algorithms: config.DefaultAlgorithms, MinRefreshInterval: config.Duration(time.Hour)}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	ks := NewKeySet(is, nil, log, nil)
	installSet(ks, p.PublicJWKS())
	ks.lastFetch = time.Now() // no refetch: there is no server
	v, err := NewVerifier([]config.Issuer{is}, map[string]*KeySet{issuer: ks}, time.Minute, time.Now)
	if err != nil {
		f.Fatal(err)
	}
	pol, err := policy.Load(context.Background(), []string{"../deploy/policies"}, policy.DefaultQuery)
	if err != nil {
		f.Fatal(err)
	}
	cfg := config.Config{Resources: []config.Resource{{URL: resURL, AuthorizationServers: []string{issuer}}}, MaxBodyBytes: 1 << 16,
		IdentityHeaders: config.IdentityHeaders{Subject: "x-s", ClientID: "x-c", Scopes: "x-sc", Issuer: "x-i", Email: "x-e"}}
	a, err := New(cfg, v, pol, log)
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(valid, ".")
	f.Add("Bearer "+valid, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	f.Add("Bearer "+parts[0]+"."+parts[1]+".", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_reset"}}`)
	f.Add("Bearer "+parts[0]+".e30."+parts[2], "")
	f.Add("Bearer eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlLmNvbSJ9.", `[]`)
	f.Add("Bearer "+strings.Repeat("A", 100)+"."+strings.Repeat("B", 100)+".C", `{"jsonrpc":"2.0","id":{"x":[1,2]},"method":5}`)
	f.Fuzz(func(t *testing.T, authorization, body string) {
		req := &Request{Method: "POST", Scheme: "https", Host: "mcp.example.com", Path: "/mcp",
			Headers: map[string]string{"authorization": authorization, "content-type": "application/json"}, Body: []byte(body), Resource: resURL}
		d := a.Check(context.Background(), req)
		if d.Allow && strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(authorization, "Bearer "), "bearer ")) != valid {
			t.Fatalf("allowed a token that is not the valid one: %q", authorization)
		}
		if !d.Allow && (d.Status < 400 || len(d.Body) == 0) {
			t.Fatalf("deny without status or body: %+v", d)
		}
	})
}
