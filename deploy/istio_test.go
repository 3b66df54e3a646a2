package deploy

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"

	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/mcp-authz/mcp-authz/config"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

type istioObjects struct {
	gateways        []*networkingv1.Gateway
	virtualServices []*networkingv1.VirtualService
	policies        []*securityv1.AuthorizationPolicy
	envoyFilters    []*networkingv1alpha3.EnvoyFilter
}

// decodeIstio decodes Istio manifests into the client-go types. The top level is decoded strictly; the spec
// is then decoded again with protojson, strictly, because the client-go types unmarshal their spec with
// unknown fields allowed.
func decodeIstio(b []byte, into *istioObjects) error {
	for _, doc := range yamlDocSep.Split(string(b), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return err
		}
		var obj any
		var spec proto.Message
		switch tm.APIVersion + " " + tm.Kind {
		case "networking.istio.io/v1 Gateway":
			o := &networkingv1.Gateway{}
			into.gateways, obj, spec = append(into.gateways, o), o, &o.Spec
		case "networking.istio.io/v1 VirtualService":
			o := &networkingv1.VirtualService{}
			into.virtualServices, obj, spec = append(into.virtualServices, o), o, &o.Spec
		case "security.istio.io/v1 AuthorizationPolicy":
			o := &securityv1.AuthorizationPolicy{}
			into.policies, obj, spec = append(into.policies, o), o, &o.Spec
		case "networking.istio.io/v1alpha3 EnvoyFilter":
			o := &networkingv1alpha3.EnvoyFilter{}
			into.envoyFilters, obj, spec = append(into.envoyFilters, o), o, &o.Spec
		default:
			return fmt.Errorf("unexpected object %s %s", tm.APIVersion, tm.Kind)
		}
		if err := decodeStrict([]byte(doc), obj); err != nil {
			return fmt.Errorf("%s: %w", tm.Kind, err)
		}
		j, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return err
		}
		var raw struct {
			Spec json.RawMessage `json:"spec"`
		}
		if err := json.Unmarshal(j, &raw); err != nil {
			return err
		}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(raw.Spec, spec); err != nil {
			return fmt.Errorf("%s spec: %w", tm.Kind, err)
		}
	}
	return nil
}

func decodeMeshConfig(b []byte) (*meshv1alpha1.MeshConfig, error) {
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, err
	}
	mc := &meshv1alpha1.MeshConfig{}
	return mc, (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(j, mc)
}

// serviceFor resolves a cluster-local FQDN (name.namespace.svc.cluster.local) to a rendered Service.
func serviceFor(svcs []*corev1.Service, fqdn string) *corev1.Service {
	for _, s := range svcs {
		if fqdn == s.Name+"."+s.Namespace+".svc.cluster.local" {
			return s
		}
	}
	return nil
}

func servicePort(s *corev1.Service, name string) uint32 {
	for _, p := range s.Spec.Ports {
		if p.Name == name {
			return uint32(p.Port)
		}
	}
	return 0
}

// uriPaths returns the request paths a VirtualService match list covers, and whether each is exact.
func uriPaths(ms []*networkingapi.HTTPMatchRequest) (exact, prefix []string) {
	for _, m := range ms {
		switch {
		case m.GetUri().GetExact() != "":
			exact = append(exact, m.GetUri().GetExact())
		case m.GetUri().GetPrefix() != "":
			prefix = append(prefix, m.GetUri().GetPrefix())
		}
	}
	return exact, prefix
}

// checkIstio checks the Istio resources against each other, the MeshConfig provider, the Kubernetes base's
// Services and the mcp-authz configuration whose resources the routes must match (host + path).
func checkIstio(mc *meshv1alpha1.MeshConfig, o istioObjects, svcs []*corev1.Service, cfg config.Config) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if n := mc.GetPathNormalization().GetNormalization(); n != meshv1alpha1.MeshConfig_ProxyPathNormalization_MERGE_SLASHES && n != meshv1alpha1.MeshConfig_ProxyPathNormalization_DECODE_AND_MERGE_SLASHES {
		bad("MeshConfig pathNormalization %v: want MERGE_SLASHES (or DECODE_AND_MERGE_SLASHES), so that routes and mcp-authz see one path", n)
	}
	if len(o.policies) != 1 || len(o.gateways) != 1 || len(o.virtualServices) != 1 || len(o.envoyFilters) != 1 {
		return []error{fmt.Errorf("want one AuthorizationPolicy, Gateway, VirtualService and EnvoyFilter")}
	}
	ap, gw, vs, ef := o.policies[0], o.gateways[0], o.virtualServices[0], o.envoyFilters[0]

	// The AuthorizationPolicy: CUSTOM, through the mesh's mcp-authz provider, on the gateway, sparing the metadata.
	if ap.Spec.GetAction() != securityapi.AuthorizationPolicy_CUSTOM {
		bad("AuthorizationPolicy action %v, want CUSTOM", ap.Spec.GetAction())
	}
	if !maps.Equal(ap.Spec.GetSelector().GetMatchLabels(), gw.Spec.GetSelector()) || ap.Namespace != gw.Namespace {
		bad("AuthorizationPolicy selects %v in %s, but the Gateway runs on %v in %s", ap.Spec.GetSelector().GetMatchLabels(), ap.Namespace, gw.Spec.GetSelector(), gw.Namespace)
	}
	notPaths := false
	for _, r := range ap.Spec.GetRules() {
		for _, to := range r.GetTo() {
			op := to.GetOperation()
			if slices.Contains(op.GetNotPaths(), "/.well-known/*") {
				notPaths = true
			}
			for _, h := range vs.Spec.GetHosts() {
				if len(op.GetHosts()) > 0 && !slices.Contains(op.GetHosts(), h) {
					bad("AuthorizationPolicy does not cover the host %s", h)
				}
			}
		}
	}
	if !notPaths {
		bad(`AuthorizationPolicy: want a rule with notPaths ["/.well-known/*"] (the metadata is public)`)
	}
	name := ap.Spec.GetProvider().GetName()
	var prov *meshv1alpha1.MeshConfig_ExtensionProvider
	for _, p := range mc.GetExtensionProviders() {
		if p.GetName() == name {
			prov = p
		}
	}
	if prov == nil {
		return append(errs, fmt.Errorf("AuthorizationPolicy provider %q is not in the MeshConfig's extensionProviders", name))
	}
	g := prov.GetEnvoyExtAuthzGrpc()
	if g == nil {
		return append(errs, fmt.Errorf("extension provider %s: want envoyExtAuthzGrpc", name))
	}
	if g.GetFailOpen() {
		bad("extension provider: failOpen must be false")
	}
	if g.GetStatusOnError() != "503" {
		bad("extension provider: statusOnError %q, want \"503\"", g.GetStatusOnError())
	}
	if g.GetTimeout().AsDuration() <= 0 {
		bad("extension provider: set a timeout")
	}
	body := g.GetIncludeRequestBodyInCheck()
	if body.GetMaxRequestBytes() != 1048576 || body.GetAllowPartialMessage() || !body.GetPackAsBytes() {
		bad("extension provider: includeRequestBodyInCheck %v, want maxRequestBytes 1048576, allowPartialMessage false, packAsBytes true", body)
	}
	if int(body.GetMaxRequestBytes()) > cfg.MaxBodyBytes {
		bad("extension provider: maxRequestBytes exceeds mcp-authz max_body_bytes %d", cfg.MaxBodyBytes)
	}
	svc := serviceFor(svcs, g.GetService())
	if svc == nil {
		return append(errs, fmt.Errorf("extension provider service %s is no Service of the Kubernetes base", g.GetService()))
	}
	if g.GetPort() != servicePort(svc, "grpc-authz") {
		bad("extension provider port %d is not the Service's grpc-authz port %d", g.GetPort(), servicePort(svc, "grpc-authz"))
	}

	// The Gateway and the VirtualService bound to it.
	gwHosts := map[string]bool{}
	for _, s := range gw.Spec.GetServers() {
		for _, h := range s.GetHosts() {
			gwHosts[h] = true
		}
	}
	if !slices.Contains(vs.Spec.GetGateways(), gw.Namespace+"/"+gw.Name) {
		bad("VirtualService gateways %v do not name %s/%s", vs.Spec.GetGateways(), gw.Namespace, gw.Name)
	}
	for _, h := range vs.Spec.GetHosts() {
		if !gwHosts[h] {
			bad("VirtualService host %s is not served by the Gateway", h)
		}
	}
	covered := map[string]bool{}
	wellKnown := false
	for i, r := range vs.Spec.GetHttp() {
		exact, prefix := uriPaths(r.GetMatch())
		if len(r.GetRoute()) != 1 {
			bad("route %s: want one destination", r.GetName())
			continue
		}
		dst := r.GetRoute()[0].GetDestination()
		toAuthz := serviceFor(svcs, dst.GetHost()) != nil
		if slices.Contains(prefix, wellKnownPRM) {
			wellKnown = true
			if !toAuthz || dst.GetPort().GetNumber() != servicePort(svc, "http") {
				bad("route %s: the metadata must go to %s port %d (http)", r.GetName(), g.GetService(), servicePort(svc, "http"))
			}
			if i != 0 {
				bad("route %s: put the metadata route first", r.GetName())
			}
			continue
		}
		if toAuthz {
			bad("route %s: only %s* may reach mcp-authz (it also serves /authz and /metrics)", r.GetName(), wellKnownPRM)
			continue
		}
		// An MCP route: each of its paths, on each host, must select one resource by host + path.
		for _, h := range vs.Spec.GetHosts() {
			for _, p := range append(exact, prefix...) {
				rp := strings.TrimSuffix(p, "/")
				i := slices.IndexFunc(cfg.Resources, func(res config.Resource) bool {
					u, _ := url.Parse(res.URL)
					return u.Hostname() == h && resourcePath(res) == rp
				})
				if i < 0 {
					bad("route %s: %s%s selects no resource url of the mcp-authz config", r.GetName(), h, p)
					continue
				}
				covered[cfg.Resources[i].URL] = true
			}
		}
	}
	if !wellKnown {
		bad("VirtualService: no %s route", wellKnownPRM)
	}
	for _, r := range cfg.Resources {
		if !covered[r.URL] {
			bad("resource %s has no VirtualService route", r.URL)
		}
	}

	// The EnvoyFilter: a header_mutation before the gateway's ext_authz that strips every identity header,
	// and a MERGE into that ext_authz setting validate_mutations (and nothing else: a MERGE could also undo
	// what the MeshConfig sets, such as failOpen).
	if !maps.Equal(ef.Spec.GetWorkloadSelector().GetLabels(), gw.Spec.GetSelector()) || ef.Namespace != gw.Namespace {
		bad("EnvoyFilter does not select the gateway workload")
	}
	stripped, validated := false, false
	for _, p := range ef.Spec.GetConfigPatches() {
		m := p.GetMatch()
		op := p.GetPatch().GetOperation()
		if p.GetApplyTo() != networkingapi.EnvoyFilter_HTTP_FILTER || m.GetContext() != networkingapi.EnvoyFilter_GATEWAY ||
			m.GetListener().GetFilterChain().GetFilter().GetSubFilter().GetName() != extAuthzFilter ||
			op != networkingapi.EnvoyFilter_Patch_INSERT_BEFORE && op != networkingapi.EnvoyFilter_Patch_MERGE {
			bad("EnvoyFilter patch: want HTTP_FILTER, GATEWAY, INSERT_BEFORE or MERGE on the subFilter %s", extAuthzFilter)
			continue
		}
		j, err := protojson.Marshal(p.GetPatch().GetValue())
		if err != nil {
			return append(errs, err)
		}
		hf := &hcmv3.HttpFilter{}
		if err := protojson.Unmarshal(j, hf); err != nil {
			return append(errs, fmt.Errorf("EnvoyFilter patch value: %w", err))
		}
		if op == networkingapi.EnvoyFilter_Patch_MERGE {
			// A MERGE value is partial (no grpc_service: PGV would refuse it); only what it sets counts.
			ea, ok := unpack(hf.GetTypedConfig(), &extauthzv3.ExtAuthz{})
			if !ok || hf.GetName() != extAuthzFilter {
				bad("EnvoyFilter MERGE patch: want an ExtAuthz value for %s", extAuthzFilter)
				continue
			}
			if !proto.Equal(ea, &extauthzv3.ExtAuthz{ValidateMutations: true}) {
				bad("EnvoyFilter MERGE patch: it may only set validate_mutations: true, not %v", ea)
				continue
			}
			validated = true
			continue
		}
		if err := hf.ValidateAll(); err != nil {
			return append(errs, err)
		}
		hm, ok := unpack(hf.GetTypedConfig(), &headermutationv3.HeaderMutation{})
		if !ok {
			bad("EnvoyFilter patch value is not a HeaderMutation filter")
			continue
		}
		if err := hm.ValidateAll(); err != nil {
			return append(errs, err)
		}
		removed := map[string]bool{}
		for _, rm := range hm.GetMutations().GetRequestMutations() {
			removed[strings.ToLower(rm.GetRemove())] = true
		}
		stripped = !slices.ContainsFunc(identityHeaders(cfg), func(h string) bool { return !removed[h] })
	}
	if !stripped {
		bad("EnvoyFilter: no header_mutation removing every identity header %v before ext_authz", identityHeaders(cfg))
	}
	if !validated {
		bad("EnvoyFilter: no MERGE patch setting validate_mutations: true on %s", extAuthzFilter)
	}
	return errs
}

// istioTree is the set of files the Istio check reads, as path -> content (mutated by the negative cases).
type istioTree map[string]string

func (tr istioTree) check(t *testing.T, svcs []*corev1.Service, cfg config.Config) error {
	mc, err := decodeMeshConfig([]byte(tr["istio/mesh-config.yaml"]))
	if err != nil {
		return fmt.Errorf("mesh-config.yaml: %w", err)
	}
	var o istioObjects
	for _, f := range []string{"istio/gateway.yaml", "istio/virtual-service.yaml", "istio/authorization-policy.yaml", "istio/envoy-filter.yaml"} {
		if err := decodeIstio([]byte(tr[f]), &o); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	return joinErrs(checkIstio(mc, o, svcs, cfg))
}

func TestIstio(t *testing.T) {
	kube, err := loadKustomizeTree(t).render()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig(readFile(t, "kubernetes/mcp-authz.yaml"), map[string]string{containerPolicies: hostPolicies(t)})
	if err != nil {
		t.Fatal(err)
	}
	tree := istioTree{}
	for _, f := range []string{"mesh-config.yaml", "gateway.yaml", "virtual-service.yaml", "authorization-policy.yaml", "envoy-filter.yaml"} {
		tree["istio/"+f] = string(readFile(t, "istio/"+f))
	}
	if err := tree.check(t, kube.services, cfg); err != nil {
		t.Fatal(err)
	}

	// The istio kustomization renders to exactly these resources.
	t.Run("kustomization", func(t *testing.T) {
		all := loadKustomizeTree(t)
		mem := kustomizeTree{}
		for k, v := range all {
			if after, ok := strings.CutPrefix(k, "istio/"); ok {
				mem[after] = v
			}
		}
		out, err := mem.renderYAML()
		if err != nil {
			t.Fatal(err)
		}
		var o istioObjects
		if err := decodeIstio(out, &o); err != nil {
			t.Fatal(err)
		}
		if len(o.gateways)+len(o.virtualServices)+len(o.policies)+len(o.envoyFilters) != 4 {
			t.Fatalf("istio/kustomization.yaml renders %d gateways, %d virtual services, %d policies, %d envoy filters", len(o.gateways), len(o.virtualServices), len(o.policies), len(o.envoyFilters))
		}
	})

	negatives := []struct{ name, file, old, new, want string }{
		{"fail open", "istio/mesh-config.yaml", "failOpen: false", "failOpen: true", "failOpen"},
		{"status on error", "istio/mesh-config.yaml", `statusOnError: "503"`, `statusOnError: "403"`, "statusOnError"},
		{"partial body", "istio/mesh-config.yaml", "allowPartialMessage: false", "allowPartialMessage: true", "includeRequestBodyInCheck"},
		{"misspelt mesh field", "istio/mesh-config.yaml", "packAsBytes: true", "packAsByte: true", "packAsByte"},
		{"wrong service", "istio/mesh-config.yaml", "service: mcp-authz.mcp-authz.svc.cluster.local", "service: mcp-authz.default.svc.cluster.local", "no Service of the Kubernetes base"},
		{"wrong port", "istio/mesh-config.yaml", "port: 9191", "port: 8080", "grpc-authz port"},
		{"path normalization", "istio/mesh-config.yaml", "normalization: MERGE_SLASHES", "normalization: NONE", "pathNormalization"},
		{"provider name", "istio/authorization-policy.yaml", "    name: mcp-authz\n  rules", "    name: authz\n  rules", "not in the MeshConfig"},
		{"not CUSTOM", "istio/authorization-policy.yaml", "action: CUSTOM", "action: ALLOW", "want CUSTOM"},
		{"metadata not spared", "istio/authorization-policy.yaml", `notPaths: ["/.well-known/*"]`, `notPaths: ["/.well-known"]`, "notPaths"},
		{"misspelt spec field", "istio/authorization-policy.yaml", "notPaths:", "notPath:", "notPath"},
		{"misspelt top-level field", "istio/virtual-service.yaml", "  namespace: istio-system", "  namespaces: istio-system", "unknown field"},
		{"metadata to the gRPC port", "istio/virtual-service.yaml", "              number: 8080", "              number: 9191", "the metadata must go"},
		{"route without resource", "istio/virtual-service.yaml", "exact: /public/mcp", "exact: /public/mcp2", "selects no resource"},
		{"gateway not bound", "istio/virtual-service.yaml", "gateways: [istio-system/mcp-gateway]", "gateways: [mcp-gateway]", "do not name"},
		{"filter misses a header", "istio/envoy-filter.yaml", "                - remove: x-mcp-email\n", "", "identity header"},
		{"filter after ext_authz", "istio/envoy-filter.yaml", "operation: INSERT_BEFORE", "operation: INSERT_AFTER", "INSERT_BEFORE"},
		{"filter type unknown", "istio/envoy-filter.yaml", "v3.HeaderMutation", "v3.HeaderMutations", "HeaderMutations"},
		{"mutations not validated", "istio/envoy-filter.yaml", "validate_mutations: true", "validate_mutations: false", "validate_mutations"},
		{"no validate patch", "istio/envoy-filter.yaml", "        operation: MERGE\n", "        operation: INSERT_AFTER\n", "INSERT_BEFORE or MERGE"},
		{"merge misspelt", "istio/envoy-filter.yaml", "validate_mutations: true", "validate_mutation: true", "validate_mutation"},
		{"merge fails open", "istio/envoy-filter.yaml", "            validate_mutations: true\n", "            validate_mutations: true\n            failure_mode_allow: true\n", "may only set validate_mutations"},
		{"merge into another filter", "istio/envoy-filter.yaml", "          name: envoy.filters.http.ext_authz\n          typed_config:", "          name: envoy.filters.http.lua\n          typed_config:", "want an ExtAuthz value"},
	}
	for _, n := range negatives {
		t.Run("negative/"+n.name, func(t *testing.T) {
			bad := maps.Clone(tree)
			bad[n.file] = mutate(t, tree[n.file], n.old, n.new)
			if err := bad.check(t, kube.services, cfg); !errorsContain(err, n.want) {
				t.Fatalf("want an error containing %q, got %v", n.want, err)
			}
		})
	}
}
