// The operator runs the platform from /admin: logs in with the token, turns a market on,
// overrides a merchant's fee, checks the books, and finds the kill switch guarded.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { useDemo, phone, operatorLogIn, artifacts } from "./harness.mjs";

const ctx = useDemo();

async function adminApi(path) {
  const r = await fetch(ctx.server.url + "/api/v1" + path, { headers: { authorization: "Bearer " + ctx.server.adminToken } });
  return r.json();
}

test("the operator turns GB on, overrides a fee and sees the ledger balanced", async () => {
  const page = await phone(ctx.browser);
  await page.goto(ctx.server.url + "/admin");
  // A wrong token is refused beside the field.
  await page.getByLabel("Operator token").fill("not-the-token");
  await page.getByRole("button", { name: "Log in to the console" }).click();
  assert.match(await page.locator("#token-error").innerText(), /not the operator token/);
  await operatorLogIn(page, ctx.server);

  // Turn GB on beside the US.
  const countries = page.getByLabel("Countries (ISO codes, comma separated)");
  await countries.fill("US, GB");
  await page.getByRole("button", { name: "Save rollout" }).click();
  await page.waitForURL(/\/admin/);
  assert.deepEqual((await adminApi("/admin/flags/buy_button")).countries, ["US", "GB"]);

  // A fee override for the first demo merchant.
  const link = page.locator("ul.merchants a").first();
  const merchantId = (await link.getAttribute("href")).split("/").pop();
  await page.getByLabel("Merchant id").fill(merchantId);
  await page.getByLabel("Its fee (basis points)").fill("250");
  await page.getByRole("button", { name: "Save commission" }).click();
  await page.waitForURL(/\/admin/);
  assert.equal((await adminApi("/admin/fees")).merchants[merchantId], 250);
  assert.match(await page.locator("table.overrides").innerText(), new RegExp(merchantId));

  // Pay merchants now: whatever the demo owes them is paid, and the books still balance.
  await page.getByRole("button", { name: "Run payouts now" }).click();
  assert.match(await page.locator("main").innerText(), /payouts? paid|Nothing to pay/);
  const payouts = await adminApi("/admin/payouts");
  assert.equal(await page.locator("table.payouts-history tbody tr").count(), Math.max(payouts.data.length, 1));

  // The books balance; the kill switch wants its confirmation before it acts.
  assert.match(await page.locator("ul.totals").innerText(), /balanced|No money has moved yet/);
  await page.getByRole("button", { name: "Kill switch: turn Buy off" }).click();
  assert.match(await page.locator("#confirm-error").innerText(), /Tick the box/);
  assert.equal((await adminApi("/admin/flags/buy_button")).enabled, true);
  await page.getByLabel("Yes, remove Buy for every shopper now").check();
  await page.getByRole("button", { name: "Kill switch: turn Buy off" }).click();
  await page.waitForURL(/\/admin/);
  assert.equal((await adminApi("/admin/flags/buy_button")).enabled, false);
  assert.match(await page.locator("#rollout-state").innerText(), /off everywhere/);
  assert.match(await page.locator("table.audit").innerText(), /flag\.buy_button[\s\S]*fees\.set/);
  await page.screenshot({ path: join(artifacts, "admin-console.png"), fullPage: true });
  await page.context().close();
});
