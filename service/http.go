package service

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/forwardauth"
	"github.com/mcp-authz/mcp-authz/policy"
)

// routes is the HTTP listener's handler: Protected Resource Metadata, liveness, readiness, metrics, the
// HTTP authorization endpoint (package forwardauth) under /authz and, when an issuer is bridged, the OAuth
// bridge's endpoints (package bridge). /authz is for the front proxy only: it trusts X-Original-* /
// X-Forwarded-* headers, so it must not be reachable by clients (route only the bridge and the well-known
// paths to the listener from outside). The bridge is not under the check limiter: a user's sign-in is not
// a Check, and shedding it would not relieve the Checks.
func (s *Service) routes() http.Handler {
	mux := http.NewServeMux()
	if h := s.telemetry.MetricsHandler(); h != nil {
		mux.Handle("GET /metrics", h)
	}
	mux.HandleFunc("GET "+authz.WellKnownPath, s.metadata)
	mux.HandleFunc("GET "+authz.WellKnownPath+"/", s.metadata)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		// policy: the generation serving and the last load error, if any (a last good generation serving
		// with a newer one refused is still ready).
		ps := s.policy.Status()
		if err := s.Ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, readiness{Status: "not ready", Reason: err.Error(), Policy: ps})
			return
		}
		writeJSON(w, http.StatusOK, readiness{Status: "ready", Policy: ps})
	})
	if s.bridge != nil {
		s.bridge.Routes(mux)
	}
	fa := s.limit.handler(forwardauth.New(s.authorizer, s.log, forwardauth.Options{Prefix: forwardauth.Prefix,
		MaxBody: s.cfg.MaxBodyBytes, Family: forwardauth.Family(s.cfg.ForwardAuth.RequestHeaders)}))
	// /authz is routed on the request-target as received: the mux would answer a path with dot segments or
	// "//" with a redirect to its cleaned form, and a proxy must get a decision about the path it routes.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rest, ok := strings.CutPrefix(r.RequestURI, forwardauth.Prefix); ok && (rest == "" || rest[0] == '/' || rest[0] == '?') {
			fa.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
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

// readiness is the /readyz document.
type readiness struct {
	Status string        `json:"status"`
	Reason string        `json:"reason,omitempty"`
	Policy policy.Status `json:"policy"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
