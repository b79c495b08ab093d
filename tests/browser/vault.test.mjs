// Saved card and address: the second purchase is one tap; settings manage the vault.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { useDemo, phone, artifacts } from "./harness.mjs";

const ctx = useDemo();

test("buy once saving the card, then again with one tap", async () => {
  const page = await phone(ctx.browser);
  await page.goto(ctx.server.url + "/signup");
  await page.getByLabel("Handle").fill("repeat");
  await page.getByLabel("E-mail").fill("repeat@example.com");
  await page.getByLabel("Password").fill("correct horse battery");
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.waitForURL(ctx.server.url + "/");
  await page.goto(ctx.server.url + "/u/acme");
  await page.getByRole("button", { name: "Follow" }).click();
  await page.goto(ctx.server.url + "/");

  // First purchase: new card and address, "save for next time".
  const card = page.locator(".buy-card", { hasText: "Buyline Tee" });
  await card.getByRole("link", { name: "Buy", exact: true }).click();
  const sheet = page.locator("dialog#buy-dialog");
  await sheet.waitFor();
  await sheet.getByLabel("Full name").fill("Grace Hopper");
  await sheet.getByLabel("Address", { exact: true }).fill("9 Harbor Way");
  await sheet.getByLabel("City").fill("Arlington");
  await sheet.getByLabel("State / county").fill("VA");
  await sheet.getByLabel("ZIP / postcode").fill("22201");
  await sheet.getByLabel("Card number").fill("4242424242424242");
  await sheet.getByLabel("Exp. month").fill("12");
  await sheet.getByLabel("Exp. year").fill("2030");
  await sheet.getByLabel("CVC").fill("123");
  await sheet.getByLabel(/Save this card and address/).check();
  await sheet.getByRole("button", { name: /Confirm and pay/ }).click();
  await page.waitForURL(/\/orders\/ord_/);
  assert.equal(await page.locator("#order-status").innerText(), "Paid");

  // Second purchase: the saved card and address are chosen; Confirm is the only tap.
  await page.goto(ctx.server.url + "/");
  await card.getByRole("link", { name: "Buy", exact: true }).click();
  await sheet.waitFor();
  assert.equal(await sheet.locator("input[name=payment_choice]:checked").getAttribute("value").then((v) => v.startsWith("pm_")), true);
  assert.equal(await sheet.locator("input[name=address_choice]:checked").getAttribute("value").then((v) => v.startsWith("addr_")), true);
  assert.equal(await sheet.getByLabel("Card number").isVisible(), false, "no card fields to fill");
  assert.match(await sheet.locator(".saved-choice").first().innerText(), /•••• 4242|Harbor/);
  await page.screenshot({ path: join(artifacts, "one-tap-sheet.png") });
  await sheet.getByRole("button", { name: /Confirm and pay/ }).click();
  await page.waitForURL(/\/orders\/ord_/);
  assert.equal(await page.locator("#order-status").innerText(), "Paid");
  assert.match(await page.locator("main").innerText(), /Visa ending 4242/);
  assert.match(await page.locator("main").innerText(), /9 Harbor Way/);

  // Settings show the card masked, and delete it.
  await page.goto(ctx.server.url + "/settings");
  const saved = page.locator(".saved-card");
  assert.match(await saved.innerText(), /Visa •••• 4242/);
  assert.doesNotMatch(await page.content(), /4242424242424242/);
  await saved.getByRole("button", { name: "Delete" }).click();
  await page.waitForURL(ctx.server.url + "/settings");
  assert.equal(await page.locator(".saved-card").count(), 0);
  await page.context().close();
});
