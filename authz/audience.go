package authz

import (
	"slices"
	"strings"
)

// checkAudience accepts a token whose `aud` holds one of the resource's audiences (or, for an issuer that
// configures its own, one of those), or that has no `aud` at all and a client listed in
// clients_without_audience.
func (t *trustedIssuer) checkAudience(aud []string, clientID string, resource []string) *Error {
	if len(aud) == 0 {
		if clientID != "" && t.noAudience[clientID] {
			return nil
		}
		return errInvalidToken("token has no audience")
	}
	accepted := t.cfg.Audiences
	if len(accepted) == 0 {
		accepted = resource
	}
	for _, a := range aud {
		if slices.Contains(accepted, a) || slices.Contains(accepted, canonicalURI(a)) {
			return nil
		}
	}
	return errInvalidToken("token audience does not include this resource")
}

// canonicalURI is an http(s) URI with its scheme and host lower-cased and the scheme's default port dropped
// (RFC 3986 sections 6.2.2.1 and 6.2.3: both are redundant spellings; the MCP specification asks servers to
// accept an uppercase scheme and host in the resource a token names). The path, and so a trailing "/",
// stays exact: https://h/mcp and https://h/mcp/ are different resources. Anything else is returned as it is.
func canonicalURI(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || !strings.EqualFold(scheme, "https") && !strings.EqualFold(scheme, "http") {
		return s
	}
	host, path, _ := strings.Cut(rest, "/")
	if strings.ContainsAny(host, "@?#") {
		return s // userinfo, or no path: not a resource URI this compares
	}
	scheme = strings.ToLower(scheme)
	canon := scheme + "://" + canonicalHost(host, scheme) // lower-cased, the scheme's default port dropped
	if strings.Contains(rest, "/") {
		canon += "/" + path
	}
	return canon
}
