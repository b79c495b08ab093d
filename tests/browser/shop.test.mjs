// The shop and the platform run from pages alone, at a phone and at a desktop size: a new
// user opens a shop, creates a product with two options and stock, uploads its image,
// posts it with the composer and promotes it; a second user buys it from the feed; the
// merchant sees the order, ships it with tracking, reads the post's funnel chart and the
// balance; the operator turns GB on, overrides the shop's fee, runs a payout and sees the
// trial balance at zero.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { useDemo, phone, desktop, operatorLogIn, artifacts } from "./harness.mjs";

const ctx = useDemo();
// A 1×1 PNG: an image by its bytes, as the upload checks.
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
  "base64",
);

async function signUp(page, base, handle) {
  await page.goto(base + "/signup");
  await page.getByLabel("Handle").fill(handle);
  await page.getByLabel("E-mail").fill(handle + "@example.com");
  await page.getByLabel("Password").fill("correct horse battery");
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.waitForURL(base + "/");
}

for (const [size, open] of [["phone", phone], ["desktop", desktop]]) {
  test(`a shop is opened, sells from the feed and is paid out (${size})`, async () => {
    const base = ctx.server.url;
    const shopHandle = `potter${size}`;
    const page = await open(ctx.browser);
    await signUp(page, base, `maker${size}`);

    // Open the shop; its secrets are shown once.
    await page.goto(base + "/merchant");
    await page.getByLabel("Shop name").fill(`Potter's Wheel ${size}`);
    await page.getByLabel("Shop handle").fill(shopHandle);
    await page.getByLabel("Kind of shop").selectOption("artist");
    await page.getByRole("button", { name: "Open my shop" }).click();
    assert.match(await page.getByLabel("API key").inputValue(), /^sk_/);
    assert.match(await page.getByLabel("Webhook signing secret").inputValue(), /^whsec_/);
    await page.getByRole("link", { name: "Add a first product" }).click();

    // A product with two options and stock; a mistake first, shown beside its field.
    await page.getByLabel("Product name").fill("Stoneware mug");
    await page.getByLabel("Option 1 name").fill("size");
    await page.getByLabel("Option 1 values, comma separated").fill("small, large");
    await page.getByLabel("Option 2 name").fill("glaze");
    await page.getByLabel("Option 2 values, comma separated").fill("celadon, tenmoku");
    await page.getByLabel(/^Price of each variant/).fill("not a price");
    await page.getByLabel("Stock of each variant (empty for unlimited)").fill("4");
    await page.getByLabel("Shipping price").fill("6.00");
    await page.getByRole("button", { name: "Create product" }).click();
    assert.match(await page.locator("#price-error").innerText(), /amount like 25\.00/);
    assert.equal(await page.getByLabel("Option 2 values, comma separated").inputValue(), "celadon, tenmoku");
    await page.getByLabel(/^Price of each variant/).fill("32.00");
    await page.getByRole("button", { name: "Create product" }).click();
    await page.waitForURL(/\/merchant\/products\/prod_/);
    const productUrl = page.url();
    assert.equal(await page.locator("li.variant-edit").count(), 4);
    // Large tenmoku sells out: stock edited in place.
    await page.getByLabel("Stock of glaze: tenmoku, size: large (empty for unlimited)").fill("0");
    await page.getByRole("button", { name: "Save glaze: tenmoku, size: large" }).click();
    await page.waitForURL(/#variant-var_/);

    // Its image, uploaded from the shop's pages.
    await page.goto(base + "/merchant");
    await page.locator("li.shop-product").getByRole("link", { name: "Image" }).click();
    await page.locator("#image").setInputFiles({ name: "mug.png", mimeType: "image/png", buffer: PNG });
    await page.getByRole("button", { name: "Upload image" }).click();
    await page.waitForLoadState();
    const productId = productUrl.split("/merchant/products/")[1].split("?")[0];
    const product = await (await fetch(`${base}/api/v1/products/${productId}`)).json();
    assert.match(product.image_url, /\/api\/v1\/media\/[0-9a-f]{64}\.png$/);

    // The shop posts it and promotes the post.
    await page.goto(base + "/merchant");
    await page.getByLabel("Post text").fill("Fresh from the kiln");
    await page.getByLabel("Attach a product (adds a Buy button)").selectOption({ label: "Stoneware mug" });
    await page.getByRole("button", { name: "Post", exact: true }).click();
    await page.waitForURL(/\/merchant\?m=mer_/);
    const shopUrl = page.url();
    const merchantId = new URL(shopUrl).searchParams.get("m");
    await page.goto(`${base}/merchant/campaigns?m=${merchantId}`);
    await page.getByLabel("Countries (two-letter codes, separated by commas)").fill("US");
    await page.getByRole("button", { name: "Promote" }).click();
    await page.waitForLoadState();
    assert.match(await page.locator("main").innerText(), /active/);

    // A second user follows the shop and buys the mug from the feed.
    const buyer = await open(ctx.browser);
    await signUp(buyer, base, `buyer${size}`);
    await buyer.goto(`${base}/u/${shopHandle}`);
    await buyer.getByRole("button", { name: "Follow" }).click();
    await buyer.goto(base + "/");
    const post = buyer.locator("article.post", { hasText: "Fresh from the kiln" }).first();
    const card = post.locator(".buy-card");
    assert.match(await card.innerText(), /\$32\.00/);
    assert.match(await card.locator("img").first().getAttribute("src"), /\/api\/v1\/media\//);
    await post.getByRole("link", { name: "Buy", exact: true }).click();
    const dialog = buyer.locator("dialog#buy-dialog");
    await dialog.waitFor();
    for (const name of await dialog.locator("input[type=radio]").evaluateAll((els) => [...new Set(els.map((e) => e.name))])) {
      await dialog.locator(`input[type=radio][name="${name}"]:not([disabled])`).first().check();
    }
    await dialog.getByLabel("Full name").fill("Bea Buyer");
    await dialog.getByLabel("Address", { exact: true }).fill("1 Market St");
    await dialog.getByLabel("City").fill("San Francisco");
    await dialog.getByLabel("State / county").fill("CA");
    await dialog.getByLabel("ZIP / postcode").fill("94103");
    await dialog.getByLabel("Card number").fill("4242 4242 4242 4242");
    await dialog.getByLabel("Exp. month").fill("12");
    await dialog.getByLabel("Exp. year").fill("2030");
    await dialog.getByLabel("CVC").fill("123");
    await dialog.getByRole("button", { name: /Confirm and pay/ }).click();
    await buyer.waitForURL(/\/orders\/ord_/);
    assert.equal(await buyer.locator("#order-status").innerText(), "Paid");
    await buyer.context().close();

    // The merchant sees the order and ships it with tracking.
    await page.goto(shopUrl);
    const row = page.locator("tr.merchant-order").first();
    assert.match(await row.innerText(), /Stoneware mug/);
    await row.getByRole("link").click();
    await page.waitForURL(/\/merchant\/orders\/ord_/);
    await page.getByLabel("Carrier").fill("UPS");
    await page.getByLabel("Tracking number").fill("1Z999AA10123456784");
    await page.getByRole("button", { name: "Mark as shipped" }).click();
    await page.waitForURL(/\/merchant\/orders\/ord_/);
    assert.equal(await page.locator("#merchant-order-status").innerText(), "fulfilled");

    // The post's funnel chart (impressions arrive within seconds) and the balance.
    await page.goto(shopUrl);
    assert.match(await page.locator("main").innerText(), /Owed to you: \$/);
    await page.locator("ul.funnel-posts").getByRole("link", { name: "Fresh from the kiln" }).click();
    await page.waitForURL(/\/merchant\/funnel\/post_/);
    assert.equal(await page.locator(".funnel-figure svg").count(), 1);
    let table = "";
    for (let i = 0; i < 40; i++) {
      table = await page.locator("table.funnel-table").innerText();
      if (/Buyers\s+1/.test(table)) break;
      await new Promise((r) => setTimeout(r, 500));
      await page.reload();
    }
    assert.match(table, /Buyers\s+1/);
    await page.screenshot({ path: join(artifacts, `shop-funnel-${size}.png`), fullPage: true });
    await page.context().close();

    // The operator: GB on, the shop's fee overridden, a payout run, the books at zero.
    const op = await open(ctx.browser);
    await operatorLogIn(op, ctx.server);
    await op.getByLabel("Countries (ISO codes, comma separated)").fill("US, GB");
    await op.getByRole("button", { name: "Save rollout" }).click();
    await op.waitForURL(/\/admin/);
    await op.getByLabel("Merchant id").fill(merchantId);
    await op.getByLabel("Its fee (basis points)").fill("300");
    await op.getByRole("button", { name: "Save commission" }).click();
    await op.waitForURL(/\/admin/);
    assert.match(await op.locator("table.overrides").innerText(), new RegExp(merchantId));
    await op.getByLabel("Pay one merchant only (id; empty pays every merchant owed money)").fill(merchantId);
    await op.getByRole("button", { name: "Run payouts now" }).click();
    assert.match(await op.locator("main").innerText(), /1 payout paid/);
    assert.match(await op.locator("table.payouts-history").innerText(), new RegExp(merchantId));
    assert.match(await op.locator("ul.totals").innerText(), /USD: \$0\.00 \(balanced\)/);
    await op.screenshot({ path: join(artifacts, `admin-${size}.png`), fullPage: true });
    await op.context().close();
  });
}
