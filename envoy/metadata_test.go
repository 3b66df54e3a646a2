package envoy_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/mcp-authz/mcp-authz/envoy"
	"github.com/mcp-authz/mcp-authz/test/benchenv"
	"google.golang.org/protobuf/proto"
)

// TestMetadataCachedTokens sends the allows of the benchmark corpus (4 users, 3 tools each) from several
// goroutines, so that most identities come from the token cache with their metadata encoded once and
// shared, and so are their header messages: every response, as Envoy receives it, must carry its own
// user (headers and metadata) and its own tool, and the claims exactly when asked.
func TestMetadataCachedTokens(t *testing.T) {
	e, err := benchenv.New(context.Background(), "../deploy/policies", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	corpus, err := benchenv.Corpus(e.IdP.Provider, 4)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		withClaims := i%2 == 0 // both servers share the authorizer, so the token cache and its memos
		srv := envoy.NewServer(e.Authorizer, envoy.WithClaimsMetadata(withClaims))
		wg.Go(func() {
			for range 3 {
				for _, c := range corpus {
					if !c.Allow {
						continue
					}
					resp, err := srv.Check(t.Context(), c.Request)
					if err != nil {
						t.Error(err)
						return
					}
					b, err := proto.Marshal(resp)
					if err != nil {
						t.Error(err)
						return
					}
					var got authv3.CheckResponse
					if err := proto.Unmarshal(b, &got); err != nil {
						t.Error(err)
						return
					}
					headers := map[string]string{}
					for _, h := range got.GetOkResponse().GetHeaders() {
						headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
					}
					if sub := subject(t, c.Token); headers["x-mcp-subject"] != sub || headers["x-mcp-client-id"] != "mcp-client" {
						t.Errorf("%s: identity headers %v, want the subject %s", c.Name, headers, sub)
					}
					md := got.GetDynamicMetadata().AsMap()
					claims, _ := md["claims"].(map[string]any)
					want := map[string]any{"sub": subject(t, c.Token), "tool": c.Name[len("allow "):], "mcp_method": "tools/call", "resource": benchenv.ResourceURL, "client_id": "mcp-client"}
					for k, v := range want {
						if md[k] != v || v == nil {
							t.Errorf("%s: metadata %s = %v, want %v (%v)", c.Name, k, md[k], v, md)
						}
					}
					if _, ok := md["claims"]; ok != withClaims || withClaims && claims["department"] != "engineering" {
						t.Errorf("%s: claims asked %v, metadata claims = %v", c.Name, withClaims, md["claims"])
					}
				}
			}
		})
	}
	wg.Wait()
}

// subject is the `sub` claim of a JWT, read without verification.
func subject(t *testing.T, token string) string {
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Sub string }
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c.Sub
}
