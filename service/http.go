package service

import (
	"encoding/json"
	"net/http"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/forwardauth"
)

// routes is the HTTP listener's handler: Protected Resource Metadata, liveness, readiness and the HTTP
// authorization endpoint (package forwardauth) under /authz. /authz is for the front proxy only: it trusts
// X-Original-* / X-Forwarded-* headers, so the listener must not be reachable by clients.
func (s *Service) routes() http.Handler {
	mux := http.NewServeMux()
	fa := forwardauth.New(s.authorizer, forwardauth.Prefix, s.cfg.MaxBodyBytes)
	mux.Handle(forwardauth.Prefix, fa)
	mux.Handle(forwardauth.Prefix+"/", fa)
	mux.HandleFunc("GET "+authz.WellKnownPath, s.metadata)
	mux.HandleFunc("GET "+authz.WellKnownPath+"/", s.metadata)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := s.Ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	return mux
}

// metadata serves RFC 9728 Protected Resource Metadata at the root and path-inserted well-known URLs.
func (s *Service) metadata(w http.ResponseWriter, r *http.Request) {
	doc, ok := s.authorizer.Metadata(r.Host, r.URL.EscapedPath())
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Access-Control-Allow-Origin", "*") // browser-based MCP clients fetch it cross-origin
	w.Write(doc)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
