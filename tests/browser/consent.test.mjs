// Authorizing an unverified app in a real browser, in English and in Russian: sign in, see the
// warning on the consent page, Authorize, land on the app's redirect URI with code, state, iss.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startLatchkey, launchBrowser, startCallbackServer, screenshot } from "./harness.mjs";

let server;
let browser;
let callback;
let client;

before(async () => {
  server = await startLatchkey({ email: "reader@example.com" });
  server.cli(["user", "create", "--email", "maker@example.com", "--name", "Mara Maker"], "another long password\n");
  callback = await startCallbackServer();
  client = server.cli([
    "client", "create", "--owner", "maker@example.com", "--name", "Hours Widget",
    "--redirect-uri", callback.url, "--scopes", "profile read",
  ]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  callback?.close();
  server?.stop();
});

function authorizeUrl(state) {
  const q = new URLSearchParams({
    response_type: "code",
    client_id: client.client_id,
    redirect_uri: callback.url,
    scope: "profile read",
    state,
    // The same user runs both languages: ask for the consent page even when already granted.
    prompt: "consent",
  });
  return `${server.base}/oauth/authorize?${q}`;
}

for (const lang of [
  {
    name: "English",
    locale: "en-US",
    email: "Email",
    password: "Password",
    signIn: "Sign in",
    warning: "This app has not been verified",
    authorize: "Authorize",
    signedInAs: "Signed in as reader@example.com",
  },
  {
    name: "Russian",
    locale: "ru-RU",
    email: "Электронная почта",
    password: "Пароль",
    signIn: "Войти",
    warning: "Это приложение не проверено",
    authorize: "Разрешить",
    signedInAs: "Вы вошли как reader@example.com",
  },
]) {
  test(`authorize an unverified app (${lang.name})`, async () => {
    const context = await browser.newContext({ locale: lang.locale });
    const page = await context.newPage();
    const state = `state-${lang.locale}`;
    await page.goto(authorizeUrl(state));

    // Not signed in: the sign-in page first, then back to the request.
    await page.getByLabel(lang.email, { exact: true }).fill(server.email);
    await page.getByLabel(lang.password, { exact: true }).fill(server.password);
    await page.getByRole("button", { name: lang.signIn }).click();

    await page.getByText(lang.warning).waitFor();
    const text = await page.locator("main").innerText();
    assert.ok(text.includes("Hours Widget"), "the app's name");
    assert.ok(text.includes("Mara Maker"), "the owner's name");
    assert.ok(text.includes(lang.signedInAs));
    await screenshot(page, `consent-${lang.locale}`);

    await page.getByRole("button", { name: lang.authorize }).click();
    await page.waitForURL((url) => url.href.startsWith(callback.url));
    const landed = new URL(page.url());
    assert.match(landed.searchParams.get("code"), /^lk_ac_[0-9A-Za-z]{49}$/);
    assert.equal(landed.searchParams.get("state"), state);
    assert.equal(landed.searchParams.get("iss"), server.base);
    await context.close();
  });
}
