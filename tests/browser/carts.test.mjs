// Hashtag carts in a real browser: link the shop, reply with its cart hashtag, see the
// shop's confirmation in the thread, open the cart and buy it through the sheet.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { useDemo, phone, artifacts } from "./harness.mjs";

const ctx = useDemo();

test("link, reply with #AcmeCart, see the confirmation, open the cart, buy", async () => {
  const page = await phone(ctx.browser);
  const base = ctx.server.url;
  await page.goto(base + "/signup");
  await page.getByLabel("Handle").fill("carter");
  await page.getByLabel("E-mail").fill("carter@example.com");
  await page.getByLabel("Password").fill("correct horse battery");
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.waitForURL(base + "/");

  // Consent, from the shop's profile.
  await page.goto(base + "/u/acme");
  await page.getByRole("link", { name: /Hashtag cart: link this shop/ }).click();
  await page.waitForURL(base + "/connect/acme");
  assert.match(await page.locator("main").innerText(), /#AcmeCart/);
  await page.getByRole("button", { name: /Link my account to Acme Outfitters/ }).click();
  await page.waitForURL(base + "/connect/acme");
  assert.match(await page.locator("main").innerText(), /Linked\./);
  await page.goto(base + "/settings");
  assert.match(await page.locator(".linked-merchant").innerText(), /Acme Outfitters/);

  // Reply to the shop's post that links the tee.
  await page.goto(base + "/u/acme");
  const offer = page.locator("article.post", { hasText: "Reply #AcmeCart" });
  await offer.getByRole("link", { name: "Reply", exact: true }).click();
  await page.waitForURL(/\/posts\/post_/);
  await page.getByLabel("Your reply").fill("Yes please #AcmeCart");
  await page.getByRole("button", { name: "Reply", exact: true }).click();
  await page.waitForURL(/\/posts\/post_.*#post_/);
  const mine = page.locator(".replies article.post", { hasText: "Yes please" });
  await mine.getByRole("link", { name: "Reply", exact: true }).click();
  await page.waitForURL(/\/posts\/post_/);

  // The shop's answer arrives in the thread (off the request path: reload until it is there).
  const answer = page.locator(".replies article.post", { hasText: "Added Buyline Tee (M, red) to your cart" });
  for (let i = 0; i < 50 && (await answer.count()) === 0; i++) {
    await page.waitForTimeout(100);
    await page.reload();
  }
  assert.equal(await answer.count(), 1, "one confirmation reply");
  assert.match(await answer.locator(".author").innerText(), /@acme/);
  await page.screenshot({ path: join(artifacts, "cart-confirmation.png") });
  await answer.getByRole("link", { name: /\/cart$/ }).click();
  await page.waitForURL(base + "/cart");

  // The cart, then the normal sheet with its lines.
  const cart = page.locator("section.cart", { hasText: "Acme Outfitters" });
  assert.match(await cart.locator(".cart-item").innerText(), /Buyline Tee/);
  assert.match(await cart.innerText(), /\$25\.00/);
  await page.screenshot({ path: join(artifacts, "cart.png") });
  await cart.getByRole("button", { name: /Check out with Acme Outfitters/ }).click();
  await page.waitForURL(/\/checkouts\/chk_/);
  assert.match(await page.locator("table.lines").innerText(), /Buyline Tee/);
  await page.getByLabel("Full name").fill("Carter Lane");
  await page.getByLabel("Address", { exact: true }).fill("5 Elm St");
  await page.getByLabel("City").fill("Boston");
  await page.getByLabel("State / county").fill("MA");
  await page.getByLabel("ZIP / postcode").fill("02118");
  await page.getByLabel("Card number").fill("4242424242424242");
  await page.getByLabel("Exp. month").fill("12");
  await page.getByLabel("Exp. year").fill("2030");
  await page.getByLabel("CVC").fill("123");
  // Live totals: $25.00 + $5.00 standard shipping.
  assert.match(await page.locator("[data-total=total]").first().innerText(), /\$30\.00/);
  await page.getByRole("button", { name: /Confirm and pay/ }).click();
  await page.waitForURL(/\/orders\/ord_/);
  assert.equal(await page.locator("#order-status").innerText(), "Paid");
  assert.match(await page.locator("main").innerText(), /Buyline Tee/);

  // Bought: the cart is empty.
  await page.goto(base + "/cart");
  assert.match(await page.locator("main").innerText(), /Your cart is empty/);
  await page.context().close();
});
