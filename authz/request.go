// Package authz decides whether one request to a protected MCP server may pass: it extracts the bearer token,
// verifies it against the trusted issuers' keys, reads the MCP JSON-RPC message, asks the policy, and builds
// the Decision (allow with identity headers, or deny with a status, an RFC 6750 challenge and a JSON-RPC error
// body). It knows nothing of Envoy or of HTTP servers: protocol adapters translate to and from its types.
package authz

// Request is one HTTP request as a front proxy reports it.
type Request struct {
	// Method is the HTTP method.
	Method string
	// Scheme is http or https, as the client used it.
	Scheme string
	// Host is the authority the client addressed.
	Host string
	// Path is the request path including any query string.
	Path string
	// Headers are the request headers, keys in lower case; a repeated header is joined with ",".
	Headers map[string]string
	// Body is the request body when the proxy sent it.
	Body []byte
	// BodyTruncated says the proxy cut the body short.
	BodyTruncated bool
	// Resource is the resource named by the route (Envoy context extension `resource`): a URL or a name.
	Resource string
}
