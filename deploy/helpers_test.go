package deploy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mcp-authz/mcp-authz/config"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// The tests run in the package folder, deploy/: every path below is relative to it.
const (
	policiesDir = "policies"
	// containerPolicies is where every example mounts deploy/policies.
	containerPolicies = "/etc/mcp-authz/policies"
)

// policyFiles are the files the core team ships in deploy/policies; the Kubernetes base lists them.
var policyFiles = []string{"authz.rego", "data.yaml"}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hostPolicies returns deploy/policies when it exists. Until the core team's policies land it returns a
// folder of empty stand-ins, so that the other checks still run; TestPoliciesPresent reports the gap.
func hostPolicies(t *testing.T) string {
	t.Helper()
	if st, err := os.Stat(policiesDir); err == nil && st.IsDir() {
		return policiesDir
	}
	t.Logf("%s is missing: using empty stand-ins for %v", policiesDir, policyFiles)
	dir := t.TempDir()
	for _, f := range policyFiles {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestPoliciesPresent(t *testing.T) {
	if _, err := os.Stat(policiesDir); errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s not present yet (written by the core team); the deployment files reference %v", policiesDir, policyFiles)
	}
	for _, f := range policyFiles {
		if _, err := os.Stat(filepath.Join(policiesDir, f)); err != nil {
			t.Errorf("the Kubernetes base and docs reference %s/%s: %v", policiesDir, f, err)
		}
	}
}

// parseConfig runs config.Parse on an mcp-authz configuration meant for a container, after rewriting each
// policy path under a mount point (container path -> host path) to the host path, so that Parse's checks that
// the files exist look at what would be mounted.
func parseConfig(b []byte, mounts map[string]string) (config.Config, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return config.Config{}, err
	}
	if pol, ok := doc["policy"].(map[string]any); ok {
		if paths, ok := pol["paths"].([]any); ok {
			for i, p := range paths {
				s, _ := p.(string)
				paths[i] = mapPath(s, mounts)
			}
		}
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return config.Config{}, err
	}
	return config.Parse(out)
}

// mapPath rewrites a container path to the host path mounted over it (the longest mount point wins).
func mapPath(p string, mounts map[string]string) string {
	best := ""
	for mp := range mounts {
		if (p == mp || strings.HasPrefix(p, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	if best == "" {
		return p
	}
	return filepath.Join(mounts[best], strings.TrimPrefix(p, best))
}

// resourceByKey finds the configured resource whose url or name is key (Envoy's context_extensions.resource).
func resourceByKey(c config.Config, key string) (config.Resource, bool) {
	i := slices.IndexFunc(c.Resources, func(r config.Resource) bool { return r.URL == key || (r.Name != "" && r.Name == key) })
	if i < 0 {
		return config.Resource{}, false
	}
	return c.Resources[i], true
}

// identityHeaders lists the header names mcp-authz sets upstream, after defaults.
func identityHeaders(c config.Config) []string {
	h := c.IdentityHeaders
	return []string{h.Subject, h.ClientID, h.Scopes, h.Issuer, h.Email}
}

// portOf returns the port of a host:port listen address.
func portOf(addr string) string {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return ""
	}
	return addr[i+1:]
}

// mutate returns src with the first occurrence of old replaced by new; it fails the test when old is absent, so
// that a negative case never passes because its mutation silently did nothing.
func mutate(t *testing.T, src, old, new string) string {
	t.Helper()
	if !strings.Contains(src, old) {
		t.Fatalf("mutation target %q not found", old)
	}
	return strings.Replace(src, old, new, 1)
}

// errorsContain reports whether err's text contains want (case-sensitive), for negative cases.
func errorsContain(err error, want string) bool {
	return err != nil && strings.Contains(err.Error(), want)
}

// decodeStrict decodes YAML into v as the Kubernetes API server does in strict mode: duplicate keys, unknown
// fields and field names in the wrong case are errors. (sigs.k8s.io/yaml.UnmarshalStrict alone goes through
// encoding/json, which matches field names case-insensitively: readOnlyRootFileSystem would pass.)
func decodeStrict(b []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		return err
	}
	strictErrs, err := sigsjson.UnmarshalStrict(j, v)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

func joinErrs(errs []error) error { return errors.Join(errs...) }

func errf(format string, a ...any) error { return fmt.Errorf(format, a...) }
