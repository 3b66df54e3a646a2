package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"
)

// readyz reads /readyz: its HTTP status and document.
func readyz(t *testing.T, inst *instance) (int, readyzDoc) {
	t.Helper()
	status, body := get(t, inst.http+"/readyz")
	var doc readyzDoc
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	return status, doc
}

type readyzDoc struct {
	Status string `json:"status"`
	Reason string `json:"reason"`
	Policy struct {
		Generation uint64 `json:"generation"`
		Revision   string `json:"revision"`
		Error      string `json:"error"`
	} `json:"policy"`
}

// within polls cond until it holds or a bounded deadline passes.
func within(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func replace(t *testing.T, path, body string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestPolicyReloadWhileServing edits the policies of a running service: a broken file is refused, the
// last good generation keeps deciding and /readyz stays ready but reports the error; a fixed file is picked
// up without a restart.
func TestPolicyReloadWhileServing(t *testing.T) {
	p := startIdP(t)
	dir := policyDir(t, testData, nil)
	inst := startService(t, fmt.Sprintf("resources: [{url: %s}]\nissuers: [{discovery_url: %s/.well-known/openid-configuration}]\npolicy: {paths: [%s]}\n", resourceURL, p.Issuer(), dir), true)
	check := func() error {
		resp, err := inst.client.Check(context.Background(), checkRequest(bearer(mint(t, p, userClaims(nil))), "/mcp", listTools))
		if err != nil {
			return err
		}
		if resp.GetOkResponse() != nil {
			return nil
		}
		return fmt.Errorf("denied: %s", resp.GetDeniedResponse().GetBody())
	}
	if err := check(); err != nil {
		t.Fatal(err)
	}
	if status, doc := readyz(t, inst); status != http.StatusOK || doc.Policy.Generation != 1 || doc.Policy.Error != "" || !strings.HasPrefix(doc.Policy.Revision, "sha256:") {
		t.Fatalf("/readyz = %d %+v", status, doc)
	}

	extra := filepath.Join(dir, "maintenance.rego")
	replace(t, extra, "package mcp.authz\n\nimport rego.v1\n\ndenials contains {\"rank\": 1, \"reason\": \"maintenance\"} if {\n")
	within(t, "/readyz to report the refused policy", func() bool {
		_, doc := readyz(t, inst)
		return doc.Policy.Error != ""
	})
	status, doc := readyz(t, inst)
	if status != http.StatusOK || doc.Status != "ready" || doc.Policy.Generation != 1 || !strings.Contains(doc.Policy.Error, "maintenance.rego:6") {
		t.Fatalf("/readyz with a refused policy = %d %+v", status, doc)
	}
	if err := check(); err != nil {
		t.Fatalf("the last good generation stopped allowing: %v", err)
	}

	replace(t, extra, "package mcp.authz\n\nimport rego.v1\n\ndenials contains {\"rank\": 1, \"reason\": \"maintenance\"} if true\n")
	within(t, "the fixed policy to deny", func() bool {
		err := check()
		return err != nil && strings.Contains(err.Error(), "maintenance")
	})
	if status, doc := readyz(t, inst); status != http.StatusOK || doc.Policy.Generation != 2 || doc.Policy.Error != "" {
		t.Fatalf("/readyz after the fix = %d %+v", status, doc)
	}
}

// TestPolicyRuntimeErrorDenies loads a policy that compiles but conflicts at run time for one tool: that
// request is denied (403, never an allow) with a reason naming the conflict; others still decide.
func TestPolicyRuntimeErrorDenies(t *testing.T) {
	p := startIdP(t)
	dir := policyDir(t, testData, map[string]string{"conflict.rego": "package mcp.authz\n\nimport rego.v1\n\ndecision := {\"allow\": true, \"reason\": \"conflicting\"} if input.mcp.tool == \"conflict\"\n"})
	inst := startService(t, fmt.Sprintf("resources: [{url: %s}]\nissuers: [{discovery_url: %s/.well-known/openid-configuration}]\npolicy: {paths: [%s]}\n", resourceURL, p.Issuer(), dir), true)
	tok := mint(t, p, userClaims(nil))
	assertDenied(t, grpcCheck(t, inst, checkRequest(bearer(tok), "/mcp", callTool("conflict"))), denial{status: 403, description: "policy evaluation failed"})
	d := inst.svc.Authorizer().Check(context.Background(), &authz.Request{
		Method: "POST", Scheme: "https", Host: "mcp.example.com", Path: "/mcp", Resource: resourceURL,
		Headers: map[string]string{"authorization": "Bearer " + tok, "content-type": "application/json"},
		Body:    []byte(callTool("conflict")),
	})
	if d.Allow || d.Status != http.StatusForbidden || !strings.Contains(d.Reason, "policy error") || !strings.Contains(d.Reason, "conflict") {
		t.Fatalf("decision = allow %v, status %d, reason %q", d.Allow, d.Status, d.Reason)
	}
	assertAllowed(t, grpcCheck(t, inst, checkRequest(bearer(tok), "/mcp", callTool("echo"))), allowed{headers: map[string]string{"x-mcp-subject": "alice"}})
}

// TestPolicyBundleReadiness serves the shipped policies as an OPA bundle (built with OPA's loader): the
// service is not ready and denies until the first bundle is activated, then decides with it and reports
// its revision.
func TestPolicyBundleReadiness(t *testing.T) {
	b, err := loader.NewFileLoader().AsBundle(policyDir(t, testData, nil))
	if err != nil {
		t.Fatal(err)
	}
	b.Manifest.Revision = "2026-11-26.1"
	var tarball bytes.Buffer
	if err := bundle.NewWriter(&tarball).Write(*b); err != nil {
		t.Fatal(err)
	}
	var serving atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !serving.Load() || r.URL.Path != "/bundles/mcp-authz.tar.gz" {
			http.NotFound(w, r)
			return
		}
		w.Write(tarball.Bytes())
	}))
	t.Cleanup(srv.Close)

	p := startIdP(t)
	inst := startService(t, fmt.Sprintf(`
resources: [{url: %s}]
issuers: [{discovery_url: %s/.well-known/openid-configuration}]
policy: {bundle: {url: %s, polling: {min_delay: 1s, max_delay: 1s}}}
`, resourceURL, p.Issuer(), srv.URL), false)
	tok := mint(t, p, userClaims(nil))
	resp, err := inst.client.Check(context.Background(), checkRequest(bearer(tok), "/mcp", listTools))
	if err != nil {
		t.Fatal(err)
	}
	if er := resp.GetErrorResponse(); er == nil || er.GetStatus().GetCode() != http.StatusServiceUnavailable || !strings.Contains(er.GetBody(), "no policy loaded yet") {
		t.Fatalf("before any policy bundle was activated: want a 503 error response, got %v", resp)
	}
	if status, doc := readyz(t, inst); status != http.StatusServiceUnavailable || !strings.Contains(doc.Reason, "no policy generation") {
		t.Fatalf("/readyz before the bundle = %d %+v", status, doc)
	}

	serving.Store(true)
	within(t, "the bundle to activate", func() bool {
		status, _ := readyz(t, inst)
		return status == http.StatusOK
	})
	if _, doc := readyz(t, inst); doc.Policy.Generation != 1 || doc.Policy.Revision != "2026-11-26.1" {
		t.Fatalf("/readyz policy = %+v", doc.Policy)
	}
	assertAllowed(t, grpcCheck(t, inst, checkRequest(bearer(tok), "/mcp", listTools)), allowed{headers: map[string]string{"x-mcp-subject": "alice"}})
	assertDenied(t, grpcCheck(t, inst, checkRequest(bearer(tok), "/mcp", callTool("admin_reset"))), denial{status: 403, errorCode: "insufficient_scope", description: "admin_reset", scope: "tools:admin tools:read tools:call"})
}
