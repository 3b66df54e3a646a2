// Package assertion mints the signed identity assertion: on an allow to a resource configured with
// identity_assertion: true, a short-lived JWT signed by mcp-authz that tells the MCP server who is calling,
// which the server verifies with the JWKS mcp-authz serves at /.well-known/jwks.json. Unlike the plain
// identity headers, the server can trust it without trusting the network path: a request that bypasses the
// proxy has no valid assertion, and an assertion for another resource has another audience.
//
// keys.go loads the signing keys, follows their rotation and renders the JWKS; mint.go builds and signs the
// claims; cache.go keeps one assertion per (token, resource) so that most requests reuse a signature.
package assertion
