package authz

import (
	"slices"

	"github.com/mcp-authz/mcp-authz/config"
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
		if slices.Contains(accepted, a) || slices.Contains(accepted, config.CanonicalURI(a)) {
			return nil
		}
	}
	return errInvalidToken("token audience does not include this resource")
}
