package deploy

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mcp-authz/mcp-authz/config"
)

// composeFile models the part of the Compose specification that deploy/docker-compose.yaml uses. It is decoded
// strictly: a key outside this model (or a misspelt one) fails the test; extend the model when the file grows.
type composeFile struct {
	Name     string                    `json:"name"`
	Services map[string]composeService `json:"services"`
}

type composeService struct {
	Image       string            `json:"image,omitempty"`
	Build       *composeBuild     `json:"build,omitempty"`
	Command     []string          `json:"command,omitempty"`
	Environment map[string]string `json:"environment,omitempty"`
	Volumes     []string          `json:"volumes,omitempty"`
	Ports       []string          `json:"ports,omitempty"`
	DependsOn   []string          `json:"depends_on,omitempty"`
	Restart     string            `json:"restart,omitempty"`
	ReadOnly    bool              `json:"read_only,omitempty"`
	CapDrop     []string          `json:"cap_drop,omitempty"`
	SecurityOpt []string          `json:"security_opt,omitempty"`
}

type composeBuild struct {
	Context    string `json:"context"`
	Dockerfile string `json:"dockerfile"`
	Target     string `json:"target"`
}

type composeVolume struct{ Source, Target string }

func (v composeVolume) bind() bool {
	return strings.HasPrefix(v.Source, ".") || strings.HasPrefix(v.Source, "/")
}

func (s composeService) volumes() []composeVolume {
	var out []composeVolume
	for _, v := range s.Volumes {
		p := strings.Split(v, ":")
		if len(p) >= 2 {
			out = append(out, composeVolume{Source: p[0], Target: p[1]})
		}
	}
	return out
}

// flag returns the argument after name in the service's command ("" if absent).
func (s composeService) flag(name string) string {
	i := slices.Index(s.Command, name)
	if i < 0 || i+1 >= len(s.Command) {
		return ""
	}
	return s.Command[i+1]
}

var composeVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// interpolate expands ${VAR} and ${VAR:-default} as Compose does, from env.
func interpolate(s string, env map[string]string) string {
	return composeVar.ReplaceAllStringFunc(s, func(m string) string {
		g := composeVar.FindStringSubmatch(m)
		if v, ok := env[g[1]]; ok && v != "" {
			return v
		}
		return g[3]
	})
}

func parseCompose(b []byte, env map[string]string) (composeFile, error) {
	var c composeFile
	err := decodeStrict([]byte(interpolate(string(b), env)), &c)
	return c, err
}

// dockerStage is one FROM ... [AS name] block of a Dockerfile, its instructions with continuations joined.
type dockerStage struct {
	From, Name string
	Lines      []string
}

func parseDockerfile(src string) []dockerStage {
	var stages []dockerStage
	joined := strings.ReplaceAll(src, "\\\n", " ")
	for _, line := range strings.Split(joined, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if strings.EqualFold(f[0], "FROM") {
			st := dockerStage{}
			args := slices.DeleteFunc(f[1:], func(a string) bool { return strings.HasPrefix(a, "--") })
			if len(args) > 0 {
				st.From = args[0]
			}
			if len(args) == 3 && strings.EqualFold(args[1], "AS") {
				st.Name = args[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) > 0 {
			stages[len(stages)-1].Lines = append(stages[len(stages)-1].Lines, line)
		}
	}
	return stages
}

func (s dockerStage) instr(name string) []string {
	var out []string
	for _, l := range s.Lines {
		f := strings.Fields(l)
		if strings.EqualFold(f[0], name) {
			out = append(out, strings.TrimSpace(l[len(f[0]):]))
		}
	}
	return out
}

// checkDockerfile enforces the image rules: a golang:1.26 builder, static trimmed builds, distroless nonroot
// runtime stages, and mcp-authz as the default (last) target with its ports and entrypoint.
func checkDockerfile(src string) []error {
	var errs []error
	stages := parseDockerfile(src)
	if len(stages) < 2 {
		return []error{errf("Dockerfile: want a multi-stage build, got %d stages", len(stages))}
	}
	if !slices.ContainsFunc(stages, func(s dockerStage) bool { return s.From == "golang:1.26" }) {
		errs = append(errs, errf("Dockerfile: no golang:1.26 builder stage"))
	}
	byName := map[string]dockerStage{}
	for _, s := range stages {
		byName[s.Name] = s
	}
	// cgo is off when the build stage chain sets ENV CGO_ENABLED=0 or the RUN line does.
	cgoOff := func(s dockerStage) bool {
		for {
			for _, e := range s.instr("ENV") {
				if strings.Contains(e, "CGO_ENABLED=0") {
					return true
				}
			}
			p, ok := byName[s.From]
			if !ok || s.From == "" {
				return false
			}
			s = p
		}
	}
	builds := 0
	for _, s := range stages {
		for _, r := range s.instr("RUN") {
			if !strings.Contains(r, "go build") {
				continue
			}
			builds++
			if !strings.Contains(r, "CGO_ENABLED=0") && !cgoOff(s) {
				errs = append(errs, errf("Dockerfile stage %s: go build without CGO_ENABLED=0", s.Name))
			}
			if !strings.Contains(r, "-trimpath") {
				errs = append(errs, errf("Dockerfile stage %s: go build without -trimpath", s.Name))
			}
			if !strings.Contains(r, `-ldflags="-s -w"`) && !strings.Contains(r, `-ldflags='-s -w'`) {
				errs = append(errs, errf("Dockerfile stage %s: go build without -ldflags=\"-s -w\"", s.Name))
			}
		}
	}
	if builds == 0 {
		errs = append(errs, errf("Dockerfile: no go build"))
	}
	for _, s := range stages {
		if !strings.HasPrefix(s.From, "gcr.io/distroless/") {
			continue
		}
		users := s.instr("USER")
		if len(users) == 0 || !strings.HasPrefix(users[len(users)-1], "nonroot") && !strings.HasPrefix(users[len(users)-1], "65532") {
			errs = append(errs, errf("Dockerfile stage %s: runtime stage without USER nonroot (got %v)", s.Name, users))
		}
	}
	last := stages[len(stages)-1]
	if last.Name != "mcp-authz" {
		errs = append(errs, errf("Dockerfile: the last (default) stage is %q, want mcp-authz", last.Name))
	}
	if last.From != "gcr.io/distroless/static-debian12:nonroot" {
		errs = append(errs, errf("Dockerfile: final stage FROM %q, want gcr.io/distroless/static-debian12:nonroot", last.From))
	}
	exposed := strings.Fields(strings.Join(last.instr("EXPOSE"), " "))
	for _, p := range []string{"9191", "8080"} {
		if !slices.Contains(exposed, p) {
			errs = append(errs, errf("Dockerfile: final stage does not EXPOSE %s (got %v)", p, exposed))
		}
	}
	ep := last.instr("ENTRYPOINT")
	var argv []string
	if len(ep) != 1 || json.Unmarshal([]byte(ep[0]), &argv) != nil || len(argv) < 2 ||
		filepath.Base(argv[0]) != "mcp-authz" || argv[1] != "serve" {
		errs = append(errs, errf("Dockerfile: final ENTRYPOINT %v, want an exec-form [\".../mcp-authz\", \"serve\"]", ep))
	}
	return errs
}

func TestDockerfile(t *testing.T) {
	src := string(readFile(t, "Dockerfile"))
	if errs := checkDockerfile(src); len(errs) > 0 {
		t.Fatal(joinErrs(errs))
	}
	// Each binary the Dockerfile builds must exist in the module (the helpers are written in parallel: skip
	// those not there yet).
	for _, m := range regexp.MustCompile(`\./cmd/([a-z0-9-]+)`).FindAllStringSubmatch(src, -1) {
		t.Run("cmd/"+m[1], func(t *testing.T) {
			if _, err := os.Stat(filepath.Join("..", "cmd", m[1])); err != nil {
				t.Skipf("../cmd/%s not present yet: %v", m[1], err)
			}
		})
	}
	negatives := []struct{ name, old, new, want string }{
		{"root user", "USER nonroot:nonroot\nEXPOSE 9191", "USER root\nEXPOSE 9191", "USER nonroot"},
		{"final stage not distroless", "FROM gcr.io/distroless/static-debian12:nonroot AS mcp-authz", "FROM golang:1.26 AS mcp-authz", "final stage FROM"},
		{"cgo on", "ENV CGO_ENABLED=0", "ENV CGO_ENABLED=1", ""},
		{"no trimpath", "-trimpath -ldflags=\"-s -w\" -o /out/mcp-authz", "-ldflags=\"-s -w\" -o /out/mcp-authz", "-trimpath"},
		{"http port not exposed", "EXPOSE 9191 8080", "EXPOSE 9191", "EXPOSE 8080"},
		{"entrypoint without serve", `ENTRYPOINT ["/usr/local/bin/mcp-authz", "serve"]`, `ENTRYPOINT ["/usr/local/bin/mcp-authz"]`, "ENTRYPOINT"},
		{"helper last", "FROM gcr.io/distroless/static-debian12:nonroot AS mcp-devidp", "FROM gcr.io/distroless/static-debian12:nonroot AS mcp-devidp-x", ""},
	}
	for _, n := range negatives {
		t.Run("negative/"+n.name, func(t *testing.T) {
			bad := mutate(t, src, n.old, n.new)
			if n.name == "cgo on" {
				// The RUN lines also say CGO_ENABLED=0: drop those too so only the ENV decides.
				bad = strings.ReplaceAll(bad, "CGO_ENABLED=0 go build", "go build")
				n.want = "CGO_ENABLED=0"
			}
			if n.name == "helper last" {
				// Move a helper stage to the end: mcp-authz is no longer the default target.
				stages := strings.SplitAfter(src, "\n\n")
				bad = strings.Join(stages, "") + "\nFROM gcr.io/distroless/static-debian12:nonroot AS late\nUSER nonroot\n"
				n.want = "last (default) stage"
			}
			err := joinErrs(checkDockerfile(bad))
			if !errorsContain(err, n.want) {
				t.Fatalf("want an error containing %q, got %v", n.want, err)
			}
		})
	}
}

// composeEnvs are the variable settings the README documents: the default stack and the HTTP-mode Envoy.
var composeEnvs = map[string]map[string]string{
	"default":   {},
	"http-mode": {"ENVOY_CONFIG": "envoy-http.yaml"},
}

// servicePort says on which port a compose service listens: mcp-authz from its configuration, a helper from
// its -listen flag, Jaeger on its OTLP gRPC port.
func servicePorts(name string, s composeService, cfg config.Config) []string {
	switch {
	case name == "mcp-authz":
		return []string{portOf(cfg.Listen.GRPC), portOf(cfg.Listen.HTTP)}
	case s.flag("-listen") != "":
		return []string{portOf(s.flag("-listen"))}
	case strings.HasPrefix(s.Image, "jaegertracing/jaeger:"):
		return []string{"4317", "4318", "16686"}
	}
	return nil
}

// checkCompose checks the compose file against the files it mounts and builds, and against the Envoy and
// mcp-authz configurations it runs.
func checkCompose(t *testing.T, c composeFile, dockerfile string) []error {
	var errs []error
	stageNames := map[string]bool{}
	for _, s := range parseDockerfile(dockerfile) {
		stageNames[s.Name] = true
	}
	for name, s := range c.Services {
		if s.Image == "" && s.Build == nil {
			errs = append(errs, errf("service %s: neither image nor build", name))
		}
		if b := s.Build; b != nil {
			df := filepath.Join(b.Context, b.Dockerfile)
			if filepath.Clean(df) != filepath.Join("..", "deploy", "Dockerfile") {
				errs = append(errs, errf("service %s: builds %s, want deploy/Dockerfile with the repository root as context", name, df))
			}
			if !stageNames[b.Target] {
				errs = append(errs, errf("service %s: build target %q is not a Dockerfile stage", name, b.Target))
			}
			if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
				errs = append(errs, errf("service %s: our images run read_only with cap_drop [ALL]", name))
			}
		}
		for _, d := range s.DependsOn {
			if _, ok := c.Services[d]; !ok {
				errs = append(errs, errf("service %s: depends_on unknown service %q", name, d))
			}
		}
		for _, v := range s.volumes() {
			if !v.bind() {
				continue
			}
			if !strings.HasSuffix(strings.Join(strings.Split(findVolume(s, v), ":")[2:], ":"), "ro") {
				errs = append(errs, errf("service %s: bind mount %s must be read-only (:ro)", name, v.Source))
			}
			if _, err := os.Stat(v.Source); err != nil {
				if filepath.Clean(v.Source) == policiesDir {
					t.Logf("service %s mounts %s, not present yet", name, v.Source)
					continue
				}
				errs = append(errs, errf("service %s: volume source %s: %v", name, v.Source, err))
			}
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				errs = append(errs, errf("service %s: port %q is published on every interface; bind 127.0.0.1", name, p))
			}
		}
	}

	// mcp-authz: its configuration comes from a mounted file and parses with the policies mounted beside it.
	authz, ok := c.Services["mcp-authz"]
	if !ok {
		return append(errs, errf("no mcp-authz service"))
	}
	mounts := map[string]string{}
	for _, v := range authz.volumes() {
		src := v.Source
		if filepath.Clean(src) == policiesDir {
			src = hostPolicies(t)
		}
		mounts[v.Target] = src
	}
	cfgPath := authz.flag("--config")
	hostCfg, ok := mounts[cfgPath]
	if !ok {
		return append(errs, errf("mcp-authz: --config %q is not a mounted file", cfgPath))
	}
	cfgBytes, err := os.ReadFile(hostCfg)
	if err != nil {
		return append(errs, err)
	}
	cfg, err := parseConfig(cfgBytes, mounts)
	if err != nil {
		return append(errs, errf("mcp-authz config %s: %v", hostCfg, err))
	}
	if ep := authz.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"]; ep != "" {
		u, err := url.Parse(ep)
		if err != nil {
			errs = append(errs, err)
		} else if js, ok := c.Services[u.Hostname()]; !ok || !slices.Contains(servicePorts(u.Hostname(), js, cfg), u.Port()) {
			errs = append(errs, errf("mcp-authz: OTEL_EXPORTER_OTLP_ENDPOINT %s is not a compose service port", ep))
		}
	}
	// The issuer mcp-authz trusts is the dev IdP's -issuer, discovered at the IdP's service and port.
	if idp, ok := c.Services["idp"]; ok {
		found := false
		for _, is := range cfg.Issuers {
			u, _ := url.Parse(is.DiscoveryURL)
			if is.Issuer == idp.flag("-issuer") && u.Hostname() == "idp" && u.Port() == portOf(idp.flag("-listen")) {
				found = true
			}
		}
		if !found {
			errs = append(errs, errf("mcp-authz config trusts no issuer %q discovered at the idp service", idp.flag("-issuer")))
		}
	}

	// Envoy: runs the mounted bootstrap, publishes its listener, and every cluster host is a service port.
	envoy, ok := c.Services["envoy"]
	if !ok {
		return append(errs, errf("no envoy service"))
	}
	envoyMounts := map[string]string{}
	for _, v := range envoy.volumes() {
		envoyMounts[v.Target] = v.Source
	}
	bootPath, ok := envoyMounts[envoy.flag("-c")]
	if !ok {
		return append(errs, errf("envoy: -c %q is not a mounted file", envoy.flag("-c")))
	}
	bs, err := loadBootstrap(readFileErr(bootPath, &errs))
	if err != nil {
		return append(errs, errf("envoy bootstrap %s: %v", bootPath, err))
	}
	for _, l := range bs.GetStaticResources().GetListeners() {
		port := l.GetAddress().GetSocketAddress().GetPortValue()
		if !slices.ContainsFunc(envoy.Ports, func(p string) bool { return strings.HasSuffix(p, ":"+itoa(port)) }) {
			errs = append(errs, errf("envoy: listener %s port %d is not published", l.GetName(), port))
		}
	}
	for _, cl := range bs.GetStaticResources().GetClusters() {
		for _, e := range cl.GetLoadAssignment().GetEndpoints() {
			for _, lb := range e.GetLbEndpoints() {
				sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
				svc, ok := c.Services[sa.GetAddress()]
				if !ok {
					errs = append(errs, errf("envoy %s: cluster %s host %q is not a compose service", bootPath, cl.GetName(), sa.GetAddress()))
					continue
				}
				if ports := servicePorts(sa.GetAddress(), svc, cfg); !slices.Contains(ports, itoa(sa.GetPortValue())) {
					errs = append(errs, errf("envoy %s: cluster %s port %d, but service %s listens on %v", bootPath, cl.GetName(), sa.GetPortValue(), sa.GetAddress(), ports))
				}
			}
		}
	}
	return errs
}

func findVolume(s composeService, v composeVolume) string {
	for _, raw := range s.Volumes {
		if strings.HasPrefix(raw, v.Source+":"+v.Target) {
			return raw
		}
	}
	return ""
}

func readFileErr(path string, errs *[]error) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		*errs = append(*errs, err)
	}
	return b
}

func itoa(u uint32) string { return strconv.FormatUint(uint64(u), 10) }

func TestCompose(t *testing.T) {
	src := string(readFile(t, "docker-compose.yaml"))
	dockerfile := string(readFile(t, "Dockerfile"))
	for name, env := range composeEnvs {
		t.Run(name, func(t *testing.T) {
			c, err := parseCompose([]byte(src), env)
			if err != nil {
				t.Fatal(err)
			}
			if errs := checkCompose(t, c, dockerfile); len(errs) > 0 {
				t.Fatal(joinErrs(errs))
			}
		})
	}
	negatives := []struct{ name, old, new, want string }{
		{"misspelt key", "    volumes:\n      - ./envoy/mcp-authz.yaml", "    volume:\n      - ./envoy/mcp-authz.yaml", "unknown field"},
		{"missing config file", "./envoy/mcp-authz.yaml:/etc", "./envoy/mcp-authz-missing.yaml:/etc", "no such file"},
		{"writable mount", "./envoy/mcp-authz.yaml:/etc/mcp-authz/config.yaml:ro", "./envoy/mcp-authz.yaml:/etc/mcp-authz/config.yaml", "read-only"},
		{"unknown build target", "target: mcp-devidp", "target: mcp-idp", "not a Dockerfile stage"},
		{"port on all interfaces", `"127.0.0.1:8000:8000"`, `"8000:8000"`, "every interface"},
		{"envoy cluster host not a service", "    command: [\"-listen\", \"0.0.0.0:3000\"]\n    read_only: true\n    cap_drop: [ALL]\n    security_opt: [\"no-new-privileges:true\"]\n    restart: unless-stopped\n\n  # The same", "    command: [\"-listen\", \"0.0.0.0:3001\"]\n    read_only: true\n    cap_drop: [ALL]\n    security_opt: [\"no-new-privileges:true\"]\n    restart: unless-stopped\n\n  # The same", "service mcp-server listens on [3001]"},
		{"issuer mismatch", `"-issuer", "http://idp:9000"`, `"-issuer", "http://localhost:9000"`, "trusts no issuer"},
		{"unknown dependency", "depends_on: [idp, jaeger]", "depends_on: [idp, tempo]", "unknown service"},
		{"config not mounted", `command: ["--config", "/etc/mcp-authz/config.yaml"]`, `command: ["--config", "/etc/mcp-authz/other.yaml"]`, "not a mounted file"},
	}
	for _, n := range negatives {
		t.Run("negative/"+n.name, func(t *testing.T) {
			c, err := parseCompose([]byte(mutate(t, src, n.old, n.new)), nil)
			if err == nil {
				err = joinErrs(checkCompose(t, c, dockerfile))
			}
			if !errorsContain(err, n.want) {
				t.Fatalf("want an error containing %q, got %v", n.want, err)
			}
		})
	}
}
