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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/exchange"
)

// TestTokenExchangeInCheck runs token exchange inside whole Checks, where the token cache hands the
// exchanger a memoizing identity: the exchanged token replaces the client's, later requests with the token
// reuse it without an exchange, and once it is no longer fresh the next request exchanges again.
func TestTokenExchangeInCheck(t *testing.T) {
	var exchanges atomic.Int32
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := exchanges.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "exchanged-" + string(rune('0'+n)), "token_type": "Bearer", "expires_in": 300})
	}))
	defer as.Close()
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ex, err := exchange.New(config.Config{
		Resources: []config.Resource{{URL: resourceURL, TokenExchange: &config.TokenExchange{TokenEndpoint: as.URL + "/token",
			Audience: "https://api.example.com", ClientID: "mcp-authz", ClientSecretFile: secret,
			RequestedTokenType: config.TokenTypeAccessToken, Timeout: config.Duration(5 * time.Second)}}},
		TokenExchangeCache: config.TokenExchangeCache{MaxEntries: 16},
	}, exchange.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), "", authz.WithCredentials(ex))
	req := request(map[string]string{"authorization": "Bearer " + h.token(t, nil)}, "/mcp", listTools)
	check := func(want string) {
		t.Helper()
		d := h.authz.Check(context.Background(), req)
		if !d.Allow {
			t.Fatalf("denied: %s", d.Reason)
		}
		got := ""
		for _, hd := range d.Headers {
			if hd.Name == "authorization" {
				got = hd.Value
			}
		}
		if got != want {
			t.Fatalf("authorization = %q, want %q", got, want)
		}
	}
	for range 3 {
		check("Bearer exchanged-1")
	}
	if n := exchanges.Load(); n != 1 {
		t.Fatalf("%d exchanges for one token, want 1", n)
	}
	mu.Lock()
	now = now.Add(271 * time.Second) // past 300 s - 30 s
	mu.Unlock()
	check("Bearer exchanged-2")
	check("Bearer exchanged-2")
	if n := exchanges.Load(); n != 2 {
		t.Fatalf("%d exchanges, want 2 (the first no longer fresh)", n)
	}
}
