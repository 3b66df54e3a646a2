// Package e2e holds the end-to-end suite of mcp-authz: real OpenID providers (Ory Hydra, node
// oidc-provider, the project's test/idp, and an RFC 8693 token exchange server, test/tools/exchangeas, on
// ZITADEL's OpenID provider library), a real MCP server (the official MCP Go SDK), real front proxies
// (nginx auth_request and Caddy forward_auth in HTTP authorization mode, and test/envoystandin in gRPC mode,
// as Envoy cannot be installed here) and real MCP clients (the MCP Go SDK client with its OAuth handler,
// mcp-remote with a headless Chromium filling the IdP's login page). Everything listens on 127.0.0.1 and stops when the test ends.
//
// It runs in `make test`. A missing external program (hydra, exchangeas, nginx, caddy, node, chromium) skips the parts
// that need it with a message, unless MCP_AUTHZ_E2E_REQUIRED is set (CI sets it), which makes it a failure.
package e2e
