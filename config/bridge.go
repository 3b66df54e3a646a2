package config

import (
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// Bridge is what every bridged issuer shares: the OAuth bridge is a standard OAuth 2.1 authorization server in
// front of an identity provider that offers MCP clients neither Client ID Metadata Documents nor dynamic
// registration. Absent: the bridge is off.
type Bridge struct {
	// SealingKeys are files of 32 random bytes (raw, or base64): the first seals the bridge's state, codes and
	// client ids, all of them open what they sealed (key rotation). Every replica must have the same files.
	SealingKeys []string `json:"sealing_keys"`
	// RedirectURIs is the allow-list of MCP clients' redirect URIs other than loopback ones, compared exactly.
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	// AllowLoopbackRedirects accepts http://127.0.0.1, http://[::1] and http://localhost redirect URIs on any
	// port and path (RFC 8252 native clients). Default true; read it with LoopbackRedirects.
	AllowLoopbackRedirects *bool `json:"allow_loopback_redirects,omitempty"`
	// ConsentTTL is how long a browser's approval of a client is remembered; 0s asks every time. Default
	// 720h (when absent); read it with Consent.
	ConsentTTL *Duration `json:"consent_ttl,omitempty"`
	// CIMD bounds the fetching of Client ID Metadata Documents.
	CIMD CIMD `json:"cimd"`
}

// Consent is how long an approval is remembered (ConsentTTL; 0: ask every time).
func (b *Bridge) Consent() time.Duration {
	if b.ConsentTTL == nil {
		return 0
	}
	return time.Duration(*b.ConsentTTL)
}

// LoopbackRedirects reports whether loopback redirect URIs are allowed (default true).
func (b Bridge) LoopbackRedirects() bool {
	return b.AllowLoopbackRedirects == nil || *b.AllowLoopbackRedirects
}

// CIMD bounds the fetching of Client ID Metadata Documents: a client_id that is an https URL names a document
// the bridge fetches, so that URL is untrusted input aimed at the bridge's network.
type CIMD struct {
	// AllowPrivateNetworks permits documents on private, loopback and link-local addresses. Default false.
	AllowPrivateNetworks bool `json:"allow_private_networks,omitempty"`
	// AllowHTTPLoopback permits http:// client ids whose host is loopback (tests, local development).
	// Default false: https only.
	AllowHTTPLoopback bool `json:"allow_http_loopback,omitempty"`
	// MaxBytes bounds a document. Default 16384; at most 1 MiB.
	MaxBytes int `json:"max_bytes,omitempty"`
	// Timeout bounds one fetch. Default 5s, at most 5s: the authorization request waiting for it must be
	// answered within the HTTP listener's 10 s write timeout.
	Timeout Duration `json:"timeout,omitempty"`
}

// IssuerBridge makes an issuer bridged: MCP clients register with the bridge, which sends their users to the
// issuer with one client the operator registered there.
type IssuerBridge struct {
	// ID names the bridge: its issuer identifier is {public_url}/oauth/{id}. [a-z0-9-]{1,32}; default
	// "default"; unique.
	ID string `json:"id,omitempty"`
	// ClientID is the client registered at the issuer, whose redirect URI is {public_url}/oauth/{id}/callback.
	ClientID string `json:"client_id"`
	// ClientSecretFile, when set, holds the client's secret (a confidential client at the issuer).
	ClientSecretFile string `json:"client_secret_file,omitempty"`
	// Resource says what becomes of the RFC 8707 resource parameter on the way to the issuer: pass (default),
	// drop (Entra ID v2, Cognito refuse it), or audience (sent as audience=, Auth0 style).
	Resource string `json:"resource,omitempty"`
	// Audience is the audience= value when Resource is audience. Default: the resource URL.
	Audience string `json:"audience,omitempty"`
	// ScopePrefix is put before each MCP scope on the way to the issuer and taken off the scope it grants
	// (Entra ID: "api://<app id>/"). OpenID Connect scopes (openid, profile, email, offline_access, address,
	// phone) are sent as they are.
	ScopePrefix string `json:"scope_prefix,omitempty"`
	// ExtraScopes are added to every authorization request sent to the issuer.
	ExtraScopes []string `json:"extra_scopes,omitempty"`
	// AuthorizeParams are extra static parameters of the authorization request (prompt, login_hint, ...);
	// they cannot replace the parameters the bridge sets.
	AuthorizeParams map[string]string `json:"authorize_params,omitempty"`
}

// BridgePath is the path, under public_url, of the bridge whose id is id: its issuer identifier is public_url
// followed by it.
func BridgePath(id string) string { return "/oauth/" + id }

// BridgeIssuer is the issuer identifier of the bridge of is under publicURL; "" when is is not bridged.
func BridgeIssuer(publicURL string, is Issuer) string {
	if is.Bridge == nil {
		return ""
	}
	return strings.TrimSuffix(publicURL, "/") + BridgePath(is.Bridge.ID)
}

// Bridge resource modes.
const (
	BridgeResourcePass     = "pass"
	BridgeResourceDrop     = "drop"
	BridgeResourceAudience = "audience"
)

var bridgeID = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// reservedAuthorizeParams are set by the bridge on the authorization request it sends to the issuer.
var reservedAuthorizeParams = map[string]bool{
	"client_id": true, "redirect_uri": true, "state": true, "response_type": true, "code_challenge": true,
	"code_challenge_method": true, "scope": true, "resource": true, "audience": true, "response_mode": true,
	"request": true, "request_uri": true,
}

func (c *Config) applyBridgeDefaults() {
	if b := c.Bridge; b != nil {
		if b.ConsentTTL == nil {
			d := Duration(720 * time.Hour)
			b.ConsentTTL = &d
		}
		if b.CIMD.MaxBytes == 0 {
			b.CIMD.MaxBytes = 16384
		}
		if b.CIMD.Timeout == 0 {
			b.CIMD.Timeout = Duration(5 * time.Second)
		}
	}
	for i := range c.Issuers {
		if b := c.Issuers[i].Bridge; b != nil {
			if b.ID == "" {
				b.ID = "default"
			}
			if b.Resource == "" {
				b.Resource = BridgeResourcePass
			}
		}
	}
}

// validateBridge checks the bridge blocks: the top-level one and each issuer's.
func (c *Config) validateBridge(fail func(field, format string, a ...any)) {
	bridged := 0
	ids := map[string]int{}
	for i, is := range c.Issuers {
		b := is.Bridge
		if b == nil {
			continue
		}
		bridged++
		p := fmt.Sprintf("issuers[%d].bridge", i)
		if !bridgeID.MatchString(b.ID) {
			fail(p+".id", "%q must match [a-z0-9-]{1,32}", b.ID)
		} else if k, dup := ids[b.ID]; dup {
			fail(p+".id", "%q is also the id of issuers[%d].bridge", b.ID, k)
		}
		ids[b.ID] = i
		if b.ClientID == "" {
			fail(p+".client_id", "required: the client registered at the issuer for the bridge")
		}
		if b.ClientSecretFile != "" {
			if _, err := os.Stat(b.ClientSecretFile); err != nil {
				fail(p+".client_secret_file", "%v", err)
			}
		}
		switch b.Resource {
		case BridgeResourcePass, BridgeResourceDrop:
			if b.Audience != "" {
				fail(p+".audience", "only used with resource: audience")
			}
		case BridgeResourceAudience:
		default:
			fail(p+".resource", "must be pass, drop or audience, not %q", b.Resource)
		}
		if strings.ContainsAny(b.ScopePrefix, " \t\r\n\"\\") {
			fail(p+".scope_prefix", "%q must not contain spaces, quotes or backslashes", b.ScopePrefix)
		}
		for j, s := range b.ExtraScopes {
			if !ValidScopeToken(s) {
				fail(fmt.Sprintf("%s.extra_scopes[%d]", p, j), "%q is not a scope token (RFC 6749 section 3.3)", s)
			}
		}
		for k := range b.AuthorizeParams {
			if reservedAuthorizeParams[k] {
				fail(p+".authorize_params."+k, "set by the bridge itself")
			}
		}
	}
	b := c.Bridge
	if b == nil {
		if bridged > 0 {
			fail("bridge", "required when an issuer has a bridge block (sealing_keys at least)")
		}
		return
	}
	if bridged == 0 {
		fail("bridge", "no issuer has a bridge block: set issuers[].bridge, or remove bridge")
	}
	if len(b.SealingKeys) == 0 {
		fail("bridge.sealing_keys", "at least one key file is required (32 random bytes, raw or base64)")
	}
	for i, f := range b.SealingKeys {
		if _, err := os.Stat(f); err != nil {
			fail(fmt.Sprintf("bridge.sealing_keys[%d]", i), "%v", err)
		}
	}
	for i, r := range b.RedirectURIs {
		if err := checkRedirectURI(r); err != nil {
			fail(fmt.Sprintf("bridge.redirect_uris[%d]", i), "%v", err)
		}
	}
	if ttl := b.Consent(); ttl < 0 || ttl > 8760*time.Hour {
		fail("bridge.consent_ttl", "must be between 0s (ask every time) and 8760h")
	}
	if b.CIMD.MaxBytes < 256 || b.CIMD.MaxBytes > 1<<20 {
		fail("bridge.cimd.max_bytes", "must be between 256 and 1048576, not %d", b.CIMD.MaxBytes)
	}
	if b.CIMD.Timeout < Duration(100*time.Millisecond) || b.CIMD.Timeout > Duration(5*time.Second) {
		fail("bridge.cimd.timeout", "must be between 100ms and 5s (the sign-in request waits for it)")
	}
	if u, err := url.Parse(c.PublicURL); err == nil {
		if u.Scheme != "https" && !LoopbackHost(u.Hostname()) {
			fail("public_url", "%q: the bridge needs https (its cookies and codes cross the network) unless the host is loopback", c.PublicURL)
		}
		// The bridge's paths are public_url's path followed by /oauth/{id}; under /authz they would reach the
		// HTTP authorization endpoint (forwardauth.Prefix) instead.
		if p := strings.TrimSuffix(u.Path, "/"); p == "/authz" || strings.HasPrefix(p, "/authz/") {
			fail("public_url", "%q: its path is under /authz, the HTTP authorization endpoint's", c.PublicURL)
		}
	}
}

// checkRedirectURI accepts an absolute https URL without fragment, or an http one to a loopback host.
func checkRedirectURI(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	switch {
	case !u.IsAbs() || u.Opaque != "" || u.Fragment != "" || strings.Contains(s, "#"):
		return fmt.Errorf("%q must be an absolute URL without fragment", s)
	case (u.Scheme == "https" || u.Scheme == "http") && u.Host == "":
		return fmt.Errorf("%q must be an absolute URL without fragment", s)
	case u.User != nil:
		return fmt.Errorf("%q must not have user information", s)
	case u.Scheme == "https":
	case u.Scheme == "http" && LoopbackHost(u.Hostname()):
	case u.Scheme != "http" && !unsafeSchemes[u.Scheme]: // a native app's private-use scheme (RFC 8252 section 7.1)
	default:
		return fmt.Errorf("%q must be https, http to a loopback host, or an app's private-use scheme", s)
	}
	return nil
}

// unsafeSchemes are never redirect targets: they run code or read local data in the browser.
var unsafeSchemes = map[string]bool{"javascript": true, "data": true, "file": true, "vbscript": true, "about": true, "blob": true, "filesystem": true, "ws": true, "wss": true, "ftp": true}

// CheckRedirectURI reports why s cannot be a redirect URI of an MCP client: it must be absolute, without
// fragment or user information, and https, http to a loopback host, or an app's private-use scheme.
func CheckRedirectURI(s string) error { return checkRedirectURI(s) }

// ValidScopeToken reports whether s is an RFC 6749 scope-token: one or more of %x21 / %x23-5B / %x5D-7E.
func ValidScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch < 0x21 || ch == 0x22 || ch == 0x5c || ch > 0x7e {
			return false
		}
	}
	return true
}
