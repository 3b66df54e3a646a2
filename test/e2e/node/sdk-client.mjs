// An MCP client built on the MCP TypeScript SDK (@modelcontextprotocol/sdk), as Claude Code and many MCP
// clients are: StreamableHTTPClientTransport with an OAuthClientProvider whose redirectToAuthorization is
// the user's browser (bridge-browser.mjs: Chromium answering the bridge's consent page and logging in at
// the IdP). The SDK discovers the authorization server from the 401 and the protected resource metadata,
// registers (by Client ID Metadata Document when SDK_CLIENT_METADATA_URL is set and the server supports
// it, else by dynamic registration), runs the code flow with PKCE, then the script lists the tools and
// calls one. It prints one JSON line for the Go test:
//
//   {ok, registration, clientId, tools, result, claims, browser, flows, refreshed, refreshedClaims, error}
//
// claims are the access token's claims (read, not verified): the test checks whose token the MCP server
// accepted. The token itself is never printed. With SDK_REFRESH=1 the client then loses its access token
// (as when it expires) and calls the tool again: the SDK must get a new one with its refresh token, without
// the browser (refreshed, refreshedClaims; flows counts the authorizations in the browser).
//
//   node sdk-client.mjs
//     SDK_SERVER_URL           the MCP endpoint (through a front proxy)
//     SDK_REDIRECT_URL         the client's redirect URI (loopback; nothing needs to listen there)
//     SDK_CLIENT_METADATA_URL  optional: the client's CIMD URL (https)
//     SDK_TOOL, SDK_MESSAGE    the tool to call (default echo) and its message argument
//     SDK_REFRESH              1: check the refresh (above)
//     E2E_CDP, E2E_PROFILE, E2E_USER, E2E_CONSENT, E2E_CHROMIUM   the browser (see bridge-browser.mjs)
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { authorize } from './bridge-browser.mjs';

const serverUrl = new URL(process.env.SDK_SERVER_URL);
const redirectUrl = process.env.SDK_REDIRECT_URL;
const metadataUrl = process.env.SDK_CLIENT_METADATA_URL || undefined;
const out = {
  ok: false, registration: '', clientId: '', tools: [], result: null, claims: null, browser: [], flows: 0,
  refreshed: false, refreshedClaims: null, error: '',
};

// An in-memory OAuthClientProvider: what a desktop client keeps in its settings, for one run.
class Provider {
  constructor() {
    this.info = undefined;
    this.saved = undefined;
    this.verifier = '';
    this.stateValue = '';
    this.authorizationUrl = null;
  }
  get redirectUrl() {
    return redirectUrl;
  }
  get clientMetadataUrl() {
    return metadataUrl;
  }
  get clientMetadata() {
    return {
      client_name: 'e2e TypeScript SDK client',
      redirect_uris: [redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() {
    this.stateValue = crypto.randomUUID();
    return this.stateValue;
  }
  clientInformation() {
    return this.info;
  }
  saveClientInformation(info) {
    this.info = info;
    out.clientId = info.client_id.length > 120 ? info.client_id.slice(0, 12) + '…' : info.client_id;
    out.registration = metadataUrl && info.client_id === metadataUrl ? 'cimd' : 'dcr';
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens) {
    this.saved = tokens;
  }
  redirectToAuthorization(url) {
    this.authorizationUrl = url;
    out.flows++;
  }
  saveCodeVerifier(v) {
    this.verifier = v;
  }
  codeVerifier() {
    return this.verifier;
  }
}

function claimsOf(jwt) {
  const parts = (jwt || '').split('.');
  if (parts.length !== 3) return null;
  return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
}

const provider = new Provider();
const browserOptions = {
  redirectPrefix: redirectUrl,
  cdp: process.env.E2E_CDP || '',
  profile: process.env.E2E_PROFILE || '',
  user: process.env.E2E_USER || 'alice',
  consent: process.env.E2E_CONSENT || 'approve',
};
const client = new Client({ name: 'e2e-ts-sdk', version: '1.0.0' });
try {
  try {
    await client.connect(new StreamableHTTPClientTransport(serverUrl, { authProvider: provider }));
  } catch (e) {
    if (!(e instanceof UnauthorizedError) || !provider.authorizationUrl) throw e;
    // The user's browser: consent at the bridge, login at the IdP, back to the redirect URI.
    const report = await authorize(provider.authorizationUrl.href, browserOptions);
    out.browser.push(report);
    if (!report.redirect) throw new Error(`authorization did not come back: ${report.error}`);
    const back = new URL(report.redirect);
    if (back.searchParams.get('state') !== provider.stateValue) throw new Error('state mismatch in the authorization response');
    if (back.searchParams.get('error')) {
      throw new Error(`authorization failed: ${back.searchParams.get('error')}: ${back.searchParams.get('error_description') || ''}`);
    }
    const transport = new StreamableHTTPClientTransport(serverUrl, { authProvider: provider });
    await transport.finishAuth(back.searchParams.get('code'));
    await client.connect(transport);
  }
  const tools = await client.listTools();
  out.tools = tools.tools.map((t) => t.name).sort();
  const res = await client.callTool({
    name: process.env.SDK_TOOL || 'echo',
    arguments: { message: process.env.SDK_MESSAGE || 'hello from the TypeScript SDK' },
  });
  out.result = res.structuredContent ?? res.content;
  out.claims = claimsOf(provider.saved?.access_token);
  out.ok = !res.isError;
  if (process.env.SDK_REFRESH === '1' && out.ok) {
    if (!provider.saved?.refresh_token) throw new Error('no refresh token to refresh with');
    const old = provider.saved.access_token;
    provider.saved = { ...provider.saved, access_token: 'no-longer-valid' };
    const again = await client.callTool({ name: 'echo', arguments: { message: 'after refresh' } });
    out.refreshed = !again.isError && !!provider.saved.access_token && provider.saved.access_token !== old &&
      provider.saved.access_token !== 'no-longer-valid';
    out.refreshedClaims = claimsOf(provider.saved.access_token);
    out.ok = out.refreshed;
  }
} catch (e) {
  out.error = String(e?.message || e);
} finally {
  await client.close().catch(() => {});
}
console.log(JSON.stringify(out));
process.exit(out.ok ? 0 : 1);
