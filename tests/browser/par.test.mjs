// Interop: a real OAuth client library (oauth4webapi, from npm) runs a pushed authorization
// request (RFC 9126) against a live latchkey, a person signs in and authorizes in Chromium, and the
// library validates the answer (state, iss) and exchanges the code with PKCE.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as oauth from "oauth4webapi";
import { startLatchkey, launchBrowser, startCallbackServer } from "./harness.mjs";

let server;
let browser;
let callback;

before(async () => {
  server = await startLatchkey({ email: "par-user@example.com" });
  callback = await startCallbackServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  callback?.close();
  server?.stop();
});

const insecure = { [oauth.allowInsecureRequests]: true };

test("oauth4webapi pushes the request, the person authorizes, the library gets tokens", async () => {
  const app = server.cli([
    "client", "create", "--owner", server.email, "--name", "PAR Client",
    "--redirect-uri", callback.url, "--scopes", "openid profile read", "--require-par",
  ]);
  assert.equal(app.require_pushed_authorization_requests, true);

  const issuer = new URL(server.base);
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { ...insecure, algorithm: "oauth2" }));
  assert.equal(as.pushed_authorization_request_endpoint, `${server.base}/oauth/par`);
  const client = { client_id: app.client_id };
  const auth = oauth.ClientSecretBasic(app.client_secret);

  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  const params = new URLSearchParams({
    response_type: "code",
    redirect_uri: callback.url,
    scope: "openid profile read",
    state,
    nonce,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
  });
  const pushed = await oauth.processPushedAuthorizationResponse(
    as, client, await oauth.pushedAuthorizationRequest(as, client, auth, params, insecure),
  );
  assert.match(pushed.request_uri, /^urn:ietf:params:oauth:request_uri:/);
  assert.equal(pushed.expires_in, 60);

  const url = new URL(as.authorization_endpoint);
  url.searchParams.set("client_id", app.client_id);
  url.searchParams.set("request_uri", pushed.request_uri);
  const context = await browser.newContext({ locale: "en-US" });
  const page = await context.newPage();
  await page.goto(url.href);
  await page.getByLabel("Email", { exact: true }).fill(server.email);
  await page.getByLabel("Password", { exact: true }).fill(server.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "Authorize" }).click();
  await page.waitForURL((u) => u.href.startsWith(callback.url));

  const answer = oauth.validateAuthResponse(as, client, new URL(page.url()), state);
  const response = await oauth.authorizationCodeGrantRequest(as, client, auth, answer, callback.url, verifier, insecure);
  const tokens = await oauth.processAuthorizationCodeResponse(as, client, response, { expectedNonce: nonce, requireIdToken: true });
  assert.match(tokens.access_token, /^lk_at_/);
  assert.equal(tokens.token_type.toLowerCase(), "bearer");
  const claims = oauth.getValidatedIdTokenClaims(tokens);
  assert.equal(claims.aud, app.client_id);
  assert.equal(claims.iss, server.base);

  // The same request_uri a second time: an error page, no redirect to the app.
  await page.goto(url.href);
  assert.ok(page.url().startsWith(server.base), page.url());
  await page.getByText("expired or was already used").waitFor();

  // The app requires PAR: a plain request comes back with invalid_request.
  const plain = new URL(as.authorization_endpoint);
  for (const [k, v] of params) plain.searchParams.set(k, v);
  plain.searchParams.set("client_id", app.client_id);
  await page.goto(plain.href);
  await page.waitForURL((u) => u.href.startsWith(callback.url));
  assert.equal(new URL(page.url()).searchParams.get("error"), "invalid_request");
  await context.close();
});
