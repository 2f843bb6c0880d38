// Starts a real latchkey server on a fresh SQLite database and a real Chromium for each test.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const root = resolve(import.meta.dirname, "../..");
export const BIN = process.env.LATCHKEY_BIN || join(process.env.CARGO_TARGET_DIR || join(root, "target"), "debug", "latchkey");
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const SHOTS = join(import.meta.dirname, "screenshots");

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** A latchkey server with one user, `email`/`password`, already created through the CLI;
 * `settings` are extra `LATCHKEY_*` variables. */
export async function startLatchkey({ email = "dev@example.com", password = "correct horse battery", admin = false, settings = {} } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "latchkey-browser-"));
  const port = await freePort();
  const env = {
    PATH: process.env.PATH,
    LATCHKEY_DATABASE_URL: `sqlite://${join(dir, "latchkey.db")}?mode=rwc`,
    LATCHKEY_BIND: `127.0.0.1:${port}`,
    LATCHKEY_RATE_LIMITS: "off",
    ...settings,
  };
  const args = ["user", "create", "--email", email, "--name", "Dev Person"];
  if (admin) args.push("--admin");
  const created = spawnSync(BIN, args, { env, input: `${password}\n`, encoding: "utf8" });
  if (created.status !== 0) throw new Error(`user create failed: ${created.stderr}`);

  const child = spawn(BIN, ["serve"], { env, stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`latchkey did not start:\n${log}`)), 30_000);
    child.stderr.on("data", (chunk) => {
      log += chunk;
      if (log.includes("latchkey is listening")) {
        clearTimeout(timer);
        ok();
      }
    });
    child.on("exit", (code) => fail(new Error(`latchkey exited with ${code}:\n${log}`)));
  });
  return {
    base: `http://127.0.0.1:${port}`,
    email,
    password,
    /** Run a `latchkey` CLI command against this server's database; returns its parsed JSON. */
    cli(args, input = "") {
      const out = spawnSync(BIN, [...args, "--json"], { env, input, encoding: "utf8" });
      if (out.status !== 0) throw new Error(`latchkey ${args.join(" ")} failed: ${out.stderr}`);
      return JSON.parse(out.stdout);
    },
    stop() {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

export async function signIn(page, server) {
  await page.goto(`${server.base}/login`);
  await page.getByLabel("Email", { exact: true }).fill(server.email);
  await page.getByLabel("Password", { exact: true }).fill(server.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${server.base}/`);
}

export async function screenshot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** A tiny app back end on 127.0.0.1 that only answers its OAuth callback. */
export async function startCallbackServer() {
  const { createServer: createHttpServer } = await import("node:http");
  const server = createHttpServer((req, res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("callback received");
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}/callback`, close: () => server.close() };
}
