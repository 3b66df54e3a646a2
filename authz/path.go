package authz

import (
	"fmt"
	"strings"
)

// checkPath refuses a request path that two components could read as different paths. The resource a
// request targets is chosen from its path, and the front proxy (nginx's location match on its normalized
// $uri, Envoy's normalize_path and merge_slashes, Istio's normalization) and the MCP server each pick their
// own reading: a path such as /public/mcp/../../mcp is /public/mcp by its prefix and /mcp once normalized.
// Rather than guess which reading the next hop acts on, only paths that every RFC 3986 normalizer and every
// documented proxy leaves unchanged are decided: they start with "/", hold no dot segment, no empty segment
// ("//"), no percent-encoded octet (decoding could yield "/", "." or "\"), no "\", ";" (path parameters
// that Java servers strip), "#", control, space or non-ASCII byte. MCP endpoints are fixed ASCII paths, so
// no client of a real MCP server needs any of these. The query string is not checked: resources are never
// chosen by it.
func checkPath(path string) error {
	p, _, _ := strings.Cut(path, "?")
	if p == "" || p[0] != '/' {
		return fmt.Errorf("path %q does not start with /", shown(p))
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c <= ' ' || c >= 0x7f:
			return fmt.Errorf("path holds a control, space or non-ASCII byte at offset %d", i)
		case c == '%':
			return fmt.Errorf("path %q holds a percent-encoded octet", shown(p))
		case c == '\\' || c == ';' || c == '#':
			return fmt.Errorf("path %q holds %q", shown(p), c)
		}
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		switch seg {
		case ".", "..":
			return fmt.Errorf("path %q holds a dot segment", shown(p))
		}
	}
	if strings.Contains(p, "//") {
		return fmt.Errorf("path %q holds an empty segment (//)", shown(p))
	}
	return nil
}

// shown is a value of the request (a path, a header, a JSON-RPC name) as a refusal quotes it: printable, and
// cut to 200 bytes, for such a value can be as large as the proxy's header or body limit.
func shown(v string) string {
	if len(v) > 200 {
		v = v[:200] + "..."
	}
	return quotable(v)
}
