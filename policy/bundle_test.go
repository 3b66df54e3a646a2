package policy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/policy"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
)

// bundleServer serves one bundle tarball at a time on 127.0.0.1, with ETags as OPA's downloader expects.
type bundleServer struct {
	body atomic.Pointer[[]byte]
	srv  *httptest.Server
}

func newBundleServer(t *testing.T) *bundleServer {
	t.Helper()
	s := &bundleServer{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/bundles/mcp-authz.tar.gz" {
			http.NotFound(w, r)
			return
		}
		body := s.body.Load()
		if body == nil {
			http.NotFound(w, r)
			return
		}
		etag := fmt.Sprintf(`"%x"`, sha256.Sum256(*body))
		w.Header().Set("ETag", etag)
		if strings.Contains(r.Header.Get("If-None-Match"), etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/gzip")
		w.Write(*body)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *bundleServer) serve(b []byte) { s.body.Store(&b) }

func rsaKey(t *testing.T) (*rsa.PrivateKey, string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// makeBundle builds a bundle tarball with OPA's bundle package: one module deciding with reason revision,
// signed with signingKey (PEM) unless it is empty, then altered by tamper when set (after signing).
func makeBundle(t *testing.T, revision, rego, signingKey string, tamper func(*bundle.Bundle)) []byte {
	t.Helper()
	if rego == "" {
		rego = regoReturning(true, revision)
	}
	mod, err := ast.ParseModuleWithOpts("/mcp/authz.rego", rego, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		t.Fatal(err)
	}
	b := bundle.Bundle{
		Manifest: bundle.Manifest{Revision: revision, Roots: &[]string{"mcp", "settings"}},
		Data:     map[string]any{"settings": map[string]any{"revision": revision}},
		Modules:  []bundle.ModuleFile{{URL: "/mcp/authz.rego", Path: "/mcp/authz.rego", Raw: []byte(rego), Parsed: mod}},
	}
	if signingKey != "" {
		if err := b.GenerateSignature(bundle.NewSigningConfig(signingKey, "RS256", ""), "default", false); err != nil {
			t.Fatal(err)
		}
	}
	if tamper != nil {
		tamper(&b)
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).DisableFormat(true).Write(b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestLiveBundleRefusesTamperedBundles serves signed bundles from an HTTP bundle server: the first good one
// becomes generation 1; tampered, unsigned, foreign-signed and uncompilable bundles are each refused while
// generation 1 keeps deciding; the next good one becomes generation 2.
func TestLiveBundleRefusesTamperedBundles(t *testing.T) {
	key, keyPEM := rsaKey(t)
	_, otherPEM := rsaKey(t)
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(t.TempDir(), "bundle.pub.pem")
	writeFile(t, pubFile, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})))

	srv := newBundleServer(t)
	log, logs := newLogger(t)
	cfg := config.Policy{Query: policy.DefaultQuery, Bundle: &config.Bundle{
		URL:      srv.srv.URL,
		Resource: "bundles/mcp-authz.tar.gz",
		Polling:  config.BundlePolling{MinDelay: config.Duration(time.Second), MaxDelay: config.Duration(time.Second)},
		Signing:  &config.BundleSigning{PublicKeyFile: pubFile, KeyID: "default", Algorithm: "RS256"},
	}}
	ctx, cancel := context.WithCancel(context.Background())
	live, err := policy.NewLive(ctx, cfg, policy.LiveOptions{Log: log})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if _, err := live.Evaluate(ctx, policy.Map(map[string]any{})); !errors.Is(err, policy.ErrNoPolicy) {
		t.Fatalf("Evaluate before any bundle = %v, want ErrNoPolicy", err)
	}
	if live.Ready() == nil {
		t.Fatal("ready before any bundle")
	}
	srv.serve(makeBundle(t, "r1", "", keyPEM, nil))
	done := make(chan struct{})
	go func() { live.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	eventually(t, "bundle r1 to serve", reasonIs(live, "r1"))
	if s := live.Status(); s.Generation != 1 || s.Revision != "r1" || live.Ready() != nil || len(s.Sources) != 1 || !strings.HasSuffix(s.Sources[0], "/bundles/mcp-authz.tar.gz") {
		t.Fatalf("status = %+v, ready %v", s, live.Ready())
	}

	bad := []struct {
		name, rego, key string
		tamper          func(*bundle.Bundle)
		want            string
	}{
		{name: "module changed after signing", key: keyPEM, want: "digest mismatch", tamper: func(b *bundle.Bundle) {
			b.Modules[0].Raw = []byte(regoReturning(true, "tampered"))
		}},
		{name: "data changed after signing", key: keyPEM, want: "digest mismatch", tamper: func(b *bundle.Bundle) {
			b.Data["settings"] = map[string]any{"revision": "tampered"}
		}},
		{name: "unsigned", want: "missing .signatures.json"},
		{name: "signed by another key", key: otherPEM, want: "verification"},
		{name: "signed but does not compile", key: keyPEM, rego: "package mcp.authz\n\nimport rego.v1\n\ndecision := {\"allow\": x}\n", want: "rego_unsafe_var_error"},
	}
	for _, tc := range bad {
		failures := live.Status().Failures
		srv.serve(makeBundle(t, "bad", tc.rego, tc.key, tc.tamper))
		eventually(t, tc.name+" to be refused", func() bool { return live.Status().Failures > failures })
		s := live.Status()
		t.Logf("%s: %s", tc.name, s.Error)
		if s.Generation != 1 || s.Revision != "r1" || !strings.Contains(s.Error, tc.want) {
			t.Fatalf("%s: status = %+v, want generation 1 kept and an error with %q", tc.name, s, tc.want)
		}
		if !reasonIs(live, "r1")() || live.Ready() != nil {
			t.Fatalf("%s: the last good bundle stopped deciding", tc.name)
		}
	}
	if !strings.Contains(logs.String(), "refused") {
		t.Fatal("refused bundles were not logged")
	}

	srv.serve(makeBundle(t, "r2", "", keyPEM, nil))
	eventually(t, "bundle r2 to serve", reasonIs(live, "r2"))
	if s := live.Status(); s.Generation != 2 || s.Revision != "r2" || s.Error != "" {
		t.Fatalf("status after r2 = %+v", s)
	}
}
