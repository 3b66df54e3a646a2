package bridge

import (
	"net/http"
	"strings"
	"testing"
)

// TestIDPUnavailable: without the IdP's discovery document the client gets temporarily_unavailable.
func TestIDPUnavailable(t *testing.T) {
	e := newEnv(t, envOptions{})
	redirect := "http://127.0.0.1:5555/cb"
	f := e.newFlow(e.register(redirect), redirect)
	e.idp.SetDown(true)
	r := f.authorize()
	if r.status != http.StatusFound || r.location.Query().Get("error") != "temporarily_unavailable" {
		t.Fatalf("%d %v", r.status, r.location)
	}
	if !strings.Contains(e.logs.String(), `"outcome":"error"`) {
		t.Error("not logged as an error")
	}
}
