// Starts a real `buyline serve` on a temp data dir and a headless Chromium to drive it.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";
import { before, after } from "node:test";
import { mkdirSync } from "node:fs";

const root = resolve(import.meta.dirname, "../..");
export const artifacts = join(root, "tests/browser/artifacts");

export async function startServer({ demo = true } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "buyline-browser-"));
  const bin = process.env.BUYLINE_BIN || join(root, "target/debug/buyline");
  const args = ["serve", "--listen", "127.0.0.1:0", "--data-dir", dir];
  if (!demo) args.push("--no-demo");
  const env = { ...process.env };
  delete env.DATABASE_URL; // the browser story runs on the embedded default
  if (process.env.BUYLINE_BROWSER_DATABASE_URL) env.DATABASE_URL = process.env.BUYLINE_BROWSER_DATABASE_URL;
  const proc = spawn(bin, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  proc.stderr.on("data", (d) => { log += d; });
  const url = await new Promise((ok, fail) => {
    let out = "";
    const timer = setTimeout(() => fail(new Error("server did not start:\n" + out + log)), 30000);
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/running at (http:\/\/\S+)/);
      if (m) { clearTimeout(timer); ok(m[1]); }
    });
    proc.on("exit", (code) => fail(new Error(`server exited ${code}:\n${out}${log}`)));
  });
  const demoCreds = demo ? JSON.parse(readFileSync(join(dir, "demo-credentials.json"), "utf8")) : null;
  return {
    url,
    demo: demoCreds,
    log: () => log,
    async stop() {
      proc.kill("SIGTERM");
      await new Promise((r) => proc.once("exit", r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function startBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
    ],
  });
}

/// A phone-sized page: the product is mobile-first.
export async function phone(browser) {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1 });
  return context.newPage();
}

export async function logIn(page, base, login, password) {
  await page.goto(base + "/login");
  await page.getByLabel("Handle or e-mail").fill(login);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL(base + "/");
}

/// One demo server and one browser for the tests of a file; `ctx.server`, `ctx.browser`.
export function useDemo() {
  const ctx = {};
  before(async () => {
    mkdirSync(artifacts, { recursive: true });
    ctx.server = await startServer();
    ctx.browser = await startBrowser();
  });
  after(async () => {
    await ctx.browser?.close();
    await ctx.server?.stop();
  });
  return ctx;
}
