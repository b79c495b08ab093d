// A new user runs a shop from the pages alone: opens it, creates a product with two
// options and stock, edits a variant's stock, posts it with the shop's composer — and a
// shopper buys it from the feed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { useDemo, phone, logIn, artifacts } from "./harness.mjs";

const ctx = useDemo();

test("a new user opens a shop, lists a product and sells it from a post", async () => {
  const page = await phone(ctx.browser);
  const base = ctx.server.url;
  await page.goto(base + "/signup");
  await page.getByLabel("Handle").fill("potter");
  await page.getByLabel("E-mail").fill("potter@example.com");
  await page.getByLabel("Password").fill("correct horse battery");
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.waitForURL(base + "/");

  await page.goto(base + "/merchant");
  await page.getByLabel("Shop name").fill("Potter's Wheel");
  await page.getByLabel("Shop handle").fill("potterswheel");
  await page.getByLabel("Kind of shop").selectOption("artist");
  await page.getByRole("button", { name: "Open my shop" }).click();
  assert.match(await page.getByLabel("API key").inputValue(), /^sk_/);
  assert.match(await page.getByLabel("Webhook signing secret").inputValue(), /^whsec_/);
  await page.getByRole("link", { name: "Add a first product" }).click();

  await page.getByLabel("Product name").fill("Stoneware mug");
  await page.getByLabel("Option 1 name").fill("size");
  await page.getByLabel("Option 1 values, comma separated").fill("small, large");
  await page.getByLabel("Option 2 name").fill("glaze");
  await page.getByLabel("Option 2 values, comma separated").fill("celadon, tenmoku");
  await page.getByLabel(/^Price of each variant/).fill("not a price");
  await page.getByLabel("Stock of each variant (empty for unlimited)").fill("4");
  await page.getByLabel("Shipping price").fill("6.00");
  await page.getByRole("button", { name: "Create product" }).click();
  // The mistake is shown beside its field and everything typed is still there.
  assert.match(await page.locator("#price-error").innerText(), /amount like 25\.00/);
  assert.equal(await page.getByLabel("Option 2 values, comma separated").inputValue(), "celadon, tenmoku");
  await page.getByLabel(/^Price of each variant/).fill("32.00");
  await page.getByRole("button", { name: "Create product" }).click();
  await page.waitForURL(/\/merchant\/products\/prod_/);
  assert.equal(await page.locator("li.variant-edit").count(), 4);

  // Large tenmoku sells out: stock edited in place.
  await page.getByLabel("Stock of glaze: tenmoku, size: large (empty for unlimited)").fill("0");
  await page.getByRole("button", { name: "Save glaze: tenmoku, size: large" }).click();
  await page.waitForURL(/#variant-var_/);
  assert.equal(await page.getByLabel("Stock of glaze: tenmoku, size: large (empty for unlimited)").inputValue(), "0");
  await page.screenshot({ path: join(artifacts, "shop-product.png"), fullPage: true });

  // The shop posts it.
  await page.goto(base + "/merchant");
  await page.getByLabel("Post text").fill("Fresh from the kiln");
  await page.getByLabel("Attach a product (adds a Buy button)").selectOption({ label: "Stoneware mug" });
  await page.getByRole("button", { name: "Post", exact: true }).click();
  await page.waitForURL(/\/merchant\?m=mer_/);
  await page.context().close();

  // A shopper who follows the shop sees the buy card in the feed.
  const shopper = await phone(ctx.browser);
  await logIn(shopper, base, ctx.server.demo.shopper_handle, ctx.server.demo.shopper_password);
  await shopper.goto(base + "/u/potterswheel");
  await shopper.getByRole("button", { name: "Follow" }).click();
  await shopper.goto(base + "/");
  const card = shopper.locator(".buy-card", { hasText: "Stoneware mug" });
  await card.waitFor();
  assert.match(await card.innerText(), /\$32\.00/);
  await shopper.context().close();
});
