package authz

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/mcp-authz/mcp-authz/config"
	"github.com/open-policy-agent/opa/v1/ast"
)

// WellKnownPath is the RFC 9728 well-known path prefix of Protected Resource Metadata.
const WellKnownPath = "/.well-known/oauth-protected-resource"

// resource is one configured protected resource, with what is derived from it once.
type resource struct {
	cfg            config.Resource
	host           string   // lower-case host[:port], default port dropped
	path           string   // URL path without a trailing "/"
	metadataPath   string   // the path-inserted well-known path
	metadataURL    string   // the absolute PRM URL, sent in resource_metadata
	metadata       []byte   // the PRM document
	audiences      []string // the `aud` values that name the resource: configured, else its URL
	challengeScope string   // the scope parameter of a 401 without credentials
	origins        map[string]bool
	inputTerm      *ast.Term // the `resource` member of the policy input; shared, never modified
}

func newResource(c config.Resource) (*resource, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("resource %q: %w", c.URL, err)
	}
	r := &resource{cfg: c, host: config.CanonicalHost(u.Host, u.Scheme), path: strings.TrimSuffix(u.EscapedPath(), "/")}
	r.metadataPath = WellKnownPath + r.path
	r.metadataURL = u.Scheme + "://" + u.Host + r.metadataPath
	r.inputTerm = resourceTerm(r)
	r.challengeScope = strings.Join(c.ChallengeScopes, " ")
	if len(c.ChallengeScopes) == 0 {
		r.challengeScope = strings.Join(c.ScopesSupported, " ")
	}
	auds := c.Audiences
	if len(auds) == 0 {
		auds = []string{c.URL}
	}
	for _, a := range auds { // each as configured and in its canonical form (checkAudience)
		r.audiences = append(r.audiences, a)
		if ca := config.CanonicalURI(a); ca != a {
			r.audiences = append(r.audiences, ca)
		}
	}
	doc := struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
		ScopesSupported      []string `json:"scopes_supported,omitempty"`
		BearerMethods        []string `json:"bearer_methods_supported"`
		ResourceName         string   `json:"resource_name,omitempty"`
		Documentation        string   `json:"resource_documentation,omitempty"`
	}{c.URL, c.AuthorizationServers, c.ScopesSupported, []string{"header"}, c.Name, c.Documentation}
	if r.metadata, err = json.Marshal(doc); err != nil {
		return nil, fmt.Errorf("resource %q: metadata: %w", c.URL, err)
	}
	if len(c.AllowedOrigins) > 0 {
		r.origins = map[string]bool{}
		for _, o := range c.AllowedOrigins {
			r.origins[strings.ToLower(o)] = true
		}
	}
	return r, nil
}

// covers reports whether a request path falls under the resource's path.
func (r *resource) covers(path string) bool {
	if p, _, ok := strings.Cut(path, "?"); ok {
		path = p
	}
	return r.path == "" || path == r.path || strings.HasPrefix(path, r.path+"/")
}

// resources is the set of protected resources with the lookups a request needs.
type resources struct {
	list   []*resource
	byName map[string]*resource
}

func newResources(cfgs []config.Resource) (*resources, error) {
	rs := &resources{byName: map[string]*resource{}}
	for _, c := range cfgs {
		r, err := newResource(c)
		if err != nil {
			return nil, err
		}
		rs.list = append(rs.list, r)
		rs.byName[c.URL] = r
		if c.Name != "" {
			rs.byName[c.Name] = r
		}
	}
	return rs, nil
}

// forRequest finds the resource a request targets: the one the route names, else the one whose host and
// longest path prefix match. The host is compared with its port first, then without it (nginx's $host
// carries no port).
func (rs *resources) forRequest(req *Request) (*resource, error) {
	if req.Resource != "" {
		if r, ok := rs.byName[req.Resource]; ok {
			return r, nil
		}
		return nil, fmt.Errorf("route names unknown resource %q", req.Resource)
	}
	host := config.CanonicalHost(req.Host, req.Scheme)
	if best := rs.longestMatch(req.Path, func(r *resource) bool { return r.host == host }); best != nil {
		return best, nil
	}
	name := hostname(host)
	if best := rs.longestMatch(req.Path, func(r *resource) bool { return hostname(r.host) == name }); best != nil {
		return best, nil
	}
	return nil, fmt.Errorf("no configured resource matches host %q and path %q", shown(req.Host), shown(pathOnly(req.Path)))
}

func (rs *resources) longestMatch(path string, hostMatches func(*resource) bool) *resource {
	var best *resource
	for _, r := range rs.list {
		if hostMatches(r) && r.covers(path) && (best == nil || len(r.path) > len(best.path)) {
			best = r
		}
	}
	return best
}

// hostname drops the port of host[:port].
func hostname(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

func pathOnly(p string) string {
	p, _, _ = strings.Cut(p, "?")
	return p
}

// Metadata returns the RFC 9728 Protected Resource Metadata document served at path (a well-known path,
// path-inserted or the root one). When several resources share the path, host picks among them. The root
// path serves the resource whose URL has no path, else the first configured resource.
func (a *Authorizer) Metadata(host, path string) ([]byte, bool) {
	path = strings.TrimSuffix(path, "/")
	var found []*resource
	for _, r := range a.resources.list {
		if r.metadataPath == path {
			found = append(found, r)
		}
	}
	if len(found) == 0 && path == WellKnownPath {
		found = a.resources.list[:1]
	}
	switch len(found) {
	case 0:
		return nil, false
	case 1:
		return found[0].metadata, true
	}
	h := strings.ToLower(host)
	for _, r := range found {
		if r.host == h || config.CanonicalHost(h, "https") == r.host || config.CanonicalHost(h, "http") == r.host {
			return r.metadata, true
		}
	}
	return found[0].metadata, true
}
