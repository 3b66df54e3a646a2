package e2e

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/mcp-authz/mcp-authz/test/envoystandin"
	"github.com/mcp-authz/mcp-authz/test/mcpserver"
)

// proxy is one front proxy of a stack.
type proxy struct {
	name string
	// base is the proxy's URL; the MCP resource is base + "/mcp".
	base string
	// bodyChecked: the proxy sends the request body to mcp-authz, so method and tool rules apply (Envoy
	// with_request_body). nginx auth_request sends no body.
	bodyChecked bool
	// missing, when set, says why the proxy cannot run here.
	missing string
	// l is the listener of an in-process proxy.
	l net.Listener
}

func (p proxy) resource() string { return p.base + "/mcp" }

func (p proxy) metadataURL() string { return p.base + "/.well-known/oauth-protected-resource/mcp" }

// plan fixes the proxies' addresses before anything starts, so the IdP and mcp-authz can be configured with
// the resource URLs.
type plan struct {
	nginxBin  string
	nginxPort int
	caddyBin  string
	caddyPort int
	proxies   []proxy
}

func newPlan(t testing.TB) *plan {
	t.Helper()
	p := &plan{}
	for _, name := range []string{"envoy-standin", "envoy-standin-http"} {
		l := listen(t)
		p.proxies = append(p.proxies, proxy{name: name, base: "http://" + l.Addr().String(), bodyChecked: true, l: l})
	}
	p.nginxBin = lookProgram("nginx", "/usr/sbin/nginx")
	if p.nginxBin == "" {
		p.proxies = append(p.proxies, proxy{name: "nginx", missing: "nginx not found (apt-get install -y nginx)"})
	} else {
		p.nginxPort = freePort(t)
		p.proxies = append(p.proxies, proxy{name: "nginx", base: fmt.Sprintf("http://127.0.0.1:%d", p.nginxPort)})
	}
	p.caddyBin = lookProgram("caddy")
	if p.caddyBin == "" {
		p.proxies = append(p.proxies, proxy{name: "caddy", missing: "caddy not found (apt-get install -y caddy)"})
	} else {
		p.caddyPort = freePort(t)
		p.proxies = append(p.proxies, proxy{name: "caddy", base: fmt.Sprintf("http://127.0.0.1:%d", p.caddyPort)})
	}
	return p
}

// resources are the MCP resource URLs of the runnable proxies.
func (p *plan) resources() []string {
	var out []string
	for _, px := range p.proxies {
		if px.missing == "" {
			out = append(out, px.resource())
		}
	}
	return out
}

// stack is one IdP's deployment: the MCP server and, per proxy, an mcp-authz.
type stack struct {
	mcp     *mcpserver.Server
	proxies []proxy
}

// policyData is the data of the shipped policy in the suite. withMCPRules adds the method and tool rules,
// which need a proxy that sends the body (the policy refuses body-less POSTs when they are configured).
func policyData(clients []string, withMCPRules bool) string {
	d := fmt.Sprintf(`authorizer:
  allowed_clients: [%s]
  allowed_scopes: [tools:read, tools:call]
  custom_claims:
    - {claim: groups, operator: CONTAINS, value: mcp-users}
`, strings.Join(clients, ", "))
	if withMCPRules {
		d += `  methods:
    tools/call: {required_scopes: [tools:call]}
  tools:
    admin_reset: {required_scopes: [tools:admin], groups: [admins]}
`
	}
	return d
}

// start runs the MCP server, one mcp-authz per proxy (the shipped policy; with MCP rules behind a proxy that
// sends the body) and the proxies. issuers is the `issuers:` list of the configuration.
func (p *plan) start(t testing.TB, issuers string, clients []string) *stack {
	t.Helper()
	mcpSrv, upstream := startMCPServer(t)
	st := &stack{mcp: mcpSrv, proxies: p.proxies}
	rego, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "policies", "authz.rego"))
	if err != nil {
		t.Fatal(err)
	}
	var res strings.Builder
	for _, r := range p.resources() {
		fmt.Fprintf(&res, "  - {url: %q, scopes_supported: [tools:read, tools:call]}\n", r)
	}
	for _, px := range p.proxies {
		if px.missing != "" {
			continue
		}
		dir := t.TempDir()
		for name, body := range map[string]string{"authz.rego": string(rego), "data.yaml": policyData(clients, px.bodyChecked)} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		yaml := fmt.Sprintf("resources:\n%sissuers:\n%sleeway: 1s\npolicy: {paths: [%q]}\n", res.String(), issuers, dir)
		if px.name == "nginx" {
			// nginx sets both header families; its mcp-authz reads the X-Original-* one, Caddy's the
			// default X-Forwarded-* one: both forward-auth shapes run through a real proxy.
			yaml += "forward_auth: {request_headers: original}\n"
		}
		az := startAuthz(t, yaml, listen(t), listen(t))
		switch px.name {
		case "envoy-standin":
			startStandin(t, px.l, az, upstream, nil)
		case "envoy-standin-http":
			startStandin(t, px.l, az, upstream, &envoystandin.HTTPService{
				URL:                    az.httpURL + "/authz",
				AllowedHeaders:         []string{"content-type", "origin", "x-forwarded-proto", "mcp-protocol-version"},
				AllowedUpstreamHeaders: []string{"x-mcp-subject", "x-mcp-client-id", "x-mcp-scopes", "x-mcp-issuer", "x-mcp-email"},
				AllowedClientHeaders:   []string{"content-type"},
			})
		case "nginx":
			startNginx(t, p.nginxBin, p.nginxPort, az.httpURL, upstream.String())
		case "caddy":
			startCaddy(t, p.caddyBin, p.caddyPort, az.httpURL, upstream.String())
		}
	}
	return st
}

// lookProgram returns the first candidate that is an executable file (a bare name is looked up in PATH),
// or "".
func lookProgram(candidates ...string) string {
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if !strings.Contains(c, "/") {
			if p, err := exec.LookPath(c); err == nil {
				return p
			}
			continue
		}
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return c
		}
	}
	return ""
}

// startNginx renders testdata/nginx.conf.tmpl and runs nginx in the foreground until the test ends.
func startNginx(t testing.TB, bin string, port int, authzURL, upstream string) {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"tmp", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tmpl, err := template.ParseFiles(filepath.Join("testdata", "nginx.conf.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	var conf bytes.Buffer
	if err := tmpl.Execute(&conf, map[string]any{"Dir": dir, "Port": port, "AuthzURL": authzURL, "UpstreamURL": strings.TrimSuffix(upstream, "/")}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(file, conf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	proc := start(t, "nginx", nil, dir, bin, "-e", "stderr", "-c", file, "-p", dir)
	u, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", port))
	waitHTTP(t, u.String()+"/.well-known/oauth-protected-resource/mcp", 15*time.Second, proc)
}

// startCaddy renders testdata/Caddyfile.tmpl and runs Caddy (forward_auth) until the test ends.
func startCaddy(t testing.TB, bin string, port int, authzURL, upstream string) {
	t.Helper()
	dir := t.TempDir()
	tmpl, err := template.ParseFiles(filepath.Join("testdata", "Caddyfile.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	au, _ := url.Parse(authzURL)
	uu, _ := url.Parse(upstream)
	var conf bytes.Buffer
	if err := tmpl.Execute(&conf, map[string]any{"Port": port, "AuthzHost": au.Host, "UpstreamHost": uu.Host}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, conf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	// Caddy keeps its state under HOME / XDG folders: the test's own.
	env := []string{"HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir}
	proc := start(t, "caddy", env, dir, bin, "run", "--adapter", "caddyfile", "--config", file)
	waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/.well-known/oauth-protected-resource/mcp", port), 15*time.Second, proc)
}
