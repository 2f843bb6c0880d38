// node-oidc-provider configured like latchkey for `bench/compare.rs`: in-memory storage, one
// process, one confidential client (client_secret_basic, PKCE S256 required, refresh tokens
// rotated on every use), RS256 ID tokens, opaque access tokens, introspection and client
// credentials on. The one signed-in user approves every request: the interaction step finishes
// at once with a grant, and later requests find that grant (remembered consent).
import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const clientId = process.env.CLIENT_ID;
const clientSecret = process.env.CLIENT_SECRET;
const redirectUri = process.env.REDIRECT_URI;
const accountId = 'bench-user';

// In-memory storage without eviction. (The adapter the library ships for development keeps at
// most 1,000 entries, so under load it drops sessions and grants and the flows fail.)
const store = new Map();
const grants = new Map();
class MemoryAdapter {
  constructor(model) { this.model = model; }
  key(id) { return `${this.model}:${id}`; }
  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    store.set(key, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : undefined });
    if (payload.grantId) {
      const keys = grants.get(payload.grantId) ?? [];
      keys.push(key);
      grants.set(payload.grantId, keys);
    }
    if (payload.userCode) store.set(`${this.model}:userCode:${payload.userCode}`, { id });
    if (payload.uid) store.set(`${this.model}:uid:${payload.uid}`, { id });
  }
  async find(id) {
    const entry = store.get(this.key(id));
    if (!entry || (entry.expiresAt && entry.expiresAt < Date.now())) return undefined;
    return entry.payload;
  }
  async findByUserCode(userCode) {
    const ref = store.get(`${this.model}:userCode:${userCode}`);
    return ref && this.find(ref.id);
  }
  async findByUid(uid) {
    const ref = store.get(`${this.model}:uid:${uid}`);
    return ref && this.find(ref.id);
  }
  async consume(id) {
    const entry = store.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }
  async destroy(id) { store.delete(this.key(id)); }
  async revokeByGrantId(grantId) {
    for (const key of grants.get(grantId) ?? []) store.delete(key);
    grants.delete(grantId);
  }
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'bench', use: 'sig', alg: 'RS256' };

const provider = new Provider(`http://127.0.0.1:${port}`, {
  adapter: MemoryAdapter,
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'openid profile read',
  }],
  jwks: { keys: [jwk] },
  cookies: { keys: ['latchkey-bench-cookie-key'] },
  scopes: ['openid', 'profile', 'read'],
  claims: { openid: ['sub'], profile: ['name'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
  },
  pkce: { required: () => true },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  ttl: { AccessToken: 3600, ClientCredentials: 3600, AuthorizationCode: 60, RefreshToken: 30 * 86400, IdToken: 3600, Grant: 30 * 86400, Session: 86400, Interaction: 600 },
  findAccount: async (ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, name: 'Bench User' }),
  }),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
});

const callback = provider.callback();
http.createServer(async (req, res) => {
  if (req.url.startsWith('/interaction/')) {
    try {
      const details = await provider.interactionDetails(req, res);
      const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
      grant.addOIDCScope(details.params.scope);
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { login: { accountId }, consent: { grantId } }, { mergeWithLastSubmission: false });
    } catch (e) {
      res.statusCode = 500;
      res.end(String(e));
    }
    return;
  }
  callback(req, res);
}).listen(port, '127.0.0.1');
