package deploy

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mcp-authz/mcp-authz/config"
	"sigs.k8s.io/yaml"
)

// schemaFields lists every field path of config.Config by its YAML name ("listen.grpc", "resources[].url").
func schemaFields(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		path := prefix + name
		ft := f.Type
		switch {
		case ft.Kind() == reflect.Struct:
			out = append(out, schemaFields(ft, path+".")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, schemaFields(ft.Elem(), path+"[].")...)
		default:
			out = append(out, path)
		}
	}
	return out
}

// hasPath reports whether the decoded YAML document sets path (a "[]" step matches any element).
func hasPath(doc any, path string) bool {
	if path == "" {
		return true
	}
	step, rest, _ := strings.Cut(path, ".")
	name, list := strings.CutSuffix(step, "[]")
	m, ok := doc.(map[string]any)
	if !ok {
		return false
	}
	v, ok := m[name]
	if !ok {
		return false
	}
	if !list {
		return hasPath(v, rest)
	}
	items, _ := v.([]any)
	return slices.ContainsFunc(items, func(it any) bool { return hasPath(it, rest) })
}

var yamlKeyLine = regexp.MustCompile(`^\s*(?:-\s+)?([a-z_]+):`)

// checkExample checks that the example parses, sets every field of the schema, and documents each key with a
// comment on the line before it (or on the same line).
func checkExample(src string, policies string) []error {
	var errs []error
	if _, err := parseConfig([]byte(src), map[string]string{"policies": policies}); err != nil {
		errs = append(errs, err)
	}
	var doc any
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		return append(errs, err)
	}
	for _, f := range schemaFields(reflect.TypeFor[config.Config](), "") {
		if !hasPath(doc, f) {
			errs = append(errs, fmt.Errorf("config.example.yaml does not show the field %s", f))
		}
	}
	lines := strings.Split(src, "\n")
	for i, l := range lines {
		m := yamlKeyLine.FindStringSubmatch(l)
		if m == nil || strings.Contains(l, " # ") {
			continue
		}
		if i == 0 || !strings.HasPrefix(strings.TrimSpace(lines[i-1]), "#") {
			errs = append(errs, fmt.Errorf("config.example.yaml:%d: key %s has no comment", i+1, m[1]))
		}
	}
	return errs
}

func TestConfigExample(t *testing.T) {
	src := string(readFile(t, "config.example.yaml"))
	pol := hostPolicies(t)
	if errs := checkExample(src, pol); len(errs) > 0 {
		t.Fatal(joinErrs(errs))
	}
	negatives := []struct{ name, old, new, want string }{
		{"field missing", "  # The token's `email`, when its `email_verified` claim is true. Default x-mcp-email.\n  email: x-mcp-email\n", "", "identity_headers.email"},
		{"field of a list item missing", "    clients_without_audience: [1example23456789abcdefghij]\n", "", "issuers[].clients_without_audience"},
		{"uncommented", "  # debug, info, warn or error. Default info.\n", "", "key level has no comment"},
		{"misspelt", "max_body_bytes: 1048576", "max_body_byte: 1048576", "unknown field"},
		{"invalid value", "level: info", "level: verbose", "log.level"},
		{"missing policy folder", "paths: [policies]", "paths: [policy]", "policy.paths[0]"},
	}
	for _, n := range negatives {
		t.Run("negative/"+n.name, func(t *testing.T) {
			err := joinErrs(checkExample(mutate(t, src, n.old, n.new), pol))
			if !errorsContain(err, n.want) {
				t.Fatalf("want an error containing %q, got %v", n.want, err)
			}
		})
	}
}

// TestContainerConfigs checks the configurations meant for containers: they listen on every interface (the
// Dockerfile EXPOSEs 9191 and 8080) and use absolute policy paths under the mount point.
func TestContainerConfigs(t *testing.T) {
	for _, file := range []string{"envoy/mcp-authz.yaml", "kubernetes/mcp-authz.yaml"} {
		t.Run(file, func(t *testing.T) {
			cfg, err := parseConfig(readFile(t, file), map[string]string{containerPolicies: hostPolicies(t)})
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range []string{cfg.Listen.GRPC, cfg.Listen.HTTP} {
				if !strings.HasPrefix(a, "0.0.0.0:") {
					t.Errorf("listen address %s: a container must listen on 0.0.0.0", a)
				}
			}
			if portOf(cfg.Listen.GRPC) != "9191" || portOf(cfg.Listen.HTTP) != "8080" {
				t.Errorf("listen %v: the image EXPOSEs 9191 (gRPC) and 8080 (HTTP)", cfg.Listen)
			}
			var raw struct {
				Policy struct {
					Paths []string `json:"paths"`
				} `json:"policy"`
			}
			if err := yaml.Unmarshal(readFile(t, file), &raw); err != nil {
				t.Fatal(err)
			}
			for _, p := range raw.Policy.Paths {
				if p != containerPolicies && !strings.HasPrefix(p, containerPolicies+"/") {
					t.Errorf("policy path %s is not under %s", p, containerPolicies)
				}
			}
		})
	}
}
