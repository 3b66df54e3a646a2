package bridge

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/mcp-authz/mcp-authz/config"
)

// redirectPolicy is the operator's allow-list of MCP clients' redirect URIs: a client can register, and use,
// only redirect URIs that are on it, so the bridge never sends a user's code anywhere the operator did not
// accept.
type redirectPolicy struct {
	exact    map[string]bool
	loopback bool
}

func newRedirectPolicy(uris []string, loopback bool) redirectPolicy {
	p := redirectPolicy{exact: map[string]bool{}, loopback: loopback}
	for _, u := range uris {
		p.exact[u] = true
	}
	return p
}

var errRedirectNotAllowed = errors.New("redirect URI is not on the bridge's allow-list")

// allows reports why the redirect URI raw may not be used, or nil: it must be a well-formed redirect URI and
// either listed exactly or, when loopback redirects are on, an http loopback URI (any port, any path).
func (p redirectPolicy) allows(raw string) error {
	if err := config.CheckRedirectURI(raw); err != nil {
		return err
	}
	if p.exact[raw] {
		return nil
	}
	if u, _ := url.Parse(raw); p.loopback && isLoopbackRedirect(u) {
		return nil
	}
	return fmt.Errorf("%w: %s", errRedirectNotAllowed, shorten(raw))
}

// isLoopbackRedirect reports whether u is an http URI to 127.0.0.1, [::1] or localhost: a native client's
// redirect on its own machine (RFC 8252 section 7.3).
func isLoopbackRedirect(u *url.URL) bool {
	return u.Scheme == "http" && u.User == nil && config.LoopbackHost(u.Hostname())
}

// registeredMatch reports whether presented is one of the client's registered redirect URIs: exactly, or, for
// a loopback URI, with any port (RFC 8252 section 7.3: a native client picks a free port at run time).
func registeredMatch(registered []string, presented string) bool {
	p, err := url.Parse(presented)
	if err != nil {
		return false
	}
	for _, r := range registered {
		if r == presented {
			return true
		}
		u, err := url.Parse(r)
		if err != nil || !isLoopbackRedirect(u) || !isLoopbackRedirect(p) {
			continue
		}
		if strings.EqualFold(u.Hostname(), p.Hostname()) && u.EscapedPath() == p.EscapedPath() && u.RawQuery == p.RawQuery {
			return true
		}
	}
	return false
}

// redirectHost is the host of a redirect URI, for the consent page and the log.
func redirectHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	if u.Host == "" {
		return u.Scheme + ":"
	}
	return u.Host
}
