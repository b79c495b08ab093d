// Starts a real `buyline serve` on a temp data dir and a headless Chromium to drive it.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";
import { before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

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
  // The operator token, so the tests can log in to /admin as the operator would.
  const adminToken = "op-test-" + randomBytes(16).toString("hex");
  env.BUYLINE_ADMIN_TOKEN = adminToken;
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
    adminToken,
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

/// A desktop-sized page.
export async function desktop(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
  return context.newPage();
}

/// The page passes axe-core with no serious or critical violation, and nothing on it is
/// wider than the viewport (no sideways scrolling on a phone).
export async function assertAccessible(page, label) {
  // Evaluated through the DevTools protocol, which the pages' Content-Security-Policy (no
  // inline scripts) does not apply to; the policy stays on for everything else.
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`);
  });
  assert.deepEqual(result, [], `${label}: accessibility violations`);
  const overflow = await page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const wide = [...document.querySelectorAll("body *")]
      .filter((el) => el.getBoundingClientRect().right > width + 1 && getComputedStyle(el).position !== "fixed")
      .filter((el) => !el.closest("table, pre, .scroll-x"))
      .slice(0, 5)
      .map((el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (el.className ? "." + String(el.className).split(" ")[0] : ""));
    return { scroll: document.documentElement.scrollWidth > width + 1, wide };
  });
  assert.ok(!overflow.scroll && overflow.wide.length === 0, `${label}: wider than the viewport: ${overflow.wide.join(", ")}`);
}

/// The operator logs in to /admin with the server's token.
export async function operatorLogIn(page, server) {
  await page.goto(server.url + "/admin");
  await page.getByLabel("Operator token").fill(server.adminToken);
  await page.getByRole("button", { name: "Log in to the console" }).click();
  await page.waitForURL(server.url + "/admin");
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
