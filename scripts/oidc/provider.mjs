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
//   * scopes openid email profile (and GitHub's, below); every account exists: login L (any password) is
//     { sub: L, email: L@oidc.test, email_verified: true, preferred_username: L, name: L },
//     and those claims are in the ID token itself (conformIdTokenClaims: false), not only userinfo;
//   * ID tokens signed RS256 with a key generated at startup (published at /jwks);
//   * oidc-provider's built-in development interactions: a login form (fields `login`,
//     `password`, hidden `prompt=login`) then a consent form (hidden `prompt=consent`), each
//     POSTed to /interaction/<uid>;
//   * on the same port, GitHub's OAuth app endpoints as GitHub Enterprise Server lays them out
//     (web base = the issuer, REST API base = issuer/api/v3), backed by the same client, flow,
//     PKCE policy and accounts (see "GitHub-compatible endpoints" below):
//       GET  /login/oauth/authorize     oidc-provider's /auth with response_type=code and openid
//                                       added; scopes read:user user:email (and user) accepted;
//                                       ends at redirect_uri?code=...&state=... (no iss)
//       POST /login/oauth/access_token  form (or query/JSON) client_id client_secret code
//                                       redirect_uri code_verifier -> HTTP 200, JSON with
//                                       `Accept: application/json` else form-urlencoded:
//                                       {access_token, token_type: "bearer", scope: "read:user,user:email"}
//                                       or {error: bad_verification_code | incorrect_client_credentials
//                                       | redirect_uri_mismatch, error_description, error_uri}
//       GET  /api/v3/user               (Authorization: Bearer|token T; User-Agent required, else 403)
//                                       {id: FNV-1a 31-bit of the login, login, name: login, email: null}
//       GET  /api/v3/user/emails        [{L@github.test, primary, verified, private},
//                                       {L-alt@github.test, not primary, unverified}] (token scope
//                                       user:email or user, else 404)
// Logs one line per request, and every error event, to stdout.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const HOST = '127.0.0.1';
const CLIENT_ID = 'gati-registry';
const CLIENT_SECRET = 'gati-test-client-secret-0123456789';
// GitHub OAuth scopes the provider declares; `user` (read/write profile) includes user:email.
const GITHUB_SCOPES = ['read:user', 'user:email', 'user'];
const GITHUB_MARKER = 'gati_github';

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
// Also dropped: the notice that a request body was already read, which the GitHub-compatible
// token endpoint does on purpose (githubAccessToken).
const intended = [
  'a quick start development-only feature devInteractions is enabled',
  'a quick start development-only in-memory adapter is used',
  'already parsed request body detected',
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
  // GitHub's scopes are accepted too, for the GitHub-compatible endpoints (see githubCompat).
  scopes: ['openid', 'offline_access', 'email', 'profile', ...GITHUB_SCOPES],
  // Marks an authorization request that came in through /login/oauth/authorize; it is kept with
  // the interaction, so the final redirect (after login and consent) is still known to be GitHub's.
  extraParams: [GITHUB_MARKER],
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
    console.log(`${event}: ${err?.name ?? ''} ${err?.message ?? err}${err?.error_description ? ` (${err.error_description})` : ''}`
      + `${err?.error_detail ? `: ${err.error_detail}` : ''}`);
  });
}
// The token endpoint's error_description is generic ("grant request is invalid"); the GitHub
// token endpoint tells a redirect_uri mismatch apart by the error's detail (githubAccessToken).
provider.on('grant.error', (ctx, err) => {
  ctx.state.grantError = err;
});
provider.on('grant.success', (ctx) => {
  console.log(`grant.success: client ${ctx.oidc.client?.clientId}`);
});
provider.on('interaction.ended', (ctx) => {
  console.log(`interaction.ended: ${ctx.oidc.entities.Interaction?.uid ?? ''}`);
});

// ---- GitHub-compatible endpoints ------------------------------------------------------------
// GitHub's OAuth app endpoints (web base http://127.0.0.1:PORT, REST API base
// http://127.0.0.1:PORT/api/v3, GitHub Enterprise Server's layout), served by this same provider:
// the authorization and the code exchange are oidc-provider's own (the same client, login and
// consent, PKCE and one-time codes), only reshaped into what GitHub's endpoints take and answer.

// GitHub's numeric user id for a login: FNV-1a (32-bit) of its UTF-8 bytes, masked to 31 bits,
// never 0. tests/common/oidc.rs computes the same (github_user_id).
function githubUserId(login) {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(login, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return (hash & 0x7fffffff) || 1;
}

const GITHUB_TOKEN_ERRORS = {
  bad_verification_code: ['The code passed is incorrect or expired.',
    'https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code'],
  incorrect_client_credentials: ['The client_id and/or client_secret passed are incorrect.',
    'https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#incorrect-client-credentials'],
  redirect_uri_mismatch: ['The redirect_uri MUST match the registered callback URL for this application.',
    'https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#redirect-uri-mismatch2'],
};

const GITHUB_BODY_LIMIT = 56 * 1024;

async function readRequestBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > GITHUB_BODY_LIMIT) throw new Error('request entity too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

// GitHub answers the token endpoint in JSON when asked (`Accept: application/json`), else
// form-urlencoded; always HTTP 200, errors included.
function githubTokenAnswer(ctx, fields) {
  ctx.remove('WWW-Authenticate');
  ctx.remove('Pragma');
  ctx.set('Cache-Control', 'no-store');
  if ((ctx.get('accept') || '').toLowerCase().includes('json')) {
    ctx.type = 'application/json; charset=utf-8';
    ctx.body = JSON.stringify(fields);
  } else {
    ctx.type = 'application/x-www-form-urlencoded; charset=utf-8';
    ctx.body = new URLSearchParams(fields).toString();
  }
  ctx.status = 200;
}

function githubJson(ctx, status, value) {
  ctx.status = status;
  ctx.type = 'application/json; charset=utf-8';
  ctx.body = JSON.stringify(value);
}

// GET /login/oauth/authorize: oidc-provider's authorization endpoint, with `response_type=code`
// and `openid` added (GitHub's requests carry neither), GitHub's comma-separated scopes accepted,
// and GitHub's `prompt` (select_account) and `login` (an account suggestion) left out.
async function githubAuthorize(ctx, next) {
  const params = new URLSearchParams(ctx.querystring);
  const scopes = (params.get('scope') ?? '').split(/[\s,]+/).filter((s) => s && s !== 'openid');
  params.set('scope', ['openid', ...scopes].join(' '));
  params.set('response_type', 'code');
  params.delete('prompt');
  params.delete('login');
  params.set(GITHUB_MARKER, '1');
  ctx.path = provider.pathFor('authorization');
  ctx.querystring = params.toString();
  await next();
}

// POST /login/oauth/access_token: oidc-provider's token endpoint (grant_type authorization_code,
// client_secret_post from the fields, or HTTP Basic if sent), answer reshaped into GitHub's.
async function githubAccessToken(ctx, next) {
  if (ctx.method !== 'POST') {
    githubJson(ctx, 404, { message: 'Not Found' });
    return;
  }
  // GitHub takes the fields from the query string or the body (form or JSON).
  const fields = Object.fromEntries(new URLSearchParams(ctx.querystring));
  try {
    const raw = await readRequestBody(ctx.req);
    if (raw && ctx.is('application/json')) Object.assign(fields, JSON.parse(raw));
    else if (raw) Object.assign(fields, Object.fromEntries(new URLSearchParams(raw)));
  } catch (err) {
    githubTokenAnswer(ctx, { error: 'invalid_request', error_description: `unreadable body: ${err.message}` });
    return;
  }
  const body = { grant_type: 'authorization_code' };
  for (const name of ['client_id', 'client_secret', 'code', 'redirect_uri', 'code_verifier']) {
    if (typeof fields[name] === 'string' && fields[name] !== '') body[name] = fields[name];
  }
  // oidc-provider reads an already-read body from ctx.request.body (its documented fallback).
  ctx.request.body = body;
  ctx.req.headers['content-type'] = 'application/x-www-form-urlencoded';
  ctx.path = provider.pathFor('token');
  ctx.querystring = '';
  await next();

  const answer = ctx.body && typeof ctx.body === 'object' ? ctx.body : {};
  if (ctx.status === 200 && answer.access_token) {
    const scope = String(answer.scope ?? '').split(' ').filter((s) => s && s !== 'openid').join(',');
    githubTokenAnswer(ctx, { access_token: answer.access_token, token_type: 'bearer', scope });
    return;
  }
  const detail = ctx.state.grantError?.error_detail ?? '';
  console.log(`github token exchange refused: ${ctx.status} ${answer.error ?? ''} (${answer.error_description ?? ''}${detail ? `: ${detail}` : ''})`);
  let error;
  if (answer.error === 'invalid_client') error = 'incorrect_client_credentials';
  else if (answer.error === 'invalid_grant' && /redirect_uri/.test(detail)) error = 'redirect_uri_mismatch';
  else if (answer.error === 'invalid_grant') error = 'bad_verification_code';
  if (error) {
    const [description, uri] = GITHUB_TOKEN_ERRORS[error];
    githubTokenAnswer(ctx, { error, error_description: description, error_uri: uri });
  } else {
    githubTokenAnswer(ctx, {
      error: answer.error ?? 'server_error',
      error_description: answer.error_description ?? `HTTP ${ctx.status}`,
    });
  }
}

// GET /api/v3/user and /api/v3/user/emails: who the access token belongs to, in GitHub's shapes.
async function githubApi(ctx) {
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
    githubJson(ctx, 404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' });
    return;
  }
  if (!ctx.get('user-agent')) {
    ctx.status = 403;
    ctx.type = 'text/plain; charset=utf-8';
    ctx.body = 'Request forbidden by administrative rules. Please make sure your request has a User-Agent '
      + 'header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). '
      + 'Check https://developer.github.com for other possible causes.\n';
    return;
  }
  const authorization = ctx.get('authorization');
  const match = /^(?:bearer|token)[ ]+(\S+)\s*$/i.exec(authorization);
  if (!authorization) {
    githubJson(ctx, 401, { message: 'Requires authentication', documentation_url: 'https://docs.github.com/rest', status: '401' });
    return;
  }
  const token = match ? await provider.AccessToken.find(match[1]).catch(() => undefined) : undefined;
  if (!token || token.isExpired || !token.accountId) {
    githubJson(ctx, 401, { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest', status: '401' });
    return;
  }
  const login = token.accountId;
  const scopes = String(token.scope ?? '').split(' ').filter((s) => s && s !== 'openid');
  ctx.set('X-OAuth-Scopes', scopes.join(', '));
  ctx.set('X-GitHub-Media-Type', 'github.v3; format=json');
  if (ctx.path === '/api/v3/user') {
    githubJson(ctx, 200, { id: githubUserId(login), login, name: login, email: null });
    return;
  }
  // GitHub lists the addresses only to tokens with user:email or user.
  if (!scopes.includes('user:email') && !scopes.includes('user')) {
    githubJson(ctx, 404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest/users/emails#list-email-addresses-for-the-authenticated-user', status: '404' });
    return;
  }
  githubJson(ctx, 200, [
    { email: `${login}@github.test`, primary: true, verified: true, visibility: 'private' },
    { email: `${login}-alt@github.test`, primary: false, verified: false, visibility: null },
  ]);
}

// Whether this request's authorization was a GitHub one (marked by githubAuthorize; on the
// resumptions after login and consent the marker comes back from the stored interaction).
function isGithubAuthorization(ctx) {
  try {
    return ctx.oidc?.params?.[GITHUB_MARKER] === '1';
  } catch {
    return false;
  }
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/login/oauth/authorize') {
    await githubAuthorize(ctx, next);
  } else if (ctx.path === '/login/oauth/access_token') {
    await githubAccessToken(ctx, next);
    return;
  } else if (ctx.path === '/api/v3/user' || ctx.path === '/api/v3/user/emails') {
    await githubApi(ctx);
    return;
  } else {
    await next();
  }
  // GitHub's redirect back to the client carries no RFC 9207 `iss`.
  const location = ctx.response.get('location');
  if (location && isGithubAuthorization(ctx)) {
    try {
      const url = new URL(location);
      if (url.searchParams.get('iss') === issuer) {
        url.searchParams.delete('iss');
        ctx.set('Location', url.href);
      }
    } catch {
      // a relative Location (the interaction pages): nothing to strip
    }
  }
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
