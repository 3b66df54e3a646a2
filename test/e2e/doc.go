// Package e2e holds the end-to-end suite of mcp-authz: real OpenID providers (Ory Hydra, node
// oidc-provider, the project's test/idp, and an RFC 8693 token exchange server, test/tools/exchangeas, on
// ZITADEL's OpenID provider library), a real MCP server (the official MCP Go SDK), real front proxies
// (nginx auth_request and Caddy forward_auth in HTTP authorization mode, and test/envoystandin in gRPC mode,
// as Envoy cannot be installed here) and real MCP clients (the MCP Go SDK client with its OAuth handler,
// mcp-remote with a headless Chromium filling the IdP's login page). Everything listens on 127.0.0.1 and stops when the test ends.
//
// The OAuth bridge (TestBridge, TestBridgeIdPs) runs against IdPs that register no clients, as enterprise IdPs
// do: Ory Hydra with dynamic registration off (its login UI on another origin, as federated logins are), and
// oidc-provider set up like Okta's default authorization server (no registration, access tokens for
// api://default whatever `resource` asks, no code_challenge_methods_supported). Each has one public client
// pre-registered for the bridge. Three real MCP clients log in through the bridge in Chromium
// (node/bridge-browser.mjs, one running Chromium per user: the bridge's consent page, then the IdP's login
// page) and call a tool through the Envoy stand-in: the MCP Go SDK client identified by a Client ID Metadata
// Document served over https on 127.0.0.1 (the bridge trusts its certificate through bridge.WithCIMDRootCAs),
// mcp-remote without --static-oauth-client-info (dynamic registration at the bridge), and the MCP TypeScript
// SDK client (node/sdk-client.mjs, by metadata document). The suite checks the tool result, that the MCP
// server got the IdP's identity (iss = the IdP) through the bridge's client, that the consent page shows the
// client, its redirect host, the server and the scopes with an accessible structure, that consent is asked
// once per browser and client, that a refused consent gives the client access_denied without a visit to the
// IdP, that a redirect URI off the allow-list or not registered by the client gets an error page and no
// redirect, and that mcp-authz logs the bridge's decisions but no token and none of the codes and states the
// browser carried.
//
// It runs in `make test`. A missing external program (hydra, exchangeas, nginx, caddy, node, chromium) skips the parts
// that need it with a message, unless MCP_AUTHZ_E2E_REQUIRED is set (CI sets it), which makes it a failure.
package e2e
