// A real OpenID Connect provider for Gati Registry's tests: panva's certified `oidc-provider`
// (pinned in package.json / package-lock.json), never a mock. Started by scripts/oidc-provider.sh,
// which installs the package into a tool cache outside the clone and points OIDC_PROVIDER_HOME at it.
//
// Environment:
//   PORT                   port on 127.0.0.1 (required); the issuer is http://127.0.0.1:PORT
//   REDIRECT_URIS          the client's redirect URIs, comma-separated (required)
//   OIDC_REQUIRE_PKCE      1 (default): every authorization request must carry an S256
//                          code_challenge; 0: PKCE optional (still verified when sent)
//   OIDC_PROVIDER_HOME     directory whose node_modules holds oidc-provider (the tool cache);
//                          unset: resolved next to this file (a local `npm ci` in scripts/oidc)
//
// What it serves:
//   * one confidential client `gati-registry` / `gati-test-client-secret-0123456789`,
//     authorization_code (+ refresh_token) grant, response_type code, token endpoint
//     authentication client_secret_basic (oidc-provider also accepts client_secret_post for it);
//   * scopes openid email profile; every account exists: login L (any password) is
//     { sub: L, email: L@oidc.test, email_verified: true, preferred_username: L, name: L },
//     and those claims are in the ID token itself (conformIdTokenClaims: false), not only userinfo;
//   * ID tokens signed RS256 with a key generated at startup (published at /jwks);
//   * oidc-provider's built-in development interactions: a login form (fields `login`,
//     `password`, hidden `prompt=login`) then a consent form (hidden `prompt=consent`), each
//     POSTed to /interaction/<uid>.
// Logs one line per request, and every error event, to stdout.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const HOST = '127.0.0.1';
const CLIENT_ID = 'gati-registry';
const CLIENT_SECRET = 'gati-test-client-secret-0123456789';

function fail(message) {
  console.error(`oidc-provider.mjs: ${message}`);
  process.exit(2);
}

const port = Number.parseInt(process.env.PORT ?? '', 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) fail(`PORT must be a TCP port, not ${JSON.stringify(process.env.PORT)}`);
const redirectUris = (process.env.REDIRECT_URIS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
if (redirectUris.length === 0) fail('REDIRECT_URIS must list at least one redirect URI (comma-separated)');
const requirePkce = (process.env.OIDC_REQUIRE_PKCE ?? '1') !== '0';
const issuer = `http://${HOST}:${port}`;

// oidc-provider announces its quick-start features on stderr. This provider uses two of them on
// purpose (the development login/consent pages and the in-memory store): drop those two notices.
const intended = [
  'a quick start development-only feature devInteractions is enabled',
  'a quick start development-only in-memory adapter is used',
];
const consoleWarn = console.warn.bind(console);
console.warn = (...args) => {
  const text = String(args[0] ?? '');
  if (intended.some((s) => text.includes(s))) return;
  consoleWarn(...args);
};

// The package lives in the tool cache, not next to this file: resolve it from there.
let Provider;
if (process.env.OIDC_PROVIDER_HOME) {
  const require = createRequire(join(process.env.OIDC_PROVIDER_HOME, 'package.json'));
  let entry;
  try {
    entry = require.resolve('oidc-provider');
  } catch (err) {
    fail(`oidc-provider is not installed under ${process.env.OIDC_PROVIDER_HOME} (run: bash scripts/oidc-provider.sh install): ${err.message}`);
  }
  ({ default: Provider } = await import(pathToFileURL(entry).href));
} else {
  ({ default: Provider } = await import('oidc-provider'));
}

// A fresh RS256 signing key per run (also avoids oidc-provider's built-in development keys).
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: `gati-test-${randomUUID()}`, alg: 'RS256', use: 'sig' };

function accountClaims(id) {
  return {
    sub: id,
    email: `${id}@oidc.test`,
    email_verified: true,
    preferred_username: id,
    name: id,
  };
}

function htmlEscape(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

const configuration = {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: redirectUris,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  }],
  jwks: { keys: [signingKey] },
  cookies: {
    keys: ['gati-test-oidc-cookie-key-0123456789', 'gati-test-oidc-cookie-key-9876543210'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile'],
  claims: {
    acr: null,
    auth_time: null,
    iss: null,
    sid: null,
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'family_name', 'given_name', 'middle_name', 'nickname',
      'profile', 'picture', 'website', 'gender', 'birthdate', 'zoneinfo', 'locale', 'updated_at'],
  },
  // Scope-requested claims go into the ID token too, not only to userinfo.
  conformIdTokenClaims: false,
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims(_use, _scope, _claims, _rejected) {
        return accountClaims(id);
      },
    };
  },
  features: {
    devInteractions: { enabled: true },
    userinfo: { enabled: true },
  },
  pkce: {
    required: () => requirePkce,
  },
  // Explicit values silence the "default ttl function called" notices.
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    ClientCredentials: 600,
    Grant: 86400,
    IdToken: 3600,
    Interaction: 3600,
    RefreshToken: 86400,
    Session: 86400,
  },
  clientBasedCORS: () => false,
  async renderError(ctx, out, error) {
    console.log(`render error: ${JSON.stringify(out)}${error?.stack ? `\n${error.stack}` : ''}`);
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><html><head><title>oidc-provider error</title></head><body>`
      + `<h1>oops! something went wrong</h1><pre id="error">${htmlEscape(JSON.stringify(out, null, 2))}</pre></body></html>`;
  },
};

const provider = new Provider(issuer, configuration);

provider.use(async (ctx, next) => {
  const started = Date.now();
  try {
    await next();
  } finally {
    const location = ctx.response.get('location');
    console.log(`${new Date().toISOString()} ${ctx.method} ${ctx.originalUrl} -> ${ctx.status}`
      + `${location ? ` Location: ${location}` : ''} (${Date.now() - started} ms)`);
  }
});

for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error', 'jwks.error',
  'discovery.error', 'end_session.error', 'revocation.error', 'introspection.error']) {
  provider.on(event, (_ctx, err) => {
    console.log(`${event}: ${err?.name ?? ''} ${err?.message ?? err}${err?.error_description ? ` (${err.error_description})` : ''}`);
  });
}
provider.on('grant.success', (ctx) => {
  console.log(`grant.success: client ${ctx.oidc.client?.clientId}`);
});
provider.on('interaction.ended', (ctx) => {
  console.log(`interaction.ended: ${ctx.oidc.entities.Interaction?.uid ?? ''}`);
});

const server = createServer(provider.callback());
server.on('error', (err) => fail(`cannot listen on ${HOST}:${port}: ${err.message}`));
server.listen(port, HOST, () => {
  console.log(`oidc-provider listening on ${issuer} (issuer ${issuer}, client ${CLIENT_ID}, `
    + `redirect_uris ${redirectUris.join(' ')}, PKCE ${requirePkce ? 'required' : 'optional'})`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    console.log(`${signal}: shutting down`);
    server.close();
    process.exit(0);
  });
}
