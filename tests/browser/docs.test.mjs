// The developer guide and the API explorer in Chromium: nothing is loaded from another host, the
// browser reports no blocked script or style, and the explorer calls the API with a token.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startLatchkey, launchBrowser, screenshot } from "./harness.mjs";

let server;
let browser;

before(async () => {
  server = await startLatchkey({ email: "docs-reader@example.com" });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  server?.stop();
});

/** A page that records every request it makes and every console error (CSP reports land there). */
async function recordingPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  const requests = [];
  const errors = [];
  page.on("request", (request) => requests.push(request.url()));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  page.on("pageerror", (error) => errors.push(String(error)));
  page.on("response", (response) => {
    if (response.status() >= 400) errors.push(`${response.status()} ${response.url()}`);
  });
  return { page, requests, errors, context };
}

function foreign(requests) {
  return requests.filter((url) => !url.startsWith(`${server.base}/`) && !url.startsWith("data:"));
}

test("the explorer loads only from latchkey and calls an endpoint with a token", async () => {
  const { token } = server.cli(["pat", "create", "--email", server.email, "--scopes", "profile read"]);
  const { page, requests, errors, context } = await recordingPage();
  await page.goto(`${server.base}/docs/api`);
  assert.equal(new URL(page.url()).pathname, "/docs/api/");
  await page.locator(".opblock").first().waitFor({ timeout: 30_000 });
  const operations = await page.locator(".opblock").count();
  assert.ok(operations >= 30, `Swagger UI lists the operations (${operations})`);

  // Authorize with the bearer token.
  await page.getByRole("button", { name: /Authorize/ }).first().click();
  const dialog = page.locator(".modal-ux");
  const bearer = dialog.locator("form").filter({ has: page.locator("#auth-bearer-value") });
  await bearer.locator("#auth-bearer-value").fill(token);
  await bearer.getByRole("button", { name: "Apply credentials" }).click();
  await dialog.getByRole("button", { name: "Close" }).first().click();

  // Call GET /api/v1/authenticated/me from the page.
  const me = page.locator("#operations-activity-me");
  await me.locator(".opblock-summary").click();
  const tryIt = me.getByRole("button", { name: "Try it out" });
  if (await tryIt.count()) await tryIt.click();
  await me.getByRole("button", { name: "Execute" }).click();
  const status = me.locator(".live-responses-table tr.response .response-col_status").first();
  await status.waitFor({ timeout: 15_000 });
  assert.equal((await status.innerText()).trim(), "200");
  const body = await me.locator(".live-responses-table .microlight").first().innerText();
  assert.match(body, /docs-reader@example\.com/);
  await screenshot(page, "explorer");

  assert.ok(requests.some((url) => url === `${server.base}/api/v1/authenticated/me`), "the call went to latchkey");
  assert.ok(requests.some((url) => url.endsWith("/api/openapi.json")));
  assert.deepEqual(foreign(requests), [], "no request to another host");
  assert.deepEqual(errors, [], "no console errors (blocked scripts or styles)");
  await context.close();
});

test("the guide reads in English and Russian and loads nothing from elsewhere", async () => {
  const { page, requests, errors, context } = await recordingPage();
  await page.goto(`${server.base}/docs`);
  await page.getByRole("heading", { level: 1, name: "latchkey for developers" }).waitFor();
  const english = await page.locator("pre.example").count();
  assert.ok(english >= 30, `examples: ${english}`);
  const first = await page.locator("#example-discovery").innerText();
  assert.equal(first.trim(), `curl ${server.base}/.well-known/openid-configuration`, "examples use this server's issuer");
  await page.getByRole("link", { name: "Русский" }).click();
  await page.getByRole("heading", { level: 1, name: "latchkey для разработчиков" }).waitFor();
  assert.equal(await page.locator("pre.example").count(), english, "the same examples in Russian");
  await screenshot(page, "guide-ru");
  assert.deepEqual(foreign(requests), []);
  assert.deepEqual(errors, []);
  await context.close();
});
