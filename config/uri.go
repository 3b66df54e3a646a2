package config

import (
	"net"
	"strings"
)

// CanonicalURI is an http(s) URI with its scheme and host lower-cased and the scheme's default port dropped
// (RFC 3986 sections 6.2.2.1 and 6.2.3: both are redundant spellings; the MCP specification asks servers to
// accept an uppercase scheme and host in the resource a token names). The path, and so a trailing "/",
// stays exact: https://h/mcp and https://h/mcp/ are different resources. Anything else is returned as it is.
func CanonicalURI(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || !strings.EqualFold(scheme, "https") && !strings.EqualFold(scheme, "http") {
		return s
	}
	host, path, _ := strings.Cut(rest, "/")
	if strings.ContainsAny(host, "@?#") {
		return s // userinfo, or no path: not a resource URI this compares
	}
	scheme = strings.ToLower(scheme)
	canon := scheme + "://" + CanonicalHost(host, scheme) // lower-cased, the scheme's default port dropped
	if strings.Contains(rest, "/") {
		canon += "/" + path
	}
	return canon
}

// CanonicalHost lower-cases host and drops the scheme's default port.
func CanonicalHost(host, scheme string) string {
	host = strings.ToLower(host)
	if h, port, err := net.SplitHostPort(host); err == nil && (scheme == "https" && port == "443" || scheme == "http" && port == "80") {
		return h
	}
	return host
}
