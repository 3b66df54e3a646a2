// Package mcpserver is a small but real MCP server, built on the official MCP Go SDK (streamable HTTP
// transport), that stands behind mcp-authz in the end-to-end tests and in `make run`. It offers three tools,
// list_files, echo and admin_reset (and call_api, which calls a second API as the user, WithAPI), and
// records the headers of every HTTP request it receives so tests can check what the front proxy let
// through (identity headers in, Authorization out).
//
// By default it does no authorization of its own: it trusts the proxy in front of it, as an MCP server
// behind mcp-authz on a private network may. WithIdentityVerifier makes it verify mcp-authz's signed
// identity assertion instead, and refuse (401) every request without a valid one: then nothing that
// bypasses the proxy is served, whatever identity headers it forges.
package mcpserver

import (
	"context"
	"net/http"
	"slices"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// maxRecords bounds the request log; older records are dropped.
const maxRecords = 512

// Record is one HTTP request the server received.
type Record struct {
	// Method and Path of the request.
	Method, Path string
	// Header is a copy of the request headers.
	Header http.Header
	// Subject is the `sub` of the verified identity assertion (with WithIdentityVerifier).
	Subject string
	// Refusal says why the request was refused for its identity assertion (with WithIdentityVerifier);
	// empty when it was served.
	Refusal string
}

// Option changes a Server built by New.
type Option func(*Server)

// WithRequestLog calls f with the record of every request, once it is decided whether it is served.
func WithRequestLog(f func(Record)) Option { return func(s *Server) { s.logRequest = f } }

// WithIdentityVerifier makes the server serve only requests whose identity assertion v verifies.
func WithIdentityVerifier(v *IdentityVerifier) Option { return func(s *Server) { s.verifier = v } }

// Server is the example MCP server. It is safe for concurrent use.
type Server struct {
	handler    http.Handler
	verifier   *IdentityVerifier // nil: the proxy is trusted
	logRequest func(Record)      // nil: not logged
	apiURL     string            // call_api calls it (WithAPI); "": no call_api
	apiClient  *http.Client

	mu      sync.Mutex
	records []Record
	resets  int
}

// fileList is what list_files returns: a fixed listing, the same on every machine.
func fileList() []string { return []string{"README.md", "go.mod", "main.go", "notes/todo.txt"} }

// New returns the server.
func New(opts ...Option) *Server {
	s := &Server{}
	for _, o := range opts {
		o(s)
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "mcp-example-server", Version: "1.0.0"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "list_files", Description: "List the files of the example project."},
		func(_ context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, listOut, error) {
			return nil, listOut{Files: fileList()}, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "Return the message it is given."},
		func(_ context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, echoOut, error) {
			return nil, echoOut(in), nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "admin_reset", Description: "Reset the server's request log (administrators only)."},
		func(_ context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, resetOut, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.resets++
			return nil, resetOut{Resets: s.resets}, nil
		})
	if s.apiURL != "" {
		addAPITool(srv, s.apiURL, s.apiClient)
	}
	// Stateless: MCP 2026-07-28 (server/discover, no Mcp-Session-Id) is served only by a stateless handler;
	// older clients still initialize, each request on a session of its own.
	s.handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: true})
	return s
}

type listOut struct {
	Files []string `json:"files"`
}

type echoIn struct {
	Message string `json:"message" jsonschema:"the message to return"`
}

type echoOut struct {
	Message string `json:"message"`
}

type resetOut struct {
	Resets int `json:"resets"`
}

// ServeHTTP verifies the identity assertion (with WithIdentityVerifier), records the request, then serves
// MCP's streamable HTTP transport, or refuses the request with 401.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := Record{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone()}
	if s.verifier != nil {
		tok, err := s.verifier.Verify(r.Context(), r)
		if err != nil {
			rec.Refusal = err.Error()
		} else {
			rec.Subject = tok.Subject()
		}
	}
	s.mu.Lock()
	if len(s.records) == maxRecords {
		s.records = slices.Delete(s.records, 0, 1)
	}
	s.records = append(s.records, rec)
	s.mu.Unlock()
	if s.logRequest != nil {
		s.logRequest(rec)
	}
	if rec.Refusal != "" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(identityRefusal))
		return
	}
	s.handler.ServeHTTP(w, r)
}

// Records returns a copy of the requests received so far, oldest first.
func (s *Server) Records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.records)
}

// Resets returns how many times admin_reset ran.
func (s *Server) Resets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resets
}
