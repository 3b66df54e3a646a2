package deploy

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/mcp-authz/mcp-authz/config"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"
)

// The typed_config types the bootstraps use are registered by the imports above (each generated package
// registers its messages in protoregistry.GlobalTypes), which is the resolver protojson and anypb use.
var _ = []proto.Message{&routerv3.Router{}, &upstreamhttpv3.HttpProtocolOptions{}, &tracev3.OpenTelemetryConfig{}}

const (
	extAuthzFilter = "envoy.filters.http.ext_authz"
	wellKnownPRM   = "/.well-known/oauth-protected-resource"
)

// The Envoy examples and the authorization mode each uses.
var envoyFiles = map[string]string{
	"envoy/envoy.yaml":      "grpc",
	"envoy/envoy-http.yaml": "http",
}

type validator interface{ ValidateAll() error }

// loadBootstrap decodes an Envoy YAML bootstrap strictly (unknown fields and unresolvable Any types fail), then
// runs the protoc-gen-validate rules on the bootstrap and on every message packed in an Any.
func loadBootstrap(b []byte) (*bootstrapv3.Bootstrap, error) {
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, err
	}
	bs := &bootstrapv3.Bootstrap{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(j, bs); err != nil {
		return nil, err
	}
	if err := bs.ValidateAll(); err != nil {
		return nil, err
	}
	if err := walkMessages(bs.ProtoReflect(), func(proto.Message) error { return nil }); err != nil {
		return nil, err
	}
	return bs, nil
}

// walkMessages calls visit on m and every message inside it, unpacking (and validating) each Any on the way.
func walkMessages(m protoreflect.Message, visit func(proto.Message) error) error {
	if err := visit(m.Interface()); err != nil {
		return err
	}
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("typed_config %s: %w", a.GetTypeUrl(), err)
		}
		if v, ok := inner.(validator); ok {
			if err := v.ValidateAll(); err != nil {
				return fmt.Errorf("typed_config %s: %w", a.GetTypeUrl(), err)
			}
		}
		return walkMessages(inner.ProtoReflect(), visit)
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					err = walkMessages(mv.Message(), visit)
					return err == nil
				})
			}
		case fd.IsList():
			if fd.Kind() == protoreflect.MessageKind {
				for i := 0; i < v.List().Len() && err == nil; i++ {
					err = walkMessages(v.List().Get(i).Message(), visit)
				}
			}
		case fd.Kind() == protoreflect.MessageKind:
			err = walkMessages(v.Message(), visit)
		}
		return err == nil
	})
	return err
}

// clusterRefs lists every cluster name a route, gRPC service, HTTP URI (ext_authz, tracer, ...) refers to.
func clusterRefs(bs *bootstrapv3.Bootstrap) ([]string, error) {
	var refs []string
	err := walkMessages(bs.ProtoReflect(), func(m proto.Message) error {
		switch x := m.(type) {
		case *routev3.RouteAction:
			if c := x.GetCluster(); c != "" {
				refs = append(refs, c)
			}
			for _, w := range x.GetWeightedClusters().GetClusters() {
				refs = append(refs, w.GetName())
			}
		case *corev3.GrpcService_EnvoyGrpc:
			refs = append(refs, x.GetClusterName())
		case *corev3.HttpUri:
			refs = append(refs, x.GetCluster())
		}
		return nil
	})
	return refs, err
}

func unpack[T proto.Message](a *anypb.Any, m T) (T, bool) {
	if a == nil || a.MessageName() != m.ProtoReflect().Descriptor().FullName() {
		return m, false
	}
	return m, a.UnmarshalTo(m) == nil
}

type clusterAddr struct{ host, port string }

func clusterAddrs(cl *clusterv3.Cluster) []clusterAddr {
	var out []clusterAddr
	for _, e := range cl.GetLoadAssignment().GetEndpoints() {
		for _, lb := range e.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			out = append(out, clusterAddr{sa.GetAddress(), itoa(sa.GetPortValue())})
		}
	}
	return out
}

func http2(cl *clusterv3.Cluster) bool {
	o, ok := unpack(cl.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"], &upstreamhttpv3.HttpProtocolOptions{})
	return ok && o.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil
}

// matchesHeader evaluates a ListStringMatcher (no regex) against a lower-case header name.
func matchesHeader(l *matcherv3.ListStringMatcher, h string) bool {
	for _, p := range l.GetPatterns() {
		v, s := h, ""
		switch {
		case p.GetExact() != "":
			s = p.GetExact()
		case p.GetPrefix() != "":
			s = p.GetPrefix()
		case p.GetSuffix() != "":
			s = p.GetSuffix()
		case p.GetContains() != "":
			s = p.GetContains()
		}
		if p.GetIgnoreCase() {
			v, s = strings.ToLower(v), strings.ToLower(s)
		}
		switch {
		case p.GetExact() != "" && v == s,
			p.GetPrefix() != "" && strings.HasPrefix(v, s),
			p.GetSuffix() != "" && strings.HasSuffix(v, s),
			p.GetContains() != "" && strings.Contains(v, s):
			return true
		}
	}
	return false
}

func routePath(r *routev3.Route) string {
	m := r.GetMatch()
	switch {
	case m.GetPathSeparatedPrefix() != "":
		return m.GetPathSeparatedPrefix()
	case m.GetPath() != "":
		return m.GetPath()
	}
	return m.GetPrefix()
}

func resourcePath(r config.Resource) string {
	u, _ := url.Parse(r.URL)
	if u.Path == "" {
		return "/"
	}
	return u.Path
}

// checkEnvoy checks one bootstrap against the rules of the brief and against the mcp-authz configuration it
// fronts. mode is "grpc" or "http".
func checkEnvoy(bs *bootstrapv3.Bootstrap, cfg config.Config, mode string) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if a := bs.GetAdmin().GetAddress().GetSocketAddress().GetAddress(); a == "" || !net.ParseIP(a).IsLoopback() {
		bad("admin: address %q, want a loopback address", a)
	}
	clusters := map[string]*clusterv3.Cluster{}
	for _, cl := range bs.GetStaticResources().GetClusters() {
		clusters[cl.GetName()] = cl
	}
	refs, err := clusterRefs(bs)
	if err != nil {
		return append(errs, err)
	}
	for _, r := range refs {
		if clusters[r] == nil {
			bad("cluster %q is referenced but not defined", r)
		}
	}
	// atPort reports whether a cluster sends to the given mcp-authz listener port.
	atPort := func(name, port string) bool {
		cl := clusters[name]
		return cl != nil && slices.ContainsFunc(clusterAddrs(cl), func(a clusterAddr) bool { return a.port == port })
	}
	grpcPort, httpPort := portOf(cfg.Listen.GRPC), portOf(cfg.Listen.HTTP)
	ids := identityHeaders(cfg)

	var hcms []*hcmv3.HttpConnectionManager
	for _, l := range bs.GetStaticResources().GetListeners() {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				if h, ok := unpack(f.GetTypedConfig(), &hcmv3.HttpConnectionManager{}); ok {
					hcms = append(hcms, h)
				}
			}
		}
	}
	if len(hcms) == 0 {
		bad("no http_connection_manager")
	}
	for _, h := range hcms {
		if !h.GetNormalizePath().GetValue() || !h.GetMergeSlashes() || h.GetPathWithEscapedSlashesAction() != hcmv3.HttpConnectionManager_REJECT_REQUEST {
			bad("http_connection_manager: normalize_path, merge_slashes and path_with_escaped_slashes_action: REJECT_REQUEST, so that routes and mcp-authz see one path")
		}
		// Filter order: strip client identity headers, then ext_authz, then the router.
		var authz *extauthzv3.ExtAuthz
		authzName, iMut, iAuthz := "", -1, -1
		for i, f := range h.GetHttpFilters() {
			if m, ok := unpack(f.GetTypedConfig(), &headermutationv3.HeaderMutation{}); ok && iAuthz < 0 {
				removed := map[string]bool{}
				for _, rm := range m.GetMutations().GetRequestMutations() {
					removed[strings.ToLower(rm.GetRemove())] = true
				}
				if !slices.ContainsFunc(ids, func(id string) bool { return !removed[id] }) {
					iMut = i
				}
			}
			if a, ok := unpack(f.GetTypedConfig(), &extauthzv3.ExtAuthz{}); ok {
				authz, authzName, iAuthz = a, f.GetName(), i
			}
		}
		filters := h.GetHttpFilters()
		if len(filters) == 0 || filters[len(filters)-1].GetTypedConfig().MessageName() != "envoy.extensions.filters.http.router.v3.Router" {
			bad("http_filters: the router must be the last filter")
		}
		if authz == nil {
			bad("http_filters: no ext_authz filter")
			continue
		}
		if iMut < 0 {
			bad("http_filters: no header_mutation before ext_authz removing every identity header %v", ids)
		}
		// ext_authz settings.
		if authz.GetTransportApiVersion() != corev3.ApiVersion_V3 {
			bad("ext_authz: transport_api_version %v, want V3", authz.GetTransportApiVersion())
		}
		if authz.GetFailureModeAllow() {
			bad("ext_authz: failure_mode_allow must be false (fail closed)")
		}
		if c := authz.GetStatusOnError().GetCode(); c != 503 {
			bad("ext_authz: status_on_error %v, want 503", c)
		}
		if !authz.GetValidateMutations() {
			bad("ext_authz: validate_mutations must be true (Envoy refuses header mutations it cannot apply as they are)")
		}
		wb := authz.GetWithRequestBody()
		if wb.GetMaxRequestBytes() != 1048576 || wb.GetAllowPartialMessage() || !wb.GetPackAsBytes() {
			bad("ext_authz: with_request_body %v, want max_request_bytes 1048576, allow_partial_message false, pack_as_bytes true", wb)
		}
		if int(wb.GetMaxRequestBytes()) > cfg.MaxBodyBytes {
			bad("ext_authz: max_request_bytes %d exceeds mcp-authz max_body_bytes %d", wb.GetMaxRequestBytes(), cfg.MaxBodyBytes)
		}
		var authzCluster string
		switch mode {
		case "grpc":
			gs := authz.GetGrpcService()
			authzCluster = gs.GetEnvoyGrpc().GetClusterName()
			if gs == nil || authzCluster == "" {
				bad("ext_authz: want grpc_service.envoy_grpc (gRPC mode)")
				break
			}
			if gs.GetTimeout().AsDuration() <= 0 {
				bad("ext_authz: grpc_service.timeout must be set")
			}
			if rp := gs.GetRetryPolicy(); rp.GetNumRetries().GetValue() < 1 || !strings.Contains(rp.GetRetryOn(), "unavailable") {
				bad("ext_authz: grpc_service.retry_policy must retry unavailable (a replica shedding load or shutting down) at least once")
			}
			if !atPort(authzCluster, grpcPort) {
				bad("ext_authz: cluster %s does not reach mcp-authz listen.grpc port %s", authzCluster, grpcPort)
			}
			if cl := clusters[authzCluster]; cl != nil && !http2(cl) {
				bad("ext_authz: cluster %s must speak HTTP/2 (typed_extension_protocol_options)", authzCluster)
			}
		case "http":
			hs := authz.GetHttpService()
			authzCluster = hs.GetServerUri().GetCluster()
			if hs == nil || authzCluster == "" {
				bad("ext_authz: want http_service (HTTP mode)")
				break
			}
			if hs.GetServerUri().GetTimeout().AsDuration() <= 0 {
				bad("ext_authz: http_service.server_uri.timeout must be set")
			}
			if !atPort(authzCluster, httpPort) {
				bad("ext_authz: cluster %s does not reach mcp-authz listen.http port %s", authzCluster, httpPort)
			}
			if hs.GetPathPrefix() != "/authz" {
				bad("ext_authz: http_service.path_prefix %q, want /authz", hs.GetPathPrefix())
			}
			resp := hs.GetAuthorizationResponse()
			for _, id := range ids {
				if !matchesHeader(resp.GetAllowedUpstreamHeaders(), id) {
					bad("ext_authz: allowed_upstream_headers does not copy %s", id)
				}
			}
			for _, ch := range []string{"www-authenticate", "content-type"} {
				if !matchesHeader(resp.GetAllowedClientHeaders(), ch) {
					bad("ext_authz: allowed_client_headers does not return %s", ch)
				}
			}
			//lint:ignore SA1019 the deprecated per-request list must not forward trusted headers either
			deprecated := hs.GetAuthorizationRequest().GetAllowedHeaders()
			for _, l := range []*matcherv3.ListStringMatcher{authz.GetAllowedHeaders(), deprecated} {
				for _, h := range append([]string{"x-original-uri", "x-original-method", "x-forwarded-host"}, ids...) {
					if matchesHeader(l, h) {
						bad("ext_authz: allowed_headers forwards the client's %s, which mcp-authz would trust", h)
					}
				}
			}
		}

		// mcp-authz's HTTP listener: the ext_authz cluster's hosts at listen.http's port.
		authzHosts := hostsOf(clusters[authzCluster])
		isAuthzHTTP := func(name string) bool {
			return clusters[name] != nil && slices.ContainsFunc(clusterAddrs(clusters[name]), func(a clusterAddr) bool {
				return a.port == httpPort && slices.Contains(authzHosts, a.host)
			})
		}

		// Tracing through the OpenTelemetry tracer.
		if otel, ok := unpack(h.GetTracing().GetProvider().GetTypedConfig(), &tracev3.OpenTelemetryConfig{}); !ok {
			bad("tracing: want the envoy.tracers.opentelemetry provider")
		} else if c := otel.GetGrpcService().GetEnvoyGrpc().GetClusterName(); c != "" && clusters[c] != nil && !http2(clusters[c]) {
			bad("tracing: OTLP gRPC cluster %s must speak HTTP/2", c)
		}

		// Routes.
		rc := h.GetRouteConfig()
		if rc == nil {
			bad("http_connection_manager: want an inline route_config")
			continue
		}
		stripsIdentity := func(where string, hs []string) {
			for _, x := range hs {
				if slices.Contains(ids, strings.ToLower(x)) {
					bad("%s: request_headers_to_remove %s runs in the router, after ext_authz, and would drop the identity mcp-authz sets; strip it with header_mutation before ext_authz", where, x)
				}
			}
		}
		stripsIdentity("route_config", rc.GetRequestHeadersToRemove())
		covered := map[string]bool{}
		wellKnown := 0
		for _, vh := range rc.GetVirtualHosts() {
			stripsIdentity("virtual_host "+vh.GetName(), vh.GetRequestHeadersToRemove())
			vhExt, _ := unpack(vh.GetTypedPerFilterConfig()[authzName], &extauthzv3.ExtAuthzPerRoute{})
			for i, r := range vh.GetRoutes() {
				where := fmt.Sprintf("route %q", r.GetName())
				stripsIdentity(where, r.GetRequestHeadersToRemove())
				for k := range r.GetTypedPerFilterConfig() {
					if strings.Contains(k, "ext_authz") && k != authzName {
						bad("%s: typed_per_filter_config key %q is not the ext_authz filter's name %q", where, k, authzName)
					}
				}
				ext := vhExt
				if e, ok := unpack(r.GetTypedPerFilterConfig()[authzName], &extauthzv3.ExtAuthzPerRoute{}); ok {
					ext = e
				}
				path := routePath(r)
				isWK := strings.HasPrefix(path, wellKnownPRM)
				if isWK {
					wellKnown++
					for _, prev := range vh.GetRoutes()[:i] {
						if p := prev.GetMatch().GetPrefix(); p != "" && strings.HasPrefix(path, p) {
							bad("%s: shadowed by the earlier route %q", where, prev.GetName())
						}
					}
				}
				action := r.GetRoute()
				switch {
				case r.GetDirectResponse() != nil || r.GetRedirect() != nil:
					continue
				case action == nil:
					bad("%s: unsupported action", where)
					continue
				}
				switch {
				case isWK:
					if !ext.GetDisabled() {
						bad("%s: the metadata route must set ExtAuthzPerRoute disabled: true", where)
					}
					if !isAuthzHTTP(action.GetCluster()) {
						bad("%s: cluster %s does not reach mcp-authz's listen.http port %s", where, action.GetCluster(), httpPort)
					}
				case isAuthzHTTP(action.GetCluster()):
					bad("%s: only %s* may reach mcp-authz's HTTP port (it also serves /authz and /metrics)", where, wellKnownPRM)
				default:
					if ext.GetDisabled() {
						bad("%s: ext_authz is disabled on an MCP route", where)
					}
					var res config.Resource
					if mode == "grpc" {
						key := ext.GetCheckSettings().GetContextExtensions()["resource"]
						var ok bool
						if res, ok = resourceByKey(cfg, key); !ok {
							bad("%s: context_extensions.resource %q names no resource (url or name) of the mcp-authz config", where, key)
							continue
						}
					} else {
						i := slices.IndexFunc(cfg.Resources, func(r config.Resource) bool { return resourcePath(r) == path })
						if i < 0 {
							bad("%s: path %s is no resource url path: mcp-authz picks the resource by host and path", where, path)
							continue
						}
						res = cfg.Resources[i]
					}
					if resourcePath(res) != path {
						bad("%s: matches %s but its resource %s has path %s", where, path, res.URL, resourcePath(res))
					}
					covered[res.URL] = true
				}
			}
		}
		if wellKnown == 0 {
			bad("no %s route to mcp-authz", wellKnownPRM)
		}
		for _, r := range cfg.Resources {
			if !covered[r.URL] {
				bad("resource %s has no route", r.URL)
			}
		}
	}
	return errs
}

func hostsOf(cl *clusterv3.Cluster) []string {
	var out []string
	for _, a := range clusterAddrs(cl) {
		out = append(out, a.host)
	}
	return out
}

// envoyAuthzConfig parses deploy/envoy/mcp-authz.yaml with the policies mounted as docker-compose mounts them.
func envoyAuthzConfig(t *testing.T) config.Config {
	t.Helper()
	cfg, err := parseConfig(readFile(t, "envoy/mcp-authz.yaml"), map[string]string{containerPolicies: hostPolicies(t)})
	if err != nil {
		t.Fatalf("envoy/mcp-authz.yaml: %v", err)
	}
	return cfg
}

func TestEnvoyBootstraps(t *testing.T) {
	cfg := envoyAuthzConfig(t)
	for file, mode := range envoyFiles {
		t.Run(file, func(t *testing.T) {
			bs, err := loadBootstrap(readFile(t, file))
			if err != nil {
				t.Fatal(err)
			}
			if errs := checkEnvoy(bs, cfg, mode); len(errs) > 0 {
				t.Fatal(joinErrs(errs))
			}
		})
	}
}

// TestEnvoyNegative mutates copies of the bootstraps and expects each mutation to be caught.
func TestEnvoyNegative(t *testing.T) {
	cfg := envoyAuthzConfig(t)
	const perRouteWK = "                          route: {cluster: mcp_authz_http, timeout: 5s}\n" +
		"                          typed_per_filter_config:\n" +
		"                            envoy.filters.http.ext_authz:\n" +
		"                              \"@type\": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute\n" +
		"                              disabled: true\n"
	cases := []struct {
		name, file, old, new, want string
	}{
		{"misspelt field", "envoy/envoy.yaml", "failure_mode_allow: false", "failure_mode_alow: false", "unknown field"},
		{"unknown typed_config type", "envoy/envoy.yaml", "v3.HeaderMutation", "v3.HeaderMutations", "HeaderMutations"},
		{"PGV rule", "envoy/envoy.yaml", "connect_timeout: 1s", "connect_timeout: -1s", "ConnectTimeout"},
		{"PGV rule inside typed_config", "envoy/envoy.yaml", "stat_prefix: mcp_ingress", "stat_prefix: \"\"", "StatPrefix"},
		{"no retry on unavailable", "envoy/envoy.yaml", "retry_on: unavailable", "retry_on: internal", "retry_policy"},
		{"fail open", "envoy/envoy.yaml", "failure_mode_allow: false", "failure_mode_allow: true", "failure_mode_allow"},
		{"no status_on_error", "envoy/envoy.yaml", "status_on_error: {code: 503}", "status_on_error: {code: 403}", "status_on_error"},
		{"mutations not validated", "envoy/envoy.yaml", "validate_mutations: true", "validate_mutations: false", "validate_mutations"},
		{"http: mutations not validated", "envoy/envoy-http.yaml", "                      validate_mutations: true\n", "", "validate_mutations"},
		{"path not normalized", "envoy/envoy.yaml", "normalize_path: true", "normalize_path: false", "normalize_path"},
		{"http: escaped slashes kept", "envoy/envoy-http.yaml", "path_with_escaped_slashes_action: REJECT_REQUEST", "path_with_escaped_slashes_action: KEEP_UNCHANGED", "normalize_path"},
		{"partial body", "envoy/envoy.yaml", "allow_partial_message: false", "allow_partial_message: true", "with_request_body"},
		{"body not bytes", "envoy/envoy.yaml", "pack_as_bytes: true", "pack_as_bytes: false", "with_request_body"},
		{"metadata route not disabled", "envoy/envoy.yaml", perRouteWK, "                          route: {cluster: mcp_authz_http, timeout: 5s}\n", "disabled: true"},
		{"metadata route to the MCP server", "envoy/envoy.yaml", "route: {cluster: mcp_authz_http, timeout: 5s}", "route: {cluster: mcp_server, timeout: 5s}", "listen.http port"},
		{"unknown resource", "envoy/envoy.yaml", "resource: http://localhost:8000/mcp", "resource: http://localhost:8000/mcp2", "names no resource"},
		{"resource of another route", "envoy/envoy.yaml", "resource: http://localhost:8000/mcp", "resource: public-mcp", "has path /public/mcp"},
		{"missing cluster", "envoy/envoy.yaml", "route: {cluster: mcp_public, timeout: 0s}", "route: {cluster: mcp_pub, timeout: 0s}", `"mcp_pub" is referenced`},
		{"tracer cluster missing", "envoy/envoy.yaml", "envoy_grpc: {cluster_name: jaeger_otlp}", "envoy_grpc: {cluster_name: otlp}", `"otlp" is referenced`},
		{"authz gRPC port", "envoy/envoy.yaml", "socket_address: {address: mcp-authz, port_value: 9191}", "socket_address: {address: mcp-authz, port_value: 9192}", "listen.grpc port"},
		{"authz cluster HTTP/1", "envoy/envoy.yaml", "          explicit_http_config:\n            http2_protocol_options: {}\n      # mcp-authz serves", "          explicit_http_config:\n            http_protocol_options: {}\n      # mcp-authz serves", "HTTP/2"},
		{"route strips identity", "envoy/envoy.yaml", "                      domains: [\"*\"]\n", "                      domains: [\"*\"]\n                      request_headers_to_remove: [x-mcp-subject]\n", "request_headers_to_remove"},
		{"no header_mutation", "envoy/envoy.yaml", "                          - remove: x-mcp-email\n", "", "header_mutation"},
		{"router not last", "envoy/envoy.yaml", "\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n", "\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n                  - name: late\n                    typed_config:\n                      \"@type\": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation\n", "router must be the last"},
		{"admin exposed", "envoy/envoy.yaml", "socket_address: {address: 127.0.0.1, port_value: 9901}", "socket_address: {address: 0.0.0.0, port_value: 9901}", "admin"},
		{"metrics exposed", "envoy/envoy.yaml", "route: {cluster: mcp_public, timeout: 0s}", "route: {cluster: mcp_authz_http, timeout: 0s}", "only /.well-known"},
		{"metadata shadowed", "envoy/envoy.yaml", "                        - name: protected_resource_metadata\n", "                        - name: early\n                          match: {prefix: /}\n                          direct_response: {status: 404}\n                        - name: protected_resource_metadata\n", "shadowed"},
		{"http: wrong prefix", "envoy/envoy-http.yaml", "path_prefix: /authz", "path_prefix: /check", "path_prefix"},
		{"http: identity not copied", "envoy/envoy-http.yaml", "                              - {exact: x-mcp-email, ignore_case: true}\n", "", "allowed_upstream_headers does not copy x-mcp-email"},
		{"http: trusts client x-original-uri", "envoy/envoy-http.yaml", "- {exact: x-request-id, ignore_case: true}", "- {prefix: x-, ignore_case: true}", "x-original-uri"},
		{"http: challenge not returned", "envoy/envoy-http.yaml", "                              - {exact: www-authenticate, ignore_case: true}\n", "", "www-authenticate"},
		{"http: route without resource", "envoy/envoy-http.yaml", "match: {path_separated_prefix: /public/mcp}", "match: {path_separated_prefix: /public}", "no resource url path"},
		{"http: gRPC cluster", "envoy/envoy-http.yaml", "cluster: mcp_authz_http\n                          timeout: 0.5s", "cluster: mcp_server\n                          timeout: 0.5s", "listen.http port"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := mutate(t, string(readFile(t, c.file)), c.old, c.new)
			bs, err := loadBootstrap([]byte(src))
			if err == nil {
				err = joinErrs(checkEnvoy(bs, cfg, envoyFiles[c.file]))
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want an error containing %q, got %v", c.want, err)
			}
		})
	}
}
