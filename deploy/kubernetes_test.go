package deploy

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// kubeObjects holds decoded Kubernetes objects by kind.
type kubeObjects struct {
	namespaces      []*corev1.Namespace
	serviceAccounts []*corev1.ServiceAccount
	deployments     []*appsv1.Deployment
	services        []*corev1.Service
	configMaps      []*corev1.ConfigMap
	pdbs            []*policyv1.PodDisruptionBudget
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
}

var yamlDocSep = regexp.MustCompile(`(?m)^---\s*$`)

// decodeKube decodes a (multi-document) manifest strictly into the API types: unknown or duplicate fields fail.
func decodeKube(b []byte, into *kubeObjects) error {
	for _, doc := range yamlDocSep.Split(string(b), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return err
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 Namespace":
			o := &corev1.Namespace{}
			into.namespaces, obj = append(into.namespaces, o), o
		case "v1 ServiceAccount":
			o := &corev1.ServiceAccount{}
			into.serviceAccounts, obj = append(into.serviceAccounts, o), o
		case "apps/v1 Deployment":
			o := &appsv1.Deployment{}
			into.deployments, obj = append(into.deployments, o), o
		case "v1 Service":
			o := &corev1.Service{}
			into.services, obj = append(into.services, o), o
		case "v1 ConfigMap":
			o := &corev1.ConfigMap{}
			into.configMaps, obj = append(into.configMaps, o), o
		case "policy/v1 PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			into.pdbs, obj = append(into.pdbs, o), o
		case "autoscaling/v2 HorizontalPodAutoscaler":
			o := &autoscalingv2.HorizontalPodAutoscaler{}
			into.hpas, obj = append(into.hpas, o), o
		default:
			return fmt.Errorf("unexpected object %s %s", tm.APIVersion, tm.Kind)
		}
		if err := decodeStrict([]byte(doc), obj); err != nil {
			return fmt.Errorf("%s: %w", tm.Kind, err)
		}
	}
	return nil
}

func stripComments(doc string) string {
	var out []string
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// kustomizeTree is a copy of deploy/'s files (what the kustomization may load), as path -> content.
type kustomizeTree map[string]string

func loadKustomizeTree(t *testing.T) kustomizeTree {
	t.Helper()
	tree := kustomizeTree{}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".go") || p == "go.sum" {
			return err
		}
		b, err := os.ReadFile(p)
		tree[filepath.ToSlash(p)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	stub := hostPolicies(t)
	if stub != policiesDir {
		for _, f := range policyFiles {
			tree[policiesDir+"/"+f] = "# stand-in: " + f + " is written by the core team\n"
		}
	}
	return tree
}

// renderYAML runs kustomize (krusty, default options: the root-only load restrictor of kubectl apply -k) on the
// tree's root kustomization, in memory.
func (tree kustomizeTree) renderYAML() ([]byte, error) { return tree.renderYAMLAt(nil, "/work/deploy") }

// renderYAMLAt also writes extra files (paths under /work) and renders the kustomization at root.
func (tree kustomizeTree) renderYAMLAt(extra map[string]string, root string) ([]byte, error) {
	mem := filesys.MakeFsInMemory()
	for p, c := range extra {
		if err := mem.WriteFile("/work/"+p, []byte(c)); err != nil {
			return nil, err
		}
	}
	for p, c := range tree {
		if err := mem.WriteFile("/work/deploy/"+p, []byte(c)); err != nil {
			return nil, err
		}
	}
	// Something outside the root, which the load restrictor must refuse to read.
	if err := mem.WriteFile("/work/outside.yaml", []byte("a: b\n")); err != nil {
		return nil, err
	}
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, root)
	if err != nil {
		return nil, err
	}
	return rm.AsYaml()
}

// render renders the tree and decodes the result strictly.
func (tree kustomizeTree) render() (kubeObjects, error) {
	var objs kubeObjects
	out, err := tree.renderYAML()
	if err != nil {
		return objs, err
	}
	return objs, decodeKube(out, &objs)
}

func selects(sel *metav1.LabelSelector, podLabels map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && !s.Empty() && s.Matches(labels.Set(podLabels))
}

// checkKube checks the rendered base: pod and container hardening, probes, ports, the Services, PDB and HPA
// wiring, and that the ConfigMap'd configuration parses with the ConfigMap'd policies in place.
func checkKube(t *testing.T, o kubeObjects) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(o.deployments) != 1 {
		return []error{fmt.Errorf("want one Deployment, got %d", len(o.deployments))}
	}
	d := o.deployments[0]
	for _, ns := range []string{d.Namespace} {
		if ns != "mcp-authz" {
			bad("Deployment namespace %q, want mcp-authz", ns)
		}
	}
	pod := d.Spec.Template.Spec
	podLabels := d.Spec.Template.Labels
	if !selects(d.Spec.Selector, podLabels) {
		bad("Deployment selector does not select its pod template")
	}
	if d.Spec.Replicas != nil {
		bad("Deployment sets replicas: the HPA owns the count (re-applying would reset it)")
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		bad("pod: securityContext.runAsNonRoot must be true")
	}
	if psc != nil && psc.RunAsUser != nil && *psc.RunAsUser == 0 {
		bad("pod: runAsUser 0")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		bad("pod: automountServiceAccountToken must be false")
	}
	i := slices.IndexFunc(pod.Containers, func(c corev1.Container) bool { return c.Name == "mcp-authz" })
	if i < 0 {
		return append(errs, fmt.Errorf("no container mcp-authz"))
	}
	c := pod.Containers[i]
	sc := c.SecurityContext
	if sc == nil {
		return append(errs, fmt.Errorf("container: no securityContext"))
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		bad("container: readOnlyRootFilesystem must be true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		bad("container: allowPrivilegeEscalation must be false")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		bad("container: capabilities must drop ALL and add none")
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && psc != nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		bad("seccompProfile must be RuntimeDefault")
	}
	if sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot {
		bad("container: runAsNonRoot false")
	}
	if !strings.Contains(c.Image, "/") {
		bad("container image %q: the kustomization's images: entry did not apply", c.Image)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := c.Resources.Requests[r]; !ok || q.IsZero() {
			bad("container: no %s request", r)
		}
		if q, ok := c.Resources.Limits[r]; !ok || q.IsZero() {
			bad("container: no %s limit", r)
		}
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for _, n := range []string{"grpc-authz", "http"} {
		if _, ok := ports[n]; !ok {
			bad("container: no port named %s", n)
		}
	}
	probe := func(name string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil {
			bad("container: %s must be an httpGet probe", name)
			return
		}
		if p.HTTPGet.Path != path {
			bad("container: %s path %s, want %s", name, p.HTTPGet.Path, path)
		}
		if p.HTTPGet.Port != intstr.FromString("http") && p.HTTPGet.Port != intstr.FromInt32(ports["http"]) {
			bad("container: %s port %s is not the http port", name, p.HTTPGet.Port.String())
		}
	}
	probe("livenessProbe", c.LivenessProbe, "/healthz")
	probe("readinessProbe", c.ReadinessProbe, "/readyz")
	grace := int64(30)
	if pod.TerminationGracePeriodSeconds != nil {
		grace = *pod.TerminationGracePeriodSeconds
	} else {
		bad("pod: terminationGracePeriodSeconds must be set")
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		bad("container: preStop must sleep (native sleep action: the image has no shell)")
	} else if s := c.Lifecycle.PreStop.Sleep.Seconds; s <= 0 || s+5 > grace {
		bad("container: preStop sleeps %ds; it must leave at least 5s of the %ds grace period for shutdown", s, grace)
	}

	// Services: named ports with appProtocol, targeting the container's ports, selecting the pods.
	var main *corev1.Service
	for _, s := range o.services {
		if !selects(&metav1.LabelSelector{MatchLabels: s.Spec.Selector}, podLabels) {
			bad("Service %s does not select the mcp-authz pods", s.Name)
		}
		want := map[string]string{"grpc-authz": "grpc", "http": "http"}
		for _, p := range s.Spec.Ports {
			if ap, ok := want[p.Name]; !ok || p.AppProtocol == nil || *p.AppProtocol != ap {
				bad("Service %s port %s: want names grpc-authz/http with appProtocol grpc/http", s.Name, p.Name)
			}
			if tp := p.TargetPort; tp.Type == intstr.String && ports[tp.StrVal] == 0 || tp.Type == intstr.Int && !slices.Contains(mapValues(ports), tp.IntVal) {
				bad("Service %s port %s: targetPort %s is no container port", s.Name, p.Name, tp.String())
			}
			delete(want, p.Name)
		}
		if len(want) > 0 {
			bad("Service %s lacks ports %v", s.Name, want)
		}
		if s.Name == "mcp-authz" {
			main = s
		}
	}
	if main == nil {
		bad("no Service mcp-authz")
	}

	// PDB and HPA.
	if len(o.pdbs) != 1 || len(o.hpas) != 1 {
		return append(errs, fmt.Errorf("want one PodDisruptionBudget and one HorizontalPodAutoscaler"))
	}
	pdb, hpa := o.pdbs[0], o.hpas[0]
	if !selects(pdb.Spec.Selector, podLabels) {
		bad("PodDisruptionBudget does not select the mcp-authz pods")
	}
	if ref := hpa.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != d.Name || ref.APIVersion != "apps/v1" {
		bad("HorizontalPodAutoscaler targets %v, not the Deployment %s", ref, d.Name)
	}
	minR := int32(1)
	if hpa.Spec.MinReplicas != nil {
		minR = *hpa.Spec.MinReplicas
	}
	if minR < 2 {
		bad("HorizontalPodAutoscaler minReplicas %d: keep at least 2", minR)
	}
	if ma := pdb.Spec.MinAvailable; ma == nil || ma.Type != intstr.Int || ma.IntVal >= minR {
		bad("PodDisruptionBudget minAvailable %v must be a number below minReplicas %d, or drains block", ma, minR)
	}

	// The configuration: read from the ConfigMap mounted where --config points, with every ConfigMap volume's
	// files written to a temporary folder at their mount path.
	cms := map[string]*corev1.ConfigMap{}
	for _, cm := range o.configMaps {
		cms[cm.Name] = cm
	}
	vols := map[string]*corev1.ConfigMap{}
	for _, v := range pod.Volumes {
		if v.ConfigMap != nil {
			if cms[v.ConfigMap.Name] == nil {
				bad("volume %s: ConfigMap %s is not in the render", v.Name, v.ConfigMap.Name)
				continue
			}
			vols[v.Name] = cms[v.ConfigMap.Name]
		}
	}
	tmp := t.TempDir()
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		cm := vols[m.Name]
		if cm == nil {
			continue
		}
		if !m.ReadOnly {
			bad("volumeMount %s: mount ConfigMaps readOnly", m.Name)
		}
		dir := filepath.Join(tmp, m.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return append(errs, err)
		}
		for k, v := range cm.Data {
			if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o644); err != nil {
				return append(errs, err)
			}
		}
		mounts[m.MountPath] = dir
	}
	j := slices.Index(c.Args, "--config")
	if j < 0 || j+1 >= len(c.Args) {
		return append(errs, fmt.Errorf("container args %v: no --config", c.Args))
	}
	cfgFile := mapPath(c.Args[j+1], mounts)
	b, err := os.ReadFile(cfgFile)
	if err != nil {
		return append(errs, fmt.Errorf("--config %s is not in a mounted ConfigMap: %v", c.Args[j+1], err))
	}
	cfg, err := parseConfig(b, mounts)
	if err != nil {
		return append(errs, fmt.Errorf("ConfigMap'd config: %v", err))
	}
	if portOf(cfg.Listen.GRPC) != fmt.Sprint(ports["grpc-authz"]) || portOf(cfg.Listen.HTTP) != fmt.Sprint(ports["http"]) {
		bad("config listen %v does not match the container ports %v", cfg.Listen, ports)
	}
	return errs
}

func mapValues(m map[string]int32) []int32 {
	var out []int32
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestKubernetesManifests decodes each manifest file on its own, strictly.
func TestKubernetesManifests(t *testing.T) {
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f == "kubernetes/mcp-authz.yaml" { // the mcp-authz configuration, checked by TestContainerConfigs
			continue
		}
		t.Run(f, func(t *testing.T) {
			var o kubeObjects
			if err := decodeKube(readFile(t, f), &o); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestKustomizeBase(t *testing.T) {
	tree := loadKustomizeTree(t)
	objs, err := tree.render()
	if err != nil {
		t.Fatal(err)
	}
	if errs := checkKube(t, objs); len(errs) > 0 {
		t.Fatal(joinErrs(errs))
	}
	negatives := []struct{ name, file, old, new, want string }{
		{"writable root", "kubernetes/deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem"},
		{"misspelt field", "kubernetes/deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true", "unknown field"},
		{"root", "kubernetes/deployment.yaml", "runAsNonRoot: true\n        runAsUser: 65532", "runAsNonRoot: false\n        runAsUser: 65532", "runAsNonRoot"},
		{"capabilities kept", "kubernetes/deployment.yaml", "drop: [ALL]", "drop: [NET_RAW]", "drop ALL"},
		{"readiness path", "kubernetes/deployment.yaml", "path: /readyz", "path: /ready", "readinessProbe path"},
		{"liveness port", "kubernetes/deployment.yaml", "path: /healthz\n              port: http", "path: /healthz\n              port: grpc-authz", "livenessProbe port"},
		{"port renamed", "kubernetes/deployment.yaml", "- name: grpc-authz\n              containerPort", "- name: grpc\n              containerPort", "no port named grpc-authz"},
		{"no preStop", "kubernetes/deployment.yaml", "            preStop:\n              sleep:\n                seconds: 10\n", "            postStart:\n              sleep:\n                seconds: 1\n", "preStop"},
		{"preStop too long", "kubernetes/deployment.yaml", "seconds: 10", "seconds: 30", "grace period"},
		{"no memory limit", "kubernetes/deployment.yaml", "              memory: 256Mi\n", "", "memory limit"},
		{"service appProtocol", "kubernetes/service.yaml", "appProtocol: grpc", "appProtocol: http2", "appProtocol"},
		{"service selector", "kubernetes/service.yaml", "  selector:\n    app.kubernetes.io/name: mcp-authz\n", "  selector:\n    app.kubernetes.io/name: authz\n", "does not select"},
		{"pdb blocks drains", "kubernetes/poddisruptionbudget.yaml", "minAvailable: 1", "minAvailable: 2", "drains block"},
		{"hpa target", "kubernetes/horizontalpodautoscaler.yaml", "    name: mcp-authz\n  minReplicas", "    name: authz\n  minReplicas", "targets"},
		{"replicas set", "kubernetes/deployment.yaml", "  revisionHistoryLimit: 5\n", "  replicas: 3\n  revisionHistoryLimit: 5\n", "HPA owns"},
		{"config port", "kubernetes/mcp-authz.yaml", "grpc: 0.0.0.0:9191", "grpc: 0.0.0.0:9192", "container ports"},
		{"policy not in ConfigMap", "kubernetes/mcp-authz.yaml", "/etc/mcp-authz/policies/data.yaml", "/etc/mcp-authz/policies/other.yaml", "policy.paths[1]"},
		{"config key renamed", "kustomization.yaml", "config.yaml=kubernetes/mcp-authz.yaml", "mcp-authz.yaml=kubernetes/mcp-authz.yaml", "not in a mounted ConfigMap"},
		{"file outside the root", "kustomization.yaml", "      - policies/data.yaml\n", "      - policies/data.yaml\n      - ../outside.yaml\n", "security"},
	}
	for _, n := range negatives {
		t.Run("negative/"+n.name, func(t *testing.T) {
			bad := kustomizeTree{}
			for k, v := range tree {
				bad[k] = v
			}
			bad[n.file] = mutate(t, tree[n.file], n.old, n.new)
			objs, err := bad.render()
			if err == nil {
				err = joinErrs(checkKube(t, objs))
			}
			if !errorsContain(err, n.want) {
				t.Fatalf("want an error containing %q, got %v", n.want, err)
			}
		})
	}
}

// TestKustomizeOverlay renders the overlay deploy/README.md documents (new image tag, replaced configuration)
// on top of the base, as a user's folder next to it.
func TestKustomizeOverlay(t *testing.T) {
	tree := loadKustomizeTree(t)
	cfg := strings.ReplaceAll(tree["kubernetes/mcp-authz.yaml"], "mcp.example.com", "tools.example.org")
	overlay := map[string]string{
		"my-overlay/kustomization.yaml": `resources: [../deploy]
images: [{name: ghcr.io/mcp-authz/mcp-authz, newTag: v1.2.3}]
configMapGenerator:
  - name: mcp-authz-config
    behavior: replace
    files: [config.yaml]
`,
		"my-overlay/config.yaml": cfg,
	}
	out, err := tree.renderYAMLAt(overlay, "/work/my-overlay")
	if err != nil {
		t.Fatal(err)
	}
	var objs kubeObjects
	if err := decodeKube(out, &objs); err != nil {
		t.Fatal(err)
	}
	if errs := checkKube(t, objs); len(errs) > 0 {
		t.Fatal(joinErrs(errs))
	}
	if img := objs.deployments[0].Spec.Template.Spec.Containers[0].Image; img != "ghcr.io/mcp-authz/mcp-authz:v1.2.3" {
		t.Errorf("image %s, want the overlay's tag", img)
	}
	if !slices.ContainsFunc(objs.configMaps, func(cm *corev1.ConfigMap) bool { return cm.Data["config.yaml"] == cfg }) {
		t.Errorf("the overlay's configuration did not replace the base's")
	}
}
