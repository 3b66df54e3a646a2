// node oidc-provider 9 (OpenID Certified) configured for the mcp-authz end-to-end suite, on 127.0.0.1.
//
//   node oidc-provider.mjs            (configuration from the environment)
//     OP_PORT        port to listen on (127.0.0.1)
//     OP_CLIENTS     JSON array of client metadata (oidc-provider's format)
//     OP_RESOURCES   JSON array of the MCP resource URLs (RFC 8707 resource indicators it accepts)
//     OP_SHORT_TTL   access token lifetime in seconds for clients whose id ends in "-short"
//     OP_AUDIENCE    enterprise mode (see below) with this fixed audience, e.g. api://default
//
// RFC 8707: a `resource` parameter naming one of OP_RESOURCES gets a JWT access token (typ at+jwt) with
// that audience. In enterprise mode (OP_AUDIENCE set) the provider behaves like Okta's default
// authorization server instead: every access token is a JWT for the fixed audience whatever `resource`
// the client asked for (RFC 8707 is not honoured), and the discovery documents do not advertise
// code_challenge_methods_supported (PKCE S256 is still required). Dynamic registration is off in both
// modes: clients are only the static OP_CLIENTS. Logins use devInteractions (a login form and a consent form a browser can fill); the
// account's groups and email go into access tokens. Prints "ready <issuer>" once listening.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.env.OP_PORT);
const issuer = `http://127.0.0.1:${port}`;
const clients = JSON.parse(process.env.OP_CLIENTS || '[]');
const resources = new Set(JSON.parse(process.env.OP_RESOURCES || '[]'));
const shortTTL = Number(process.env.OP_SHORT_TTL || '3');
const fixedAudience = process.env.OP_AUDIENCE || '';

// The suite's users (test/e2e/hydra_test.go users()).
const users = {
  alice: { email: 'alice@example.com', groups: ['mcp-users', 'admins'] },
  bob: { email: 'bob@example.com', groups: ['mcp-users'] },
  mallory: { email: 'mallory@example.com', groups: ['guests'] },
};

// A fresh signing key per run (never the library's development keys).
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingKey] },
  scopes: ['openid', 'offline_access', 'tools:read', 'tools:call', 'tools:admin'],
  claims: { openid: ['sub'], email: ['email'] },
  pkce: { required: () => true },
  cookies: { keys: ['e2e-only-cookie-key-0123456789abcdef'] },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => (fixedAudience ? fixedAudience : oneOf),
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource, client) => {
        if (!fixedAudience && !resources.has(resource) && resource !== 'https://elsewhere.example.com/mcp') {
          throw new Provider.errors.InvalidTarget();
        }
        return {
          scope: 'tools:read tools:call tools:admin',
          audience: fixedAudience || resource,
          accessTokenTTL: client.clientId.endsWith('-short') ? shortTTL : 3600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  ttl: {
    AccessToken: (_ctx, token, client) => (client && client.clientId.endsWith('-short') ? shortTTL : 3600),
    ClientCredentials: 3600,
  },
  findAccount: async (_ctx, sub) => {
    if (!users[sub]) return undefined;
    return { accountId: sub, claims: async () => ({ sub, email: users[sub].email }) };
  },
  extraTokenClaims: async (_ctx, token) => {
    const u = token.accountId && users[token.accountId];
    return u ? { groups: u.groups, email: u.email } : undefined;
  },
  issueRefreshToken: async (_ctx, client, code) => client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
});
provider.proxy = false;

// Enterprise mode: hide code_challenge_methods_supported from both discovery documents, as some
// enterprise IdPs do not publish it.
if (fixedAudience) {
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path.startsWith('/.well-known/') && ctx.body && typeof ctx.body === 'object') {
      delete ctx.body.code_challenge_methods_supported;
    }
  });
}

// devInteractions accepts any login name; findAccount knows only the suite's users, so others fail.
const server = createServer(provider.callback());
server.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
