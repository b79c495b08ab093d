// Buying from the feed, as a shopper would: the sheet over the timeline, declines, 3-D Secure.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { useDemo, phone, logIn, artifacts } from "./harness.mjs";

const ctx = useDemo();

async function fillAddress(scope) {
  await scope.getByLabel("Full name").fill("Ada Lovelace");
  await scope.getByLabel("Address", { exact: true }).fill("1 Market St");
  await scope.getByLabel("City").fill("San Francisco");
  await scope.getByLabel("State / county").fill("CA");
  await scope.getByLabel("ZIP / postcode").fill("94103");
}

async function fillCard(scope, number) {
  await scope.getByLabel("Card number").fill(number);
  await scope.getByLabel("Exp. month").fill("12");
  await scope.getByLabel("Exp. year").fill("2030");
  await scope.getByLabel("CVC").fill("123");
}

async function teeSheet(page) {
  const card = page.locator("article.post", { hasText: "The Buyline Tee is here" });
  const post = await card.getAttribute("data-post-id");
  return post;
}

test("buy the T-shirt in M / red from the timeline with a new card and address", async () => {
  const page = await phone(ctx.browser);
  await logIn(page, ctx.server.url, ctx.server.demo.shopper_handle, ctx.server.demo.shopper_password);
  const card = page.locator(".buy-card", { hasText: "Buyline Tee" });
  await card.getByRole("link", { name: "Buy", exact: true }).click();
  const dialog = page.locator("dialog#buy-dialog");
  await dialog.waitFor();
  assert.equal(page.url(), ctx.server.url + "/", "the sheet opens over the timeline");
  // L in blue is sold out: picking L disables blue.
  await dialog.locator("input[name=opt_size][value=L]").check();
  assert.equal(await dialog.locator("input[name=opt_colour][value=blue]").isDisabled(), true);
  await dialog.locator("input[name=opt_size][value=M]").check();
  await dialog.locator("input[name=opt_colour][value=red]").check();
  await fillAddress(dialog);
  await fillCard(dialog, "4242 4242 4242 4242");
  assert.equal(await dialog.locator("td[data-total=total]").innerText(), "$30.00");
  await page.screenshot({ path: join(artifacts, "buy-sheet.png") });
  await dialog.getByRole("button", { name: /Confirm and pay/ }).click();
  await page.waitForURL(/\/orders\/ord_/);
  assert.match(await page.locator(".banner").innerText(), /Thank you/);
  assert.equal(await page.locator("#order-status").innerText(), "Paid");
  assert.match(await page.locator("main").innerText(), /1 × Buyline Tee \(red \/ M\)/);
  assert.doesNotMatch(await page.content(), /4242 4242 4242 4242|4242424242424242/);
  await page.screenshot({ path: join(artifacts, "order-confirmation.png"), fullPage: true });
  await page.context().close();
});

test("a declined card says why, keeps the address, and another card then pays", async () => {
  const page = await phone(ctx.browser);
  await logIn(page, ctx.server.url, ctx.server.demo.shopper_handle, ctx.server.demo.shopper_password);
  const post = await teeSheet(page);
  await page.goto(`${ctx.server.url}/buy/${post}`);
  await fillAddress(page);
  await fillCard(page, "4000000000000002");
  await page.getByRole("button", { name: /Confirm and pay/ }).click();
  await page.locator("#card_number-error").waitFor();
  assert.match(await page.locator("#card_number-error").innerText(), /declined/);
  assert.equal(await page.getByLabel("City").inputValue(), "San Francisco");
  assert.equal(await page.getByLabel("Card number").inputValue(), "", "the card number is not echoed back");
  await fillCard(page, "5555555555554444");
  await page.getByRole("button", { name: /Confirm and pay/ }).click();
  await page.waitForURL(/\/orders\/ord_/);
  assert.equal(await page.locator("#order-status").innerText(), "Paid");
  await page.context().close();
});

test("the 3-D Secure card goes through its challenge", async () => {
  const page = await phone(ctx.browser);
  await logIn(page, ctx.server.url, ctx.server.demo.shopper_handle, ctx.server.demo.shopper_password);
  const post = await teeSheet(page);
  await page.goto(`${ctx.server.url}/buy/${post}`);
  await fillAddress(page);
  await fillCard(page, "4000002500003155");
  await page.getByRole("button", { name: /Confirm and pay/ }).click();
  await page.waitForURL(/\/test-processor\/challenge\/pi_/);
  await page.getByRole("button", { name: "Complete authentication" }).click();
  await page.waitForURL(/\/orders\/ord_/);
  assert.equal(await page.locator("#order-status").innerText(), "Paid");
  await page.context().close();
});

test("a double-tapped Confirm without JavaScript makes one order", async () => {
  const context = await ctx.browser.newContext({ javaScriptEnabled: false, viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  await logIn(page, ctx.server.url, ctx.server.demo.shopper_handle, ctx.server.demo.shopper_password);
  await page.goto(ctx.server.url + "/orders");
  const before = await page.locator(".order-row").count();
  const post = await teeSheet(await (async () => { await page.goto(ctx.server.url + "/"); return page; })());
  await page.goto(`${ctx.server.url}/buy/${post}`);
  await fillAddress(page);
  await fillCard(page, "4242424242424242");
  await page.getByRole("button", { name: /Confirm and pay/ }).dblclick();
  await page.waitForURL(/\/orders\/ord_/);
  await page.goto(ctx.server.url + "/orders");
  assert.equal(await page.locator(".order-row").count(), before + 1);
  await context.close();
});

test("a shopper in GB sees no Buy button", async () => {
  const page = await phone(ctx.browser);
  await page.goto(ctx.server.url + "/signup");
  await page.getByLabel("Handle").fill("londoner");
  await page.getByLabel("E-mail").fill("londoner@example.com");
  await page.getByLabel("Password").fill("correct horse battery");
  await page.getByLabel("Country").fill("GB");
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.waitForURL(ctx.server.url + "/");
  await page.goto(ctx.server.url + "/u/acme");
  await page.getByRole("button", { name: "Follow" }).click();
  await page.goto(ctx.server.url + "/");
  const post = page.locator("article.post", { hasText: "The Buyline Tee is here" });
  await post.waitFor();
  assert.equal(await post.getByRole("link", { name: "Buy", exact: true }).count(), 0);
  assert.equal(await post.getByRole("link", { name: "View product" }).count(), 1);
  // And the sheet refuses them too.
  await page.goto(`${ctx.server.url}/buy/${await post.getAttribute("data-post-id")}`);
  assert.match(await page.locator("main").innerText(), /not available in your market/);
  await page.context().close();
});
