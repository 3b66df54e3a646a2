package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte(`
resources: [{url: "https://mcp.example.com/mcp"}]
issuers: [{discovery_url: "https://idp.example.com/oauth2/default/.well-known/openid-configuration"}]
policy: {paths: ["."]}
`))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"listen.grpc", c.Listen.GRPC, "127.0.0.1:9191"},
		{"listen.http", c.Listen.HTTP, "127.0.0.1:8080"},
		{"issuer", c.Issuers[0].Issuer, "https://idp.example.com/oauth2/default"},
		{"authorization_servers", strings.Join(c.Resources[0].AuthorizationServers, ","), "https://idp.example.com/oauth2/default"},
		{"leeway", time.Duration(c.Leeway).String(), "1m0s"},
		{"query", c.Policy.Query, "data.mcp.authz.decision"},
		{"subject header", c.IdentityHeaders.Subject, "x-mcp-subject"},
		{"algorithms", strings.Join(c.Issuers[0].Algorithms, ","), strings.Join(DefaultAlgorithms, ",")},
		{"forward_auth.request_headers", c.ForwardAuth.RequestHeaders, "forwarded"},
		{"server.max_concurrent_checks", fmt.Sprint(c.Server.MaxConcurrentChecks), "256"},
		{"server.max_connection_age", c.Server.ConnectionAge().String(), "10m0s"},
		{"server.shutdown_timeout", time.Duration(c.Server.ShutdownTimeout).String(), "10s"},
		{"token_cache.max_entries", fmt.Sprint(c.TokenCache.MaxEntries), "4096"},
		{"public_url", c.PublicURL, "http://127.0.0.1:8080"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.name, ch.got, ch.want)
		}
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	base := "resources: [{url: \"https://m/mcp\"}]\nissuers: [{discovery_url: \"https://i/.well-known/openid-configuration\"}]\npolicy: {paths: [\".\"]}\n"
	tests := []struct{ name, yaml, want string }{
		{"no resources", "issuers: []\npolicy: {paths: [.]}", "resources: at least one"},
		{"relative resource url", strings.Replace(base, "https://m/mcp", "/mcp", 1), "resources[0].url"},
		{"resource url with query", strings.Replace(base, "https://m/mcp", "https://m/mcp?x=1", 1), "resources[0].url"},
		{"duplicate resource", strings.Replace(base, `[{url: "https://m/mcp"}]`, `[{url: "https://m/mcp"}, {url: "https://m/mcp"}]`, 1), "duplicate resource"},
		{"issuer not derivable", strings.Replace(base, "/.well-known/openid-configuration", "/keys", 1), "issuers[0].issuer"},
		{"HS256", strings.Replace(base, `configuration"}`, `configuration", algorithms: [HS256]}`, 1), "issuers[0].algorithms[0]"},
		{"none", strings.Replace(base, `configuration"}`, `configuration", algorithms: [none]}`, 1), "issuers[0].algorithms[0]"},
		{"bad duration", strings.Replace(base, `configuration"}`, `configuration", refresh_interval: soon}`, 1), "issuers.refresh_interval"},
		{"tiny refresh", strings.Replace(base, `configuration"}`, `configuration", refresh_interval: 1ms}`, 1), "issuers[0].refresh_interval"},
		{"unknown field", base + "listen: {grcp: x}\n", `unknown field "listen.grcp"`},
		{"field names are case-sensitive", base + "Listen: {grpc: x}\n", `unknown field "Listen"`},
		{"duplicate field", base + "leeway: 1s\nleeway: 2s\n", `key "leeway" already set`},
		{"leeway too large", base + "leeway: 1h\n", "leeway"},
		{"log level", base + "log: {level: loud}\n", "log.level"},
		{"plain http discovery to another host", strings.Replace(base, "https://i/.well-known", "http://idp.example.com/.well-known", 1), "issuers[0].discovery_url: \"http://idp.example.com/.well-known/openid-configuration\" is plain http"},
		{"negative check limit", base + "server: {max_concurrent_checks: -1}\n", "server.max_concurrent_checks"},
		{"token cache too large", base + "token_cache: {max_entries: 262145}\n", "token_cache.max_entries: must be at most 262144"},
		{"tiny connection age", base + "server: {max_connection_age: 10ms}\n", "server.max_connection_age"},
		{"long shutdown delay", base + "server: {shutdown_delay: 1h}\n", "server.shutdown_delay"},
		{"forward-auth header family", base + "forward_auth: {request_headers: x-original}\n", "forward_auth.request_headers"},
		{"issuer audiences with two resources", strings.Replace(strings.Replace(base, `[{url: "https://m/mcp"}]`, `[{url: "https://m/mcp"}, {url: "https://m/public"}]`, 1), `configuration"}`, `configuration", audiences: [api://mcp]}`, 1), "issuers[0].audiences: an issuer-wide audience with 2 resources"},
		{"audience shared by two resources", strings.Replace(base, `[{url: "https://m/mcp"}]`, `[{url: "https://m/mcp", audiences: [api://mcp]}, {url: "https://m/public", audiences: [api://mcp]}]`, 1), `resources[1].audiences[0]: audience "api://mcp" also names resources[0]`},
		{"audience naming another resource by its url", strings.Replace(base, `[{url: "https://m/mcp"}]`, `[{url: "https://m/mcp"}, {url: "https://m/public", audiences: ["https://m/mcp"]}]`, 1), "resources[1].audiences[0]"},
		{"relative public url", base + "public_url: /auth\n", "public_url"},
		{"public url with query", base + "public_url: https://auth.example.com/?x=1\n", "public_url"},
		{"empty audience", strings.Replace(base, `[{url: "https://m/mcp"}]`, `[{url: "https://m/mcp", audiences: [""]}]`, 1), "resources[0].audiences[0]: empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestInsecureHTTP checks which URLs are plain http to a host that is not loopback: http to anything but a loopback host.
func TestInsecureHTTP(t *testing.T) {
	tests := []struct {
		url  string
		want bool
	}{
		{"http://idp.example.com/.well-known/openid-configuration", true},
		{"HTTP://idp.example.com/jwks", true},
		{"http://10.0.0.7:8080/jwks", true},
		{"http://[2001:db8::1]/jwks", true},
		{"http://keycloak.auth.svc.cluster.local/realms/x/protocol/openid-connect/certs", true},
		{"http://127.0.0.1:8080/jwks", false},
		{"http://127.5.6.7/jwks", false},
		{"http://[::1]:9000/jwks", false},
		{"http://localhost:8080/jwks", false},
		{"http://LocalHost/jwks", false},
		{"https://idp.example.com/jwks", false},
		{"https://10.0.0.7/jwks", false},
		{"://bad", false},
	}
	for _, tc := range tests {
		if got := InsecureHTTP(tc.url); got != tc.want {
			t.Errorf("InsecureHTTP(%q) = %v, want %v", tc.url, got, tc.want)
		}
	}
}

// TestTokenCacheEntries checks the accepted values of token_cache.max_entries: 0 takes the default, a
// negative value (caches off) and the largest size are kept as given.
func TestTokenCacheEntries(t *testing.T) {
	base := "resources: [{url: \"https://m/mcp\"}]\nissuers: [{discovery_url: \"https://i/.well-known/openid-configuration\"}]\npolicy: {paths: [\".\"]}\n"
	tests := []struct {
		yaml string
		want int
	}{
		{"", 4096},
		{"token_cache: {max_entries: 0}\n", 4096},
		{"token_cache: {max_entries: -1}\n", -1},
		{"token_cache: {max_entries: 100}\n", 100},
		{"token_cache: {max_entries: 262144}\n", MaxTokenCacheEntries},
	}
	for _, tc := range tests {
		t.Run(tc.yaml, func(t *testing.T) {
			c, err := Parse([]byte(base + tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if c.TokenCache.MaxEntries != tc.want {
				t.Errorf("max_entries = %d, want %d", c.TokenCache.MaxEntries, tc.want)
			}
		})
	}
}

// TestCheckEndpoint: the one rule for the endpoints a discovery document names (jwks_uri, token and
// authorization endpoints).
func TestCheckEndpoint(t *testing.T) {
	secure := Issuer{DiscoveryURL: "https://idp.example.com/.well-known/openid-configuration"}
	local := Issuer{DiscoveryURL: "http://127.0.0.1:9000/.well-known/openid-configuration"}
	allowed := Issuer{DiscoveryURL: "https://idp.example.com/.well-known/openid-configuration", AllowInsecureHTTP: true}
	tests := []struct {
		name     string
		is       Issuer
		endpoint string
		want     string // "" accepted
	}{
		{"https", secure, "https://idp.example.com/token", ""},
		{"loopback http under loopback discovery", local, "http://127.0.0.1:9000/token", ""},
		{"relative", secure, "/token", "not an absolute http(s) URL"},
		{"other scheme", secure, "file:///etc/passwd", "not an absolute http(s) URL"},
		{"not a URL", secure, "http://[::1", "not an absolute http(s) URL"},
		{"plain http to a far host", local, "http://idp.example.com/token", "plain http"},
		{"downgrade from https discovery, even to loopback", secure, "http://127.0.0.1/token", "plain http"},
		{"allow_insecure_http accepts plain http", allowed, "http://idp.example.com/token", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.is.CheckEndpoint(tc.endpoint)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("CheckEndpoint(%q) = %v, want %q", tc.endpoint, err, tc.want)
			}
		})
	}
}
