package authz

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/test/idp"
)

// TestIdentityMemo: what an adapter derives from an identity is built once per cached token and shared by
// the requests carrying it; without the token cache (or on the first, fresh verification) it is built on
// every request.
func TestIdentityMemo(t *testing.T) {
	const issuer = "https://idp.example.com"
	const resURL = "https://mcp.example.com/mcp"
	p, err := idp.New(issuer)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := p.Mint(map[string]any{"sub": "alice", "aud": resURL})
	if err != nil {
		t.Fatal(err)
	}
	is := config.Issuer{Issuer: issuer, DiscoveryURL: issuer + config.OIDCDiscoverySuffix, Algorithms: config.DefaultAlgorithms, MinRefreshInterval: config.Duration(time.Hour)}
	ks := NewKeySet(is, nil, slog.New(slog.NewJSONHandler(io.Discard, nil)), nil)
	installSet(ks, p.PublicJWKS())
	ks.lastFetch = time.Now()
	type key struct{}
	tests := []struct {
		name      string
		opts      []VerifierOption
		wantBuilt int
	}{
		{"token cache on", nil, 2}, // the first request verifies afresh, the next two share the cached token's
		{"token cache off", []VerifierOption{WithTokenCache(0)}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier([]config.Issuer{is}, map[string]*KeySet{issuer: ks}, time.Minute, time.Now, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			built := 0
			var first any
			for i := range 3 {
				id, e := v.Verify(context.Background(), tok, []string{resURL})
				if e != nil {
					t.Fatal(e)
				}
				got := id.Memo(key{}, func() any { built++; return &struct{ sub string }{id.Subject} })
				if i == 1 {
					first = got
				} else if i == 2 && tc.wantBuilt == 2 && got != first {
					t.Errorf("request %d got a different memoized value", i)
				}
			}
			if built != tc.wantBuilt {
				t.Errorf("built %d times, want %d", built, tc.wantBuilt)
			}
		})
	}
}
