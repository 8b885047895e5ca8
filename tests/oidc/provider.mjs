// A real OpenID provider for the tests: node-oidc-provider (OpenID Certified) with a small
// configuration. Started by tests/oidc/provider.py; everything comes from the environment:
//   OIDC_PORT       loopback port; the issuer is http://127.0.0.1:PORT
//   OIDC_JWKS       path of a JSON Web Key Set with private keys (the first signs)
//   OIDC_CLIENTS    JSON list of client metadata (client_id, client_secret, redirect_uris, ...)
//   OIDC_GROUPS     JSON object: account -> list of groups (the `groups` claim)
//   OIDC_RESOURCE   the API's resource indicator; access tokens for it are JWTs
//   OIDC_JWKS_MAX_AGE  if set, the key set is served with Cache-Control: max-age=N
// The login page is the provider's own development login (any password); the account id is
// the login typed there, and an account that looks like an address gets it as `email`.
//
// Test control (only in this test configuration): GET /__test/mode?mode=M makes the token
// endpoint tamper with the next id_tokens it returns, to produce what a correct provider
// never sends: `wrong-aud`, `expired`, `bad-nonce` (re-signed with the provider's own key)
// and `bad-signature` (payload changed, signature kept). `mode=` switches it off.
import { readFileSync } from 'node:fs';

import { SignJWT, decodeJwt, decodeProtectedHeader, importJWK } from 'jose';
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT);
const issuer = `http://127.0.0.1:${port}`;
const jwks = JSON.parse(readFileSync(process.env.OIDC_JWKS, 'utf8'));
const clients = JSON.parse(process.env.OIDC_CLIENTS);
const groups = JSON.parse(process.env.OIDC_GROUPS || '{}');
const resource = process.env.OIDC_RESOURCE;
const jwksMaxAge = process.env.OIDC_JWKS_MAX_AGE;

function claimsOf(id) {
  const claims = { sub: id, preferred_username: id, name: id };
  if (id.includes('@')) {
    claims.email = id;
    claims.email_verified = true;
  }
  claims.groups = groups[id] || [];
  return claims;
}

const configuration = {
  clients,
  jwks,
  cookies: { keys: ['test-only-cookie-key-for-userphoto'] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name'],
    groups: ['groups'],
  },
  // Scope claims in the id_token too (userphoto reads the id_token, not userinfo).
  conformIdTokenClaims: false,
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => claimsOf(id),
  }),
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, indicator) => ({
        scope: 'photos',
        audience: indicator,
        accessTokenFormat: 'jwt',
        accessTokenTTL: 600,
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  // The API finds users in access tokens by the same claims as in id_tokens.
  extraTokenClaims: async (ctx, token) => {
    if (token.kind !== 'AccessToken' || !token.accountId) return undefined;
    const { email, groups: g } = claimsOf(token.accountId);
    return { email, groups: g };
  },
  ttl: { IdToken: 600, AccessToken: 600 },
};

const provider = new Provider(issuer, configuration);
if (resource) {
  console.log(`resource indicator for JWT access tokens: ${resource}`);
}

let mode = '';
const signer = jwks.keys[0];

async function tamper(idToken) {
  const header = decodeProtectedHeader(idToken);
  const claims = decodeJwt(idToken);
  if (mode === 'bad-signature') {
    const [h, , s] = idToken.split('.');
    const changed = { ...claims, email: 'kim@contoso.test', groups: ['photo-admins'] };
    return `${h}.${Buffer.from(JSON.stringify(changed)).toString('base64url')}.${s}`;
  }
  const now = Math.floor(Date.now() / 1000);
  if (mode === 'wrong-aud') claims.aud = 'some-other-application';
  if (mode === 'expired') {
    claims.iat = now - 7200;
    claims.exp = now - 3600;
  }
  if (mode === 'bad-nonce') claims.nonce = 'not-the-nonce-that-was-sent';
  const key = await importJWK(signer, header.alg);
  return new SignJWT(claims).setProtectedHeader(header).sign(key);
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/__test/mode') {
    mode = ctx.query.mode || '';
    ctx.body = { mode };
    return;
  }
  await next();
  if (jwksMaxAge && ctx.path === '/jwks') {
    ctx.set('Cache-Control', `public, max-age=${jwksMaxAge}`);
  }
  if (mode && ctx.path === '/token' && ctx.body && ctx.body.id_token) {
    ctx.body = { ...ctx.body, id_token: await tamper(ctx.body.id_token) };
  }
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
