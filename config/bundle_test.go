package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const bundleBase = "resources: [{url: \"https://m/mcp\"}]\nissuers: [{discovery_url: \"https://i/.well-known/openid-configuration\"}]\n"

// TestParseBundleDefaults reads a minimal policy.bundle block and fills OPA's defaults.
func TestParseBundleDefaults(t *testing.T) {
	key := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(key, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte(bundleBase + "policy: {bundle: {url: \"https://bundles.example.com\", signing: {public_key_file: " + key + "}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	b := c.Policy.Bundle
	checks := []struct{ name, got, want string }{
		{"resource", b.Resource, "bundles/mcp-authz.tar.gz"},
		{"min_delay", time.Duration(b.Polling.MinDelay).String(), "1m0s"},
		{"max_delay", time.Duration(b.Polling.MaxDelay).String(), "2m0s"},
		{"key_id", b.Signing.KeyID, "default"},
		{"algorithm", b.Signing.Algorithm, "RS256"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.name, ch.got, ch.want)
		}
	}
}

// TestParseBundleErrorsNameTheField checks that every invalid policy.bundle field is named.
func TestParseBundleErrorsNameTheField(t *testing.T) {
	key := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(key, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, policy, want string }{
		{"neither paths nor bundle", "{}", "policy.paths: at least one policy path is required"},
		{"both", `{paths: ["."], bundle: {url: "https://b"}}`, "policy.bundle: set either"},
		{"no url", `{bundle: {}}`, "policy.bundle.url"},
		{"ftp url", `{bundle: {url: "ftp://b"}}`, "policy.bundle.url"},
		{"resource is a URL", `{bundle: {url: "https://b", resource: "https://c/x.tar.gz"}}`, "policy.bundle.resource"},
		{"sub-second polling", `{bundle: {url: "https://b", polling: {min_delay: 10ms}}}`, "policy.bundle.polling.min_delay"},
		{"max below min", `{bundle: {url: "https://b", polling: {min_delay: 60s, max_delay: 10s}}}`, "policy.bundle.polling.max_delay"},
		{"unknown polling field", `{bundle: {url: "https://b", polling: {min_delay_seconds: 1}}}`, `unknown field "policy.bundle.polling.min_delay_seconds"`},
		{"no key file", `{bundle: {url: "https://b", signing: {key_id: k}}}`, "policy.bundle.signing.public_key_file: required"},
		{"missing key file", `{bundle: {url: "https://b", signing: {public_key_file: /nonexistent/key.pem}}}`, "policy.bundle.signing.public_key_file"},
		{"HS256", `{bundle: {url: "https://b", signing: {public_key_file: ` + key + `, algorithm: HS256}}}`, "policy.bundle.signing.algorithm"},
		{"EdDSA", `{bundle: {url: "https://b", signing: {public_key_file: ` + key + `, algorithm: EdDSA}}}`, "policy.bundle.signing.algorithm"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(bundleBase + "policy: " + tc.policy + "\n"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
