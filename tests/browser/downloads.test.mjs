// Digital delivery, as a shopper would: buy the demo print from the timeline, download it
// from the order page, get a fresh link there.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { useDemo, phone, logIn, artifacts } from "./harness.mjs";

const ctx = useDemo();

test("buy the demo print and download it from the order page", async () => {
  const page = await phone(ctx.browser);
  await logIn(page, ctx.server.url, ctx.server.demo.shopper_handle, ctx.server.demo.shopper_password);
  const card = page.locator(".buy-card", { hasText: "Desert Dawn" });
  await card.getByRole("link", { name: "Buy", exact: true }).click();
  const dialog = page.locator("dialog#buy-dialog");
  await dialog.waitFor();
  await dialog.getByLabel("Card number").fill("4242 4242 4242 4242");
  await dialog.getByLabel("Exp. month").fill("12");
  await dialog.getByLabel("Exp. year").fill("2030");
  await dialog.getByLabel("CVC").fill("123");
  await dialog.getByRole("button", { name: /Confirm and pay/ }).click();
  await page.waitForURL(/\/orders\/ord_/);
  assert.equal(await page.locator("#order-status").innerText(), "Paid");

  const link = page.getByRole("link", { name: /Download Desert Dawn/ });
  const href = await link.getAttribute("href");
  assert.match(href, /\/api\/v1\/downloads\//);
  const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
  assert.equal(download.suggestedFilename(), "desert-dawn.png");
  const file = await page.request.get(href);
  assert.equal(file.status(), 200);
  assert.deepEqual([...(await file.body()).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  await page.reload();
  assert.match(await page.locator("section.download").innerText(), /3 downloads left/);
  await page.screenshot({ path: join(artifacts, "order-download.png"), fullPage: true });

  await page.getByRole("button", { name: "Get a fresh link" }).click();
  await page.waitForURL(/\/orders\/ord_/);
  assert.match(await page.locator("section.download").innerText(), /5 downloads left/);
  assert.notEqual(await page.getByRole("link", { name: /Download Desert Dawn/ }).getAttribute("href"), href);
  await page.context().close();
});
