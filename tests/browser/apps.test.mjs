// My OAuth Apps in a real browser: sign in, create an app, see the secret once, reset it, edit it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startLatchkey, launchBrowser, signIn, screenshot } from "./harness.mjs";

let server;
let browser;

before(async () => {
  server = await startLatchkey();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  server?.stop();
});

test("create an app, see its secret once, reset it and edit it", async () => {
  const context = await browser.newContext({ locale: "en-US" });
  const page = await context.newPage();
  await signIn(page, server);

  await page.getByRole("link", { name: "My OAuth Apps" }).click();
  await page.getByRole("link", { name: "New Application" }).click();
  await page.getByLabel("Name", { exact: true }).fill("Browser Test App");
  await page.getByLabel("Homepage URL", { exact: true }).fill("https://browser.example");
  await page.getByLabel("Redirect URIs", { exact: true }).fill("https://browser.example/callback\nhttp://127.0.0.1:8765/callback");
  await page.getByRole("checkbox", { name: /^read/ }).check();
  assert.equal(await page.getByRole("checkbox", { name: "Confidential" }).isChecked(), true);
  await page.getByRole("button", { name: "Create application" }).click();

  await page.getByText("Copy the client secret now. You won't see it again.").waitFor();
  const secret = await page.getByLabel("Client secret", { exact: true }).inputValue();
  const clientId = await page.getByLabel("Client ID", { exact: true }).inputValue();
  assert.match(secret, /^lk_cs_[0-9A-Za-z]{49}$/);
  assert.match(clientId, /^[0-9a-f]{32}$/);
  assert.equal(await page.getByRole("button", { name: "Copy" }).count(), 2, "copy controls for id and secret");
  await screenshot(page, "app-created");

  // Visiting the app again shows no secret.
  const appUrl = new URL(await page.getByRole("link", { name: "Edit" }).getAttribute("href"), server.base)
    .href.replace(/\/edit$/, "");
  await page.goto(appUrl);
  assert.equal(await page.getByLabel("Client secret", { exact: true }).count(), 0);
  assert.equal(await page.locator("body").innerText().then((t) => t.includes(secret)), false);
  assert.equal(await page.getByLabel("Client ID", { exact: true }).inputValue(), clientId);

  // Reset: a new secret, shown once.
  await page.getByRole("button", { name: "Reset secret" }).click();
  await page.getByText("A new client secret was issued. The old one no longer works.").waitFor();
  const newSecret = await page.getByLabel("Client secret", { exact: true }).inputValue();
  assert.match(newSecret, /^lk_cs_/);
  assert.notEqual(newSecret, secret);

  // Edit: rename and drop a redirect URI.
  await page.getByRole("link", { name: "Edit" }).click();
  assert.equal(await page.getByLabel("Name", { exact: true }).inputValue(), "Browser Test App");
  await page.getByLabel("Name", { exact: true }).fill("Renamed In Browser");
  await page.getByLabel("Redirect URIs", { exact: true }).fill("https://browser.example/callback");
  await page.getByRole("button", { name: "Save changes" }).click();
  await page.waitForURL(appUrl);
  await page.getByRole("heading", { name: "Renamed In Browser" }).waitFor();
  const text = await page.locator("body").innerText();
  assert.ok(!text.includes("127.0.0.1:8765"), "the removed redirect URI is gone");
  await screenshot(page, "app-edited");

  // The list shows it.
  await page.getByRole("link", { name: "My OAuth Apps" }).first().click();
  await page.getByRole("link", { name: "Renamed In Browser" }).waitFor();
  await context.close();
});

test("a bad redirect URI is reported beside the field and the form keeps what was typed", async () => {
  const context = await browser.newContext({ locale: "en-US" });
  const page = await context.newPage();
  await signIn(page, server);
  await page.goto(`${server.base}/oauth/applications/new`);
  await page.getByLabel("Name", { exact: true }).fill("Typed Name");
  await page.getByLabel("Redirect URIs", { exact: true }).fill("http://not-loopback.example/cb");
  await page.getByRole("button", { name: "Create application" }).click();
  await page.getByText("Plain http is allowed only for 127.0.0.1, [::1] and localhost; use https.").waitFor();
  assert.equal(await page.getByLabel("Name", { exact: true }).inputValue(), "Typed Name");
  assert.equal(await page.getByLabel("Redirect URIs", { exact: true }).inputValue(), "http://not-loopback.example/cb");
  await context.close();
});
