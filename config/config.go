// Package config holds mcp-authz's configuration: one typed document, loaded from YAML and validated once at
// start-up, then passed down to the packages that need it.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Config is the whole configuration document.
type Config struct {
	// Listen holds the listener addresses.
	Listen Listen `json:"listen"`
	// PublicURL is the HTTP listener's URL as MCP clients and servers reach it (through the front proxy or a
	// load balancer): the issuer of what mcp-authz signs and the base of the endpoints it serves to them.
	// Default http://<listen.http>; a trailing slash is dropped.
	PublicURL string `json:"public_url,omitempty"`
	// Server bounds the work the listeners take on and how the service stops.
	Server Server `json:"server"`
	// Resources are the MCP servers behind the proxy; at least one.
	Resources []Resource `json:"resources"`
	// Issuers are the trusted identity providers; at least one.
	Issuers []Issuer `json:"issuers"`
	// Policy says where the Rego policies and their data live.
	Policy Policy `json:"policy"`
	// IdentityHeaders names the headers that carry the caller's identity to the MCP server.
	IdentityHeaders IdentityHeaders `json:"identity_headers"`
	// ForwardAuth configures the HTTP authorization endpoint (/authz) that nginx, Traefik and Caddy ask.
	ForwardAuth ForwardAuth `json:"forward_auth"`
	// DynamicMetadata says what an allow puts in Envoy's dynamic metadata besides the identity.
	DynamicMetadata DynamicMetadata `json:"dynamic_metadata"`
	// Leeway is the clock skew tolerated on exp, nbf and iat. Default 60s.
	Leeway Duration `json:"leeway"`
	// MaxBodyBytes bounds the request body read for MCP rules. Default 1 MiB.
	MaxBodyBytes int `json:"max_body_bytes"`
	// TokenExchangeCache bounds the cache of tokens exchanged for resources[].token_exchange.
	TokenExchangeCache TokenExchangeCache `json:"token_exchange_cache"`
	// Log configures the structured logs.
	Log Log `json:"log"`
	// Telemetry configures traces and metrics.
	Telemetry Telemetry `json:"telemetry"`
	// TokenCache sizes the caches of verified and refused tokens.
	TokenCache TokenCache `json:"token_cache"`
	// Bridge, when set, turns on the OAuth bridge for the issuers that have a bridge block (docs/bridge.md).
	Bridge *Bridge `json:"bridge,omitempty"`
	// IdentityAssertion, when set, lets resources with identity_assertion: true receive a short-lived JWT
	// signed by mcp-authz that says who is calling (see IdentityAssertion).
	IdentityAssertion *IdentityAssertion `json:"identity_assertion,omitempty"`
}

// IdentityAssertion configures the signed identity assertion: on an allow to a resource that asks for it,
// a short-lived JWT signed by mcp-authz in a header, which the MCP server verifies with the JWKS served at
// <public_url>/.well-known/jwks.json.
type IdentityAssertion struct {
	// Issuer is the assertion's `iss`. Default public_url.
	Issuer string `json:"issuer,omitempty"`
	// Header names the request header that carries the assertion upstream: a lower-case HTTP token, not an
	// identity header. Default x-mcp-identity.
	Header string `json:"header,omitempty"`
	// TTL is the assertion's longest lifetime (never past the access token's exp). Default 60s, 5s to 10m.
	TTL Duration `json:"ttl,omitempty"`
	// SigningKeys are private key files (PEM PKCS#8 or SEC 1 EC P-256, PEM PKCS#8 Ed25519, or JWK), or
	// directories of them (a mounted Kubernetes Secret): re-read every few seconds. The key of the file whose
	// name sorts last signs; every other key is published in the JWKS. At least one.
	SigningKeys []string `json:"signing_keys"`
	// RotationGrace is how long a key whose file was removed stays published in the JWKS, so that
	// assertions it signed still verify. Default 10m; at least ttl, at most 24h.
	RotationGrace Duration `json:"rotation_grace,omitempty"`
}

// MaxTokenCacheEntries bounds token_cache.max_entries: an entry holds about 2.8 KiB of heap for a 0.9 KiB
// token used once, 4.5 KiB for one used again (with what is memoized for it; authz.DefaultTokenCacheSize),
// so the largest cache is about 0.7 to 1.2 GiB.
const MaxTokenCacheEntries = 1 << 18

// TokenCache sizes the caches that spare a token's next requests the parsing and the signature check.
type TokenCache struct {
	// MaxEntries is how many verified tokens are remembered (about 2.8 KiB of heap each for a 0.9 KiB token
	// used once, 4.5 KiB for one used again: 4096 take 11 to 18 MiB); the cache of refused tokens (expired, bad
	// signature) holds as many, up to 1024. Default 4096 (0); a negative value turns both caches off, so that
	// every request verifies its token afresh. At most MaxTokenCacheEntries.
	MaxEntries int `json:"max_entries"`
}

// Listen holds the listener addresses.
type Listen struct {
	// GRPC is the address of the Envoy ext_authz gRPC listener. Default 127.0.0.1:9191.
	GRPC string `json:"grpc"`
	// HTTP is the address of the metadata, health and HTTP-authorization listener. Default 127.0.0.1:8080.
	HTTP string `json:"http"`
}

// Server bounds the work the listeners take on and how the service stops.
type Server struct {
	// MaxConcurrentChecks bounds the Checks decided at once, over gRPC and /authz together. A Check over the
	// bound is refused at once (gRPC UNAVAILABLE, which Envoy answers with status_on_error and may retry on
	// another replica; HTTP 503) instead of waiting in an unbounded queue. Default 256.
	MaxConcurrentChecks int `json:"max_concurrent_checks,omitempty"`
	// MaxConnectionAge closes a gRPC connection gracefully after this long, so that a Kubernetes Service
	// spreads Envoy's long-lived connections over new replicas. Default 10m; 0s never.
	MaxConnectionAge *Duration `json:"max_connection_age,omitempty"`
	// ShutdownDelay is how long, after SIGTERM, the service keeps serving while it reports not-ready (gRPC
	// health NOT_SERVING, /readyz 503), so that load balancers stop sending before the listeners close.
	// Default 0s; set it to a few seconds in Kubernetes.
	ShutdownDelay Duration `json:"shutdown_delay,omitempty"`
	// ShutdownTimeout bounds how long in-flight requests may take to finish once the listeners close.
	// Default 10s.
	ShutdownTimeout Duration `json:"shutdown_timeout,omitempty"`
}

// ConnectionAge is MaxConnectionAge, or its default of 10 minutes when unset; 0 means never.
func (s Server) ConnectionAge() time.Duration {
	if s.MaxConnectionAge == nil {
		return 10 * time.Minute
	}
	return time.Duration(*s.MaxConnectionAge)
}

// Resource is one protected MCP server.
type Resource struct {
	// URL is the canonical resource URI (RFC 8707): the PRM `resource` and the default audience.
	URL string `json:"url"`
	// Name is the PRM `resource_name`.
	Name string `json:"name,omitempty"`
	// ScopesSupported is the PRM `scopes_supported`.
	ScopesSupported []string `json:"scopes_supported,omitempty"`
	// AuthorizationServers is the PRM `authorization_servers`. Default: every issuer's `iss`, or for a bridged
	// issuer its bridge's issuer identifier ({public_url}/oauth/{id}).
	AuthorizationServers []string `json:"authorization_servers,omitempty"`
	// Documentation is the PRM `resource_documentation`.
	Documentation string `json:"resource_documentation,omitempty"`
	// KeepAuthorization, when true, forwards the client's Authorization header upstream (token passthrough,
	// which the MCP specification forbids). Default false: the header is removed.
	KeepAuthorization bool `json:"keep_authorization,omitempty"`
	// TokenExchange, when set, exchanges the client's token at the IdP (RFC 8693) for a token for the APIs
	// this resource's server calls as the user, and sends that one upstream in Authorization. Default off.
	TokenExchange *TokenExchange `json:"token_exchange,omitempty"`
	// AllowedOrigins, when set, lists the Origin values accepted; a request with another Origin gets 403.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// TrustMCPHeaders lets a request without a body be decided on its MCP 2026-07-28 headers (Mcp-Method,
	// Mcp-Name) as if they were its JSON-RPC message, so that method and tool rules apply behind a proxy
	// that sends no body (nginx auth_request, Caddy, Istio without includeRequestBodyInCheck). Set it only
	// when the MCP server implements 2026-07-28 and refuses a request whose headers disagree with its body:
	// mcp-authz then decides on what the server will act on. Only requests whose MCP-Protocol-Version is
	// 2026-07-28 or later are read this way. Default false: without a body there is no `mcp` input.
	TrustMCPHeaders bool `json:"trust_mcp_headers,omitempty"`
	// ChallengeScopes is the scope parameter of the 401 sent to a request without a token: the scopes a
	// client should ask for to use the resource at all. Default ScopesSupported.
	ChallengeScopes []string `json:"challenge_scopes,omitempty"`
	// Audiences are the `aud` values that name this resource (for example Okta's api://default or Entra's
	// api://<app id>). Default: URL. No two resources may share one: a token for one would be valid on
	// the other.
	Audiences []string `json:"audiences,omitempty"`
	// IdentityAssertion, when true, adds the signed identity assertion (the top-level identity_assertion
	// block, required then) to every allowed request to this resource. Default false.
	IdentityAssertion bool `json:"identity_assertion,omitempty"`
}

// Issuer is one trusted identity provider.
type Issuer struct {
	// DiscoveryURL is the OpenID Connect discovery document's URL.
	DiscoveryURL string `json:"discovery_url"`
	// Issuer is the exact `iss`. Default: DiscoveryURL without `/.well-known/openid-configuration`.
	Issuer string `json:"issuer,omitempty"`
	// Audiences are the accepted `aud` values for this issuer's tokens. Allowed only when a single resource
	// is configured (with several, an issuer-wide audience would make a token for one resource valid on
	// all of them: use resources[].audiences). Default: the audiences of the resource a request targets.
	Audiences []string `json:"audiences,omitempty"`
	// ClientsWithoutAudience lists client ids whose tokens carry no `aud` at all (Amazon Cognito access tokens):
	// such a token is accepted when its client id is listed. A token that has an `aud` must still match.
	ClientsWithoutAudience []string `json:"clients_without_audience,omitempty"`
	// RequiredType, when set, is the JWT `typ` header every token must carry (RFC 9068 `at+jwt`).
	RequiredType string `json:"required_type,omitempty"`
	// Algorithms is the signature algorithm allow-list. Default: RS256/384/512, PS256/384/512, ES256/384/512, EdDSA.
	Algorithms []string `json:"algorithms,omitempty"`
	// RefreshInterval is how often the key set is refetched in the background. Default 5m.
	RefreshInterval Duration `json:"refresh_interval,omitempty"`
	// MinRefreshInterval bounds refetches triggered by an unknown `kid`. Default 10s.
	MinRefreshInterval Duration `json:"min_refresh_interval,omitempty"`
	// AllowInsecureHTTP permits a discovery_url, and the endpoints it names (jwks_uri, token and
	// authorization endpoints), in plain http to a host that is not loopback, or in plain http under an https
	// discovery_url: anyone on the network path could then replace the signing keys or read the tokens.
	// Default false: such a discovery_url is a start-up error, and such an endpoint is refused
	// (CheckEndpoint).
	AllowInsecureHTTP bool `json:"allow_insecure_http,omitempty"`
	// Bridge, when set, puts the OAuth bridge in front of this issuer (docs/bridge.md).
	Bridge *IssuerBridge `json:"bridge,omitempty"`
}

// Policy says where the Rego policies and their data live: local paths (watched and reloaded on change) or
// an OPA bundle server (polled), exactly one of the two.
type Policy struct {
	// Paths are files or folders of Rego modules and JSON/YAML data files.
	Paths []string `json:"paths,omitempty"`
	// Query is the decision document's path. Default data.mcp.authz.decision.
	Query string `json:"query,omitempty"`
	// Bundle, when set, loads the policies from an OPA bundle server instead of Paths.
	Bundle *Bundle `json:"bundle,omitempty"`
}

// Bundle is an OPA bundle served over HTTP(S), polled the way OPA's bundle plugin does.
type Bundle struct {
	// URL is the bundle service's base URL.
	URL string `json:"url"`
	// Resource is the bundle's path under URL. Default bundles/mcp-authz.tar.gz.
	Resource string `json:"resource,omitempty"`
	// Polling bounds the delay between two downloads.
	Polling BundlePolling `json:"polling,omitempty"`
	// Signing, when set, requires every bundle to be signed by this key; others are refused.
	Signing *BundleSigning `json:"signing,omitempty"`
}

// BundlePolling bounds the jittered delay between two bundle downloads (whole seconds).
type BundlePolling struct {
	// MinDelay is the shortest delay. Default 60s.
	MinDelay Duration `json:"min_delay,omitempty"`
	// MaxDelay is the longest delay. Default 120s.
	MaxDelay Duration `json:"max_delay,omitempty"`
}

// BundleSigning is the key that verifies bundle signatures (`.signatures.json`, as `opa build --signing-key`
// writes them).
type BundleSigning struct {
	// PublicKeyFile is a PEM file holding the public key.
	PublicKeyFile string `json:"public_key_file"`
	// KeyID names the key; signatures whose `kid` names another key are refused. Default "default".
	KeyID string `json:"key_id,omitempty"`
	// Algorithm is the signature algorithm: RS, PS or ES 256-512. Default RS256; HS* are refused.
	Algorithm string `json:"algorithm,omitempty"`
	// Scope, when set, must equal the signature's `scope` claim.
	Scope string `json:"scope,omitempty"`
}

// IdentityHeaders names the headers that carry the caller's identity upstream. Empty fields take defaults.
type IdentityHeaders struct {
	// Subject carries `sub`. Default x-mcp-subject.
	Subject string `json:"subject,omitempty"`
	// ClientID carries the normalized client id. Default x-mcp-client-id.
	ClientID string `json:"client_id,omitempty"`
	// Scopes carries the granted scopes, space-separated. Default x-mcp-scopes.
	Scopes string `json:"scopes,omitempty"`
	// Issuer carries `iss`. Default x-mcp-issuer.
	Issuer string `json:"issuer,omitempty"`
	// Email carries `email` when the token has one and its `email_verified` is true. Default x-mcp-email.
	Email string `json:"email,omitempty"`
}

// ForwardAuth configures the HTTP authorization endpoint in its forward-auth shape (a request to /authz
// itself describing the original request in headers the proxy sets).
type ForwardAuth struct {
	// RequestHeaders names the headers that describe the original request: "forwarded" (X-Forwarded-Method
	// and X-Forwarded-Uri, as Traefik ForwardAuth and Caddy forward_auth send them, and as the shipped nginx
	// config does) or "original" (X-Original-Method and X-Original-URI, set by nginx auth_request configs).
	// Host and scheme come from X-Forwarded-Host and X-Forwarded-Proto in both. A request carrying both
	// families with different values is refused whatever this says. Default forwarded.
	RequestHeaders string `json:"request_headers,omitempty"`
}

// DynamicMetadata says what an allow answered over gRPC puts in Envoy's dynamic metadata (namespace
// envoy.filters.http.ext_authz), besides sub, client_id, iss, scopes, resource, mcp_method and tool.
type DynamicMetadata struct {
	// Claims adds the token's whole claims set under "claims". Default false: Envoy decodes the metadata
	// of every allowed request, and a claims set is most of it (Envoy's jwt_authn filter, likewise, puts
	// the payload in metadata only when asked).
	Claims bool `json:"claims,omitempty"`
}

// Log configures the structured logs.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `json:"level,omitempty"`
	// AllowSampleRate is the fraction of allow decisions logged, between 0 and 1. Denies and errors are
	// always logged. Default 1 (every decision); read it with AllowRate.
	AllowSampleRate *float64 `json:"allow_sample_rate,omitempty"`
	// FlushInterval is how long log lines may wait to be written out in batches (one write per batch
	// instead of one per decision); 0s writes every line at once. Default 200ms, at most 10s; read it with
	// FlushEvery.
	FlushInterval *Duration `json:"flush_interval,omitempty"`
}

// DefaultLogFlushInterval is the default of log.flush_interval.
const DefaultLogFlushInterval = 200 * time.Millisecond

// FlushEvery is how long log lines may wait in the batch: FlushInterval, or DefaultLogFlushInterval when it
// is unset; 0 when every line is written at once.
func (l Log) FlushEvery() time.Duration {
	if l.FlushInterval == nil {
		return DefaultLogFlushInterval
	}
	return time.Duration(*l.FlushInterval)
}

// AllowRate is the fraction of allow decisions to log: AllowSampleRate, or 1 when it is unset.
func (l Log) AllowRate() float64 {
	if l.AllowSampleRate == nil {
		return 1
	}
	return *l.AllowSampleRate
}

// Telemetry configures traces and metrics. The trace exporter itself is configured by the standard
// OpenTelemetry environment variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL, ...):
// tracing is off unless an OTLP endpoint is set, and always off when OTEL_SDK_DISABLED=true.
type Telemetry struct {
	// ServiceName is the service.name of traces and metrics when OTEL_SERVICE_NAME is unset. Default mcp-authz.
	ServiceName string `json:"service_name,omitempty"`
	// TraceSubject records the token's subject on spans (attribute enduser.id). Default true; set false when
	// subjects are personal data that must not reach the tracing backend. Read it with SubjectTraced.
	TraceSubject *bool `json:"trace_subject,omitempty"`
	// Metrics serves Prometheus metrics at /metrics on the HTTP listener. Default true; read it with MetricsOn.
	Metrics *bool `json:"metrics,omitempty"`
}

// SubjectTraced reports whether spans may carry the token's subject (default true).
func (t Telemetry) SubjectTraced() bool { return t.TraceSubject == nil || *t.TraceSubject }

// MetricsOn reports whether /metrics is served (default true).
func (t Telemetry) MetricsOn() bool { return t.Metrics == nil || *t.Metrics }

// Duration is a time.Duration written as a Go duration string ("60s", "5m").
type Duration time.Duration

// UnmarshalJSON reads a duration string. Its errors are *json.UnmarshalTypeError, which the JSON decoder
// completes with the field's path, so that the message names the field.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &json.UnmarshalTypeError{Value: string(b) + " (a duration is a string such as \"60s\")", Type: reflect.TypeFor[Duration]()}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &json.UnmarshalTypeError{Value: fmt.Sprintf("%q (%v)", s, err), Type: reflect.TypeFor[Duration]()}
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// OIDCDiscoverySuffix ends every OpenID Connect discovery URL.
const OIDCDiscoverySuffix = "/.well-known/openid-configuration"

// DefaultAlgorithms is the asymmetric allow-list used when an issuer names none.
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Load reads, defaults and validates the configuration file at path.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	return Parse(b)
}

// Parse decodes a YAML document strictly (unknown fields are errors), applies defaults and validates it.
func Parse(b []byte) (Config, error) {
	j, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		return Config{}, fmt.Errorf("parse config: %w", err)
	}
	var c Config
	// Field names are matched exactly (encoding/json alone would accept "Listen" for "listen"); unknown and
	// duplicate fields are errors.
	strictErrs, err := kjson.UnmarshalStrict(j, &c)
	if err != nil {
		return Config{}, fmt.Errorf("parse config: %w", err)
	}
	if len(strictErrs) > 0 {
		return Config{}, fmt.Errorf("parse config: %w", errors.Join(strictErrs...))
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func (c *Config) applyDefaults() {
	if c.Listen.GRPC == "" {
		c.Listen.GRPC = "127.0.0.1:9191"
	}
	if c.Listen.HTTP == "" {
		c.Listen.HTTP = "127.0.0.1:8080"
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Listen.HTTP
	}
	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	if c.Server.MaxConcurrentChecks == 0 {
		c.Server.MaxConcurrentChecks = 256
	}
	if c.Server.ShutdownTimeout == 0 {
		c.Server.ShutdownTimeout = Duration(10 * time.Second)
	}
	if c.Leeway == 0 {
		c.Leeway = Duration(60 * time.Second)
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.TokenCache.MaxEntries == 0 {
		c.TokenCache.MaxEntries = 4096
	}
	c.applyTokenExchangeDefaults()
	if c.Policy.Query == "" {
		c.Policy.Query = "data.mcp.authz.decision"
	}
	if b := c.Policy.Bundle; b != nil {
		if b.Resource == "" {
			b.Resource = "bundles/mcp-authz.tar.gz"
		}
		if b.Polling.MinDelay == 0 {
			b.Polling.MinDelay = Duration(60 * time.Second)
		}
		if b.Polling.MaxDelay == 0 {
			b.Polling.MaxDelay = max(Duration(120*time.Second), b.Polling.MinDelay)
		}
		if s := b.Signing; s != nil {
			if s.KeyID == "" {
				s.KeyID = "default"
			}
			if s.Algorithm == "" {
				s.Algorithm = "RS256"
			}
		}
	}
	h := &c.IdentityHeaders
	for _, f := range []struct {
		v   *string
		def string
	}{{&h.Subject, "x-mcp-subject"}, {&h.ClientID, "x-mcp-client-id"}, {&h.Scopes, "x-mcp-scopes"}, {&h.Issuer, "x-mcp-issuer"}, {&h.Email, "x-mcp-email"}} {
		if *f.v == "" {
			*f.v = f.def
		}
		*f.v = strings.ToLower(*f.v)
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.ForwardAuth.RequestHeaders == "" {
		c.ForwardAuth.RequestHeaders = "forwarded"
	}
	if c.Telemetry.ServiceName == "" {
		c.Telemetry.ServiceName = "mcp-authz"
	}
	for i := range c.Issuers {
		is := &c.Issuers[i]
		if is.Issuer == "" && strings.HasSuffix(is.DiscoveryURL, OIDCDiscoverySuffix) {
			is.Issuer = strings.TrimSuffix(is.DiscoveryURL, OIDCDiscoverySuffix)
		}
		if len(is.Algorithms) == 0 {
			is.Algorithms = DefaultAlgorithms
		}
		if is.RefreshInterval == 0 {
			is.RefreshInterval = Duration(5 * time.Minute)
		}
		if is.MinRefreshInterval == 0 {
			is.MinRefreshInterval = Duration(10 * time.Second)
		}
	}
	if a := c.IdentityAssertion; a != nil {
		if a.Issuer == "" {
			a.Issuer = c.PublicURL
		}
		if a.Header == "" {
			a.Header = DefaultAssertionHeader
		}
		if a.TTL == 0 {
			a.TTL = Duration(60 * time.Second)
		}
		if a.RotationGrace == 0 {
			a.RotationGrace = Duration(10 * time.Minute)
		}
	}
	c.applyBridgeDefaults()
	for i := range c.Resources {
		r := &c.Resources[i]
		if len(r.AuthorizationServers) == 0 {
			for _, is := range c.Issuers {
				if as := BridgeIssuer(c.PublicURL, is); as != "" {
					r.AuthorizationServers = append(r.AuthorizationServers, as)
					continue
				}
				r.AuthorizationServers = append(r.AuthorizationServers, is.Issuer)
			}
		}
	}
}

var allowedAlgorithms = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true, "PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true, "EdDSA": true,
}

// Validate reports the first invalid field, named by its path in the document.
func (c *Config) Validate() error {
	var errs []error
	fail := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", field, fmt.Sprintf(format, a...)))
	}
	if err := checkURL(c.PublicURL); err != nil {
		fail("public_url", "%v", err)
	} else if u, _ := url.Parse(c.PublicURL); u.Fragment != "" || u.RawQuery != "" || u.User != nil {
		fail("public_url", "%q must not have a query, a fragment or user information", c.PublicURL)
	}
	if len(c.Resources) == 0 {
		fail("resources", "at least one resource is required")
	}
	seen := map[string]bool{}
	for i, r := range c.Resources {
		f := fmt.Sprintf("resources[%d].url", i)
		if err := checkURL(r.URL); err != nil {
			fail(f, "%v", err)
		} else if u, _ := url.Parse(r.URL); u.Fragment != "" || u.RawQuery != "" {
			fail(f, "a resource URI has no query or fragment (RFC 8707)")
		}
		if seen[r.URL] {
			fail(f, "duplicate resource %q", r.URL)
		}
		seen[r.URL] = true
		if r.Name != "" && seen["name:"+r.Name] {
			fail(fmt.Sprintf("resources[%d].name", i), "duplicate name %q", r.Name)
		}
		seen["name:"+r.Name] = true
		for j, as := range r.AuthorizationServers {
			if err := checkURL(as); err != nil {
				fail(fmt.Sprintf("resources[%d].authorization_servers[%d]", i, j), "%v", err)
			}
		}
	}
	audienceOf := map[string]int{}
	for i, r := range c.Resources {
		auds := r.Audiences
		if len(auds) == 0 {
			auds = []string{r.URL}
		}
		for j, a := range auds {
			if a == "" {
				fail(fmt.Sprintf("resources[%d].audiences[%d]", i, j), "empty audience")
			} else if k, dup := audienceOf[a]; dup && k != i {
				fail(fmt.Sprintf("resources[%d].audiences[%d]", i, j), "audience %q also names resources[%d]: a token for one would be valid on the other", a, k)
			}
			audienceOf[a] = i
		}
	}
	if len(c.Issuers) == 0 {
		fail("issuers", "at least one issuer is required")
	}
	issuers := map[string]bool{}
	for i, is := range c.Issuers {
		p := fmt.Sprintf("issuers[%d]", i)
		if err := checkURL(is.DiscoveryURL); err != nil {
			fail(p+".discovery_url", "%v", err)
		} else if InsecureHTTP(is.DiscoveryURL) && !is.AllowInsecureHTTP {
			fail(p+".discovery_url", "%q is plain http to a host that is not loopback, so anyone on the path could replace the signing keys: use https, or set allow_insecure_http: true", is.DiscoveryURL)
		}
		if is.Issuer == "" {
			fail(p+".issuer", "required when discovery_url does not end in %s", OIDCDiscoverySuffix)
		} else if issuers[is.Issuer] {
			fail(p+".issuer", "duplicate issuer %q", is.Issuer)
		}
		issuers[is.Issuer] = true
		if len(is.Audiences) > 0 && len(c.Resources) > 1 {
			fail(p+".audiences", "an issuer-wide audience with %d resources would make a token for one resource valid on all of them: set resources[].audiences instead", len(c.Resources))
		}
		for j, a := range is.Algorithms {
			if !allowedAlgorithms[a] {
				fail(fmt.Sprintf("%s.algorithms[%d]", p, j), "%q is not an allowed asymmetric algorithm", a)
			}
		}
		if is.MinRefreshInterval < 0 || is.RefreshInterval < Duration(time.Second) {
			fail(p+".refresh_interval", "must be at least 1s")
		}
	}
	switch {
	case len(c.Policy.Paths) == 0 && c.Policy.Bundle == nil:
		fail("policy.paths", "at least one policy path is required (or configure policy.bundle)")
	case len(c.Policy.Paths) > 0 && c.Policy.Bundle != nil:
		fail("policy.bundle", "set either policy.paths or policy.bundle, not both")
	}
	if b := c.Policy.Bundle; b != nil {
		c.validateBundle(b, fail)
	}
	for i, p := range c.Policy.Paths {
		if _, err := os.Stat(p); err != nil {
			fail(fmt.Sprintf("policy.paths[%d]", i), "%v", err)
		}
	}
	if c.Server.MaxConcurrentChecks < 0 {
		fail("server.max_concurrent_checks", "must not be negative")
	}
	if a := c.Server.ConnectionAge(); a != 0 && a < time.Second {
		fail("server.max_connection_age", "must be 0s (never) or at least 1s, not %v", a)
	}
	if d := c.Server.ShutdownDelay; d < 0 || d > Duration(5*time.Minute) {
		fail("server.shutdown_delay", "must be between 0s and 5m")
	}
	if d := c.Server.ShutdownTimeout; d < Duration(time.Second) || d > Duration(5*time.Minute) {
		fail("server.shutdown_timeout", "must be between 1s and 5m")
	}
	if c.Leeway < 0 || c.Leeway > Duration(10*time.Minute) {
		fail("leeway", "must be between 0s and 10m")
	}
	if c.MaxBodyBytes < 0 {
		fail("max_body_bytes", "must not be negative")
	}
	if c.TokenCache.MaxEntries > MaxTokenCacheEntries {
		fail("token_cache.max_entries", "must be at most %d (about 3 to 4.5 KiB each), or negative to turn the token caches off, not %d", MaxTokenCacheEntries, c.TokenCache.MaxEntries)
	}
	c.validateTokenExchange(fail)
	switch c.ForwardAuth.RequestHeaders {
	case "forwarded", "original":
	default:
		fail("forward_auth.request_headers", "must be forwarded or original, not %q", c.ForwardAuth.RequestHeaders)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		fail("log.level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	if r := c.Log.AllowRate(); !(r >= 0 && r <= 1) { // also catches NaN
		fail("log.allow_sample_rate", "must be between 0 and 1, not %v", r)
	}
	if f := c.Log.FlushEvery(); f < 0 || f > 10*time.Second {
		fail("log.flush_interval", "must be between 0s and 10s, not %v", f)
	}
	h := c.IdentityHeaders
	for _, f := range []struct{ field, name string }{{"subject", h.Subject}, {"client_id", h.ClientID}, {"scopes", h.Scopes},
		{"issuer", h.Issuer}, {"email", h.Email}} {
		checkSetHeader("identity_headers."+f.field, f.name, fail)
	}
	c.validateAssertion(fail)
	c.validateBridge(fail)
	if n := c.Telemetry.ServiceName; strings.TrimSpace(n) != n || strings.ContainsAny(n, "\r\n\x00") {
		fail("telemetry.service_name", "%q has surrounding spaces or control characters", n)
	}
	return errors.Join(errs...)
}

// DefaultAssertionHeader is the default of identity_assertion.header.
const DefaultAssertionHeader = "x-mcp-identity"

// validateAssertion checks the identity_assertion block and the resources that ask for it. The key files
// themselves are read, and refused, when the service starts (package assertion).
func (c *Config) validateAssertion(fail func(field, format string, a ...any)) {
	a := c.IdentityAssertion
	if a == nil {
		for i, r := range c.Resources {
			if r.IdentityAssertion {
				fail(fmt.Sprintf("resources[%d].identity_assertion", i), "needs the top-level identity_assertion block (signing keys)")
			}
		}
		return
	}
	if err := checkURL(a.Issuer); err != nil {
		fail("identity_assertion.issuer", "%v", err)
	}
	h := c.IdentityHeaders
	checkSetHeader("identity_assertion.header", a.Header, fail)
	if a.Header == h.Subject || a.Header == h.ClientID || a.Header == h.Scopes || a.Header == h.Issuer || a.Header == h.Email {
		fail("identity_assertion.header", "%q is also an identity header", a.Header)
	}
	if a.TTL < Duration(5*time.Second) || a.TTL > Duration(10*time.Minute) {
		fail("identity_assertion.ttl", "must be between 5s and 10m, not %v", time.Duration(a.TTL))
	}
	if a.RotationGrace < a.TTL || a.RotationGrace > Duration(24*time.Hour) {
		fail("identity_assertion.rotation_grace", "must be between ttl (%v) and 24h, not %v: an assertion must verify as long as it lives", time.Duration(a.TTL), time.Duration(a.RotationGrace))
	}
	if len(a.SigningKeys) == 0 {
		fail("identity_assertion.signing_keys", "at least one key file or directory is required")
	}
	for i, p := range a.SigningKeys {
		if _, err := os.Stat(p); err != nil {
			fail(fmt.Sprintf("identity_assertion.signing_keys[%d]", i), "%v", err)
		}
	}
}

// validateBundle checks the policy.bundle block.
func (c *Config) validateBundle(b *Bundle, fail func(field, format string, a ...any)) {
	if err := checkURL(b.URL); err != nil {
		fail("policy.bundle.url", "%v", err)
	}
	if strings.HasPrefix(b.Resource, "http://") || strings.HasPrefix(b.Resource, "https://") {
		fail("policy.bundle.resource", "a path under policy.bundle.url, not a URL")
	}
	if b.Polling.MinDelay < Duration(time.Second) {
		fail("policy.bundle.polling.min_delay", "must be at least 1s")
	}
	if b.Polling.MaxDelay < b.Polling.MinDelay {
		fail("policy.bundle.polling.max_delay", "must not be less than min_delay")
	}
	s := b.Signing
	if s == nil {
		return
	}
	if s.PublicKeyFile == "" {
		fail("policy.bundle.signing.public_key_file", "required")
	} else if _, err := os.Stat(s.PublicKeyFile); err != nil {
		fail("policy.bundle.signing.public_key_file", "%v", err)
	}
	if !allowedAlgorithms[s.Algorithm] || s.Algorithm == "EdDSA" { // OPA verifies bundles with RS, PS and ES only
		fail("policy.bundle.signing.algorithm", "%q is not an allowed asymmetric algorithm (RS, PS or ES 256-512)", s.Algorithm)
	}
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	return nil
}

// CheckEndpoint reports why an endpoint that the issuer's discovery document names (jwks_uri,
// authorization_endpoint, token_endpoint) must not be used, or nil: it is not an absolute http(s) URL, or,
// unless allow_insecure_http is set, it is plain http that anyone on the path could read or change (to a
// host that is not loopback, or named by an https discovery document: a downgrade). Every reader of the
// document applies this one rule.
func (is Issuer) CheckEndpoint(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return errors.New("is not an absolute http(s) URL")
	}
	if !is.AllowInsecureHTTP && (InsecureHTTP(endpoint) || u.Scheme == "http" && strings.HasPrefix(is.DiscoveryURL, "https:")) {
		return errors.New("is plain http (set allow_insecure_http to accept it)")
	}
	return nil
}

// InsecureHTTP reports whether raw is an http URL whose host is neither localhost nor a loopback address
// (127.0.0.0/8, ::1): what is fetched from it can be replaced by anyone on the network path.
func InsecureHTTP(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || !strings.EqualFold(u.Scheme, "http") {
		return false
	}
	return !LoopbackHost(u.Hostname())
}

// LoopbackHost reports whether h (a URL's host name: no port, no brackets) is localhost or a loopback
// address (127.0.0.0/8, ::1, an IPv4-mapped loopback address).
func LoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
