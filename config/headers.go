package config

import (
	"strings"

	"golang.org/x/net/http/httpguts"
)

// ReservedHeader reports whether name (lower case) is a header that no identity header, assertion header or
// policy header may be: the request's own (host, authorization, cookie, and its framing: content-*,
// transfer-encoding, te, trailer), the hop-by-hop ones proxies act on (connection, keep-alive, upgrade,
// proxy-*), pseudo-headers, and Envoy's own (x-envoy-*; a forward-auth answer uses one to name the headers
// to remove).
func ReservedHeader(name string) bool {
	switch name {
	case "authorization", "host", "cookie", "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade":
		return true
	}
	for _, p := range []string{"content-", "proxy-", "x-envoy-", ":"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// checkSetHeader fails field unless name is a lower-case HTTP field name that ReservedHeader allows: a
// header mcp-authz sets on the request it lets through.
func checkSetHeader(field, name string, fail func(field, format string, a ...any)) {
	switch {
	case !httpguts.ValidHeaderFieldName(name) || strings.ToLower(name) != name:
		fail(field, "%q is not a lower-case HTTP header name", name)
	case ReservedHeader(name):
		fail(field, "%q is a header the request needs for itself, or that a proxy acts on", name)
	}
}
