package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const caddyfile = "caddy/Caddyfile"

// checkCaddy reports what the Caddyfile must do in front of mcp-authz: one route that removes the client's
// copies of the identity headers, asks mcp-authz at /authz with forward_auth, copies its identity headers,
// removes Authorization, and only then proxies; the well-known metadata stays public; it binds 127.0.0.1.
func checkCaddy(src string, identity []string) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, errf(format, a...)) }
	var lines []string
	for _, l := range strings.Split(src, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			lines = append(lines, l)
		}
	}
	src = strings.Join(lines, "\n")
	_, route, ok := strings.Cut(src, "route {")
	if !ok {
		bad("the protected handle needs a route block (Caddy sorts directives outside one)")
		return errs
	}
	at := func(s string) int { return strings.Index(route, s) }
	fa := at("forward_auth ")
	if fa < 0 {
		bad("no forward_auth in the route")
		return errs
	}
	if !strings.Contains(route[fa:], "uri /authz") {
		bad("forward_auth must ask uri /authz")
	}
	for _, h := range identity {
		del := strings.Index(strings.ToLower(route), "request_header -"+h)
		if del < 0 || del > fa {
			bad("the client's %s must be removed before forward_auth", h)
		}
		if cp := strings.Index(strings.ToLower(route[fa:]), "copy_headers"); cp < 0 || !strings.Contains(strings.ToLower(route[fa+cp:]), h) {
			bad("forward_auth must copy_headers %s", h)
		}
	}
	auth, rp := at("request_header -Authorization"), at("reverse_proxy ")
	if auth < fa || rp < auth {
		bad("Authorization must be removed after forward_auth and before reverse_proxy (no token passthrough)")
	}
	if !strings.Contains(src, "handle /.well-known/oauth-protected-resource*") {
		bad("the metadata must be public (its own handle)")
	}
	if !strings.Contains(src, "bind 127.0.0.1") {
		bad("bind 127.0.0.1")
	}
	if strings.Contains(src, "trusted_proxies") {
		bad("trusted_proxies would let clients set X-Forwarded-Host / -Proto")
	}
	return errs
}

func TestCaddyfile(t *testing.T) {
	src := string(readFile(t, caddyfile))
	if errs := checkCaddy(src, nginxIdentity); len(errs) > 0 {
		t.Fatal(joinErrs(errs))
	}
	negatives := []struct{ name, old, new, want string }{
		{"token passthrough", "\t\t\trequest_header -Authorization\n", "", "Authorization must be removed"},
		{"client identity passes", "\t\t\trequest_header -X-Mcp-Email\n", "", "x-mcp-email must be removed"},
		{"identity not copied", "copy_headers X-Mcp-Subject", "copy_headers", "copy_headers x-mcp-subject"},
		{"trusted proxies", "reverse_proxy 127.0.0.1:3000 {", "reverse_proxy 127.0.0.1:3000 {\n\t\t\t\ttrusted_proxies private_ranges", "trusted_proxies"},
		{"public listener", "bind 127.0.0.1", "", "bind 127.0.0.1"},
	}
	for _, n := range negatives {
		t.Run("negative/"+n.name, func(t *testing.T) {
			if err := joinErrs(checkCaddy(mutate(t, src, n.old, n.new), nginxIdentity)); !errorsContain(err, n.want) {
				t.Fatalf("want an error containing %q, got %v", n.want, err)
			}
		})
	}
	bin, err := exec.LookPath("caddy")
	if err != nil {
		if os.Getenv("MCP_AUTHZ_E2E_REQUIRED") != "" {
			t.Fatal("caddy not found (apt-get install -y caddy)")
		}
		t.Skip("caddy not found: the Caddyfile is not adapted")
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "adapt", "--adapter", "caddyfile", "--config", caddyfile)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("caddy adapt: %v", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("caddy adapt output: %v", err)
	}
}
