package mcpserver

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// WithAPI adds the tool call_api, which calls url (a second protected API) as the user: with the bearer
// token the proxy put in Authorization (the token mcp-authz exchanged for the API's audience), and only
// when there is one. client sends the call; nil is a client with a 10 s timeout.
func WithAPI(url string, client *http.Client) Option {
	return func(s *Server) {
		s.apiURL, s.apiClient = url, client
		if client == nil {
			s.apiClient = &http.Client{Timeout: 10 * time.Second}
		}
	}
}

// maxAPIBody bounds what call_api reads of the API's answer.
const maxAPIBody = 64 << 10

type apiOut struct {
	// Status is the API's HTTP status, 0 when it was not called.
	Status int `json:"status"`
	// Body is the API's answer.
	Body string `json:"body"`
}

// addAPITool registers call_api.
func addAPITool(srv *mcp.Server, apiURL string, client *http.Client) {
	mcp.AddTool(srv, &mcp.Tool{Name: "call_api", Description: "Call the example API as the user and return its answer."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, apiOut, error) {
			authz := ""
			if req.Extra != nil && req.Extra.Header != nil {
				authz = req.Extra.Header.Get("Authorization")
			}
			if authz == "" {
				return nil, apiOut{}, fmt.Errorf("no credential for the API: the proxy sent no Authorization")
			}
			r, err := http.NewRequestWithContext(ctx, http.MethodGet, apiURL, nil)
			if err != nil {
				return nil, apiOut{}, err
			}
			r.Header.Set("Authorization", authz)
			resp, err := client.Do(r)
			if err != nil {
				return nil, apiOut{}, fmt.Errorf("call the API: %w", err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIBody))
			if err != nil {
				return nil, apiOut{}, fmt.Errorf("read the API's answer: %w", err)
			}
			return nil, apiOut{Status: resp.StatusCode, Body: string(b)}, nil
		})
}
