// Interop: a real OAuth client library (oauth4webapi, from npm) uses DPoP (RFC 9449) against a
// live latchkey that requires server nonces: the pushed request and the code are bound to the
// library's key, the tokens come back DPoP-bound, and the library calls the API, userinfo and the
// token endpoint (refresh) with its own proofs, retrying when latchkey asks for a fresh nonce.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as oauth from "oauth4webapi";
import { startLatchkey, launchBrowser, startCallbackServer } from "./harness.mjs";

let server;
let browser;
let callback;

before(async () => {
  server = await startLatchkey({ email: "dpop-user@example.com", settings: { LATCHKEY_DPOP_NONCE: "on" } });
  callback = await startCallbackServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  callback?.close();
  server?.stop();
});

const insecure = { [oauth.allowInsecureRequests]: true };

/** Run `request` and `process` its answer; once more when latchkey asks for a fresh nonce. */
async function withNonceRetry(request, process) {
  try {
    return await process(await request());
  } catch (err) {
    if (!oauth.isDPoPNonceError(err)) throw err;
    return await process(await request());
  }
}

/** Sign in and authorize in Chromium; returns the redirect URL the app gets. */
async function authorizeInBrowser(url) {
  const context = await browser.newContext({ locale: "en-US" });
  const page = await context.newPage();
  await page.goto(url.href);
  if (await page.getByLabel("Email", { exact: true }).count()) {
    await page.getByLabel("Email", { exact: true }).fill(server.email);
    await page.getByLabel("Password", { exact: true }).fill(server.password);
    await page.getByRole("button", { name: "Sign in" }).click();
  }
  await page.getByRole("button", { name: "Authorize" }).click();
  await page.waitForURL((u) => u.href.startsWith(callback.url));
  const answer = new URL(page.url());
  await context.close();
  return answer;
}

async function discover() {
  const issuer = new URL(server.base);
  return oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { ...insecure, algorithm: "oauth2" }));
}

test("oauth4webapi binds a pushed request, its code and its tokens to an ES256 key", async () => {
  const app = server.cli([
    "client", "create", "--owner", server.email, "--name", "DPoP Client",
    "--redirect-uri", callback.url, "--scopes", "openid profile read offline_access", "--require-dpop",
  ]);
  const as = await discover();
  assert.ok(as.dpop_signing_alg_values_supported.includes("ES256"));
  const client = { client_id: app.client_id };
  const auth = oauth.ClientSecretBasic(app.client_secret);
  const DPoP = oauth.DPoP(client, await oauth.generateKeyPair("ES256"));
  const jkt = await DPoP.calculateThumbprint();

  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const params = new URLSearchParams({
    response_type: "code",
    redirect_uri: callback.url,
    scope: "openid profile read offline_access",
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
  });
  // The first push has no nonce yet: latchkey answers use_dpop_nonce, the library retries.
  const pushed = await withNonceRetry(
    () => oauth.pushedAuthorizationRequest(as, client, auth, params, { DPoP, ...insecure }),
    (response) => oauth.processPushedAuthorizationResponse(as, client, response),
  );
  const url = new URL(as.authorization_endpoint);
  url.searchParams.set("client_id", app.client_id);
  url.searchParams.set("request_uri", pushed.request_uri);
  const answer = oauth.validateAuthResponse(as, client, await authorizeInBrowser(url), state);

  const tokens = await withNonceRetry(
    () => oauth.authorizationCodeGrantRequest(as, client, auth, answer, callback.url, verifier, { DPoP, ...insecure }),
    (response) => oauth.processAuthorizationCodeResponse(as, client, response),
  );
  assert.equal(tokens.token_type, "dpop");
  assert.match(tokens.access_token, /^lk_at_/);

  // The resource API and userinfo, with the library's proofs (ath, nonce).
  const me = await withNonceRetry(
    () => oauth.protectedResourceRequest(tokens.access_token, "GET", new URL(`${server.base}/api/v1/authenticated/me`), undefined, undefined, { DPoP, ...insecure }),
    async (response) => {
      assert.equal(response.status, 200, await response.clone().text());
      return response.json();
    },
  );
  assert.deepEqual(me.emails, [server.email]);
  const sub = oauth.getValidatedIdTokenClaims(tokens).sub;
  const userinfo = await withNonceRetry(
    () => oauth.userInfoRequest(as, client, tokens.access_token, { DPoP, ...insecure }),
    (response) => oauth.processUserInfoResponse(as, client, sub, response),
  );
  assert.equal(userinfo.sub, sub);

  // Without the proof, the token is worth nothing.
  const stolen = await fetch(`${server.base}/api/v1/authenticated/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  assert.equal(stolen.status, 401);
  const noProof = await fetch(`${server.base}/api/v1/authenticated/me`, { headers: { authorization: `DPoP ${tokens.access_token}` } });
  assert.equal(noProof.status, 401);
  assert.match(noProof.headers.get("www-authenticate"), /^DPoP error="invalid_dpop_proof"/);

  // Introspection names the library's key.
  const info = await oauth.processIntrospectionResponse(as, client,
    await oauth.introspectionRequest(as, client, auth, tokens.access_token, insecure));
  assert.equal(info.active, true);
  assert.equal(info.token_type, "DPoP");
  assert.equal(info.cnf.jkt, jkt);

  // Refresh with a proof of the same key.
  const refreshed = await withNonceRetry(
    () => oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token, { DPoP, ...insecure }),
    (response) => oauth.processRefreshTokenResponse(as, client, response),
  );
  assert.equal(refreshed.token_type, "dpop");
  assert.notEqual(refreshed.access_token, tokens.access_token);

  // The app requires DPoP: a token request without a proof is refused.
  const other = await fetch(`${server.base}/oauth/token`, {
    method: "POST",
    headers: { authorization: `Basic ${btoa(`${app.client_id}:${app.client_secret}`)}` },
    body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshed.refresh_token }),
  });
  assert.equal(other.status, 400);
  assert.equal((await other.json()).error, "invalid_dpop_proof");
});

test("a public app's EdDSA-bound refresh token needs the key", async () => {
  const app = server.cli([
    "client", "create", "--owner", server.email, "--name", "Public DPoP Client",
    "--redirect-uri", callback.url, "--scopes", "profile offline_access", "--public",
  ]);
  const as = await discover();
  const client = { client_id: app.client_id, token_endpoint_auth_method: "none" };
  const auth = oauth.None();
  const DPoP = oauth.DPoP(client, await oauth.generateKeyPair("EdDSA"));

  const verifier = oauth.generateRandomCodeVerifier();
  const url = new URL(as.authorization_endpoint);
  for (const [k, v] of Object.entries({
    response_type: "code", client_id: app.client_id, redirect_uri: callback.url, scope: "profile offline_access",
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier), code_challenge_method: "S256",
    dpop_jkt: await DPoP.calculateThumbprint(),
  })) url.searchParams.set(k, v);
  const answer = oauth.validateAuthResponse(as, client, await authorizeInBrowser(url), oauth.expectNoState);
  const tokens = await withNonceRetry(
    () => oauth.authorizationCodeGrantRequest(as, client, auth, answer, callback.url, verifier, { DPoP, ...insecure }),
    (response) => oauth.processAuthorizationCodeResponse(as, client, response),
  );
  assert.equal(tokens.token_type, "dpop");

  // Another key (a thief's) cannot refresh; the library's own key can.
  const thief = oauth.DPoP(client, await oauth.generateKeyPair("EdDSA"));
  await assert.rejects(
    withNonceRetry(
      () => oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token, { DPoP: thief, ...insecure }),
      (response) => oauth.processRefreshTokenResponse(as, client, response),
    ),
    (err) => err.error === "invalid_dpop_proof",
  );
  const refreshed = await withNonceRetry(
    () => oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token, { DPoP, ...insecure }),
    (response) => oauth.processRefreshTokenResponse(as, client, response),
  );
  assert.equal(refreshed.token_type, "dpop");
});
