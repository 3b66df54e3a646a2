package service_test

import (
	"testing"

	"github.com/mcp-authz/mcp-authz/test/idp"
)

// TestAudienceBoundToResource: an audience configured for one resource (Okta's api://default for the
// tools resource) is accepted there and nowhere else.
func TestAudienceBoundToResource(t *testing.T) {
	e := newEnv(t)
	okta := bearer(mint(t, e.okta, map[string]any{"sub": "carol", "aud": "api://default", "cid": "mcp-client", "scp": []string{"tools:read"}}, idp.WithType("JWT")))
	for _, tr := range transports() {
		t.Run(tr.name, func(t *testing.T) {
			req := checkRequest(okta, "/mcp", listTools)
			if o := tr.check(t, e.inst, req); !o.allowed {
				t.Errorf("api://default on its resource: %+v", o)
			}
			req = checkRequest(okta, "/public/mcp", listTools)
			req.Attributes.ContextExtensions = map[string]string{"resource": publicURL}
			o := tr.check(t, e.inst, req)
			if o.allowed || o.status != 401 {
				t.Errorf("api://default on the public resource: allowed %v status %d, want 401", o.allowed, o.status)
			}
		})
	}
}
