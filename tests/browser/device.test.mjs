// The device flow as an editor plugin runs it: the test polls the token endpoint like a device
// while a person in Chromium opens the verification link, checks the code and authorizes.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startLatchkey, launchBrowser, signIn, screenshot } from "./harness.mjs";

let server;
let browser;
let client;

before(async () => {
  server = await startLatchkey({ email: "coder@example.com" });
  server.cli(["user", "create", "--email", "plugin-dev@example.com", "--name", "Pia Plugin"], "another long password\n");
  client = server.cli([
    "client", "create", "--owner", "plugin-dev@example.com", "--name", "Editor Plugin",
    "--redirect-uri", "http://127.0.0.1/unused", "--scopes", "profile read", "--public", "--device-flow",
  ]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  server?.stop();
});

async function post(path, form) {
  const response = await fetch(`${server.base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form),
  });
  return { status: response.status, body: await response.json() };
}

/** Poll as RFC 8628 §3.5 says: wait `interval`, back off on slow_down, stop on anything else. */
async function pollForTokens(deviceCode, interval) {
  const seen = [];
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    await new Promise((ok) => setTimeout(ok, interval * 1000));
    const answer = await post("/oauth/token", {
      grant_type: "urn:ietf:params:oauth:grant-type:device_code",
      device_code: deviceCode,
      client_id: client.client_id,
    });
    seen.push(answer.body.error ?? "tokens");
    if (answer.status === 200) return { tokens: answer.body, seen };
    if (answer.body.error === "slow_down") interval += 5;
    else if (answer.body.error !== "authorization_pending") return { error: answer.body, seen };
  }
  return { error: "timed out", seen };
}

test("a person authorizes a device in the browser while it polls", async () => {
  const started = await post("/oauth/device/code", { client_id: client.client_id, scope: "profile read" });
  assert.equal(started.status, 200, JSON.stringify(started.body));
  const { device_code, user_code, verification_uri_complete, interval } = started.body;
  assert.match(user_code, /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
  const polling = pollForTokens(device_code, interval);

  const context = await browser.newContext({ locale: "en-US" });
  const page = await context.newPage();
  await signIn(page, server);
  await page.goto(verification_uri_complete);
  const field = page.getByLabel("Code", { exact: true });
  assert.equal(await field.inputValue(), user_code);
  await page.getByRole("button", { name: "Continue" }).click();
  await page.getByText("Check that your device shows this same code").waitFor();
  assert.ok((await page.content()).includes(user_code));
  await page.getByText("This app has not been verified").waitFor();
  await page.getByText("Signed in as coder@example.com").waitFor();
  await screenshot(page, "device-consent");
  await page.getByRole("button", { name: "Authorize" }).click();
  await page.getByText("is connected").waitFor();

  const { tokens, error, seen } = await polling;
  assert.ok(tokens, `polling failed: ${JSON.stringify(error)} after ${seen}`);
  assert.equal(seen.at(-1), "tokens");
  const me = await fetch(`${server.base}/api/v1/authenticated/me`, {
    headers: { authorization: `Bearer ${tokens.access_token}` },
  });
  assert.equal(me.status, 200);
  assert.deepEqual((await me.json()).emails, ["coder@example.com"]);
  await context.close();
});
