package config

import (
	"strings"
	"testing"
	"time"
)

func TestIdentityAssertionDefaults(t *testing.T) {
	dir := t.TempDir()
	c, err := Parse([]byte(`
public_url: https://authz.example.com/
resources: [{url: "https://mcp.example.com/mcp", identity_assertion: true}]
issuers: [{discovery_url: "https://idp.example.com/.well-known/openid-configuration"}]
policy: {paths: ["."]}
identity_assertion: {signing_keys: ["` + dir + `"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	a := c.IdentityAssertion
	if a.Issuer != "https://authz.example.com" || a.Header != "x-mcp-identity" || time.Duration(a.TTL) != time.Minute ||
		time.Duration(a.RotationGrace) != 10*time.Minute || !c.Resources[0].IdentityAssertion {
		t.Fatalf("defaults: %+v", a)
	}
}

func TestIdentityAssertionErrorsNameTheField(t *testing.T) {
	dir := t.TempDir()
	base := "resources: [{url: \"https://m/mcp\", identity_assertion: true}]\nissuers: [{discovery_url: \"https://i/.well-known/openid-configuration\"}]\npolicy: {paths: [\".\"]}\n"
	block := func(extra string) string {
		return base + "identity_assertion: {signing_keys: [\"" + dir + "\"]" + extra + "}\n"
	}
	tests := []struct{ name, yaml, want string }{
		{"resource without the block", base, "resources[0].identity_assertion: needs the top-level identity_assertion block"},
		{"no keys", base + "identity_assertion: {ttl: 60s}\n", "identity_assertion.signing_keys: at least one"},
		{"missing key file", base + "identity_assertion: {signing_keys: [/nonexistent/key.pem]}\n", "identity_assertion.signing_keys[0]"},
		{"ttl too short", block(", ttl: 1s"), "identity_assertion.ttl"},
		{"ttl too long", block(", ttl: 1h"), "identity_assertion.ttl"},
		{"grace shorter than ttl", block(", ttl: 5m, rotation_grace: 1m"), "identity_assertion.rotation_grace"},
		{"grace too long", block(", rotation_grace: 48h"), "identity_assertion.rotation_grace"},
		{"upper-case header", block(", header: X-Mcp-Identity"), "identity_assertion.header"},
		{"header not a token", block(", header: \"x mcp\""), "identity_assertion.header"},
		{"header is an identity header", block(", header: x-mcp-subject"), "identity_assertion.header: \"x-mcp-subject\" is also an identity header"},
		{"header is authorization", block(", header: authorization"), "identity_assertion.header"},
		{"header is hop-by-hop", block(", header: connection"), "identity_assertion.header: \"connection\" is a header the request needs for itself"},
		{"header is Envoy's", block(", header: x-envoy-auth-headers-to-remove"), "identity_assertion.header"},
		{"identity header is authorization", base + "identity_headers: {subject: authorization}\n", "identity_headers.subject: \"authorization\" is a header"},
		{"identity header not a token", base + "identity_headers: {email: \"x email\"}\n", "identity_headers.email"},
		{"issuer not a URL", block(", issuer: authz"), "identity_assertion.issuer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := Parse([]byte(block(""))); err != nil {
		t.Fatalf("valid block refused: %v", err)
	}
}
