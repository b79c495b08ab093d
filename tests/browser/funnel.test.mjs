// The experiment funnel on the shop's pages: after a shopper sees and buys the tee from the
// feed, the owner opens the post's funnel from /merchant and finds the chart and its table.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { useDemo, phone, logIn, artifacts } from "./harness.mjs";

const ctx = useDemo();

async function api(path, token, body) {
  const r = await fetch(ctx.server.url + "/api/v1" + path, {
    method: body ? "POST" : "GET",
    headers: { "content-type": "application/json", ...(token ? { authorization: "Bearer " + token } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return r.json();
}

test("the owner reads a post's funnel as a chart with a table beside it", async () => {
  // A shopper sees the tee in the feed and buys it from its post.
  const { token } = await api("/sessions", null, { login: ctx.server.demo.shopper_handle, password: ctx.server.demo.shopper_password });
  const tl = await api("/timeline", token);
  const tee = tl.data.find((i) => i.buy && i.buy.name === "Buyline Tee");
  const product = await api("/products/" + tee.buy.product_id);
  const variant = product.variants.find((v) => v.available);
  const order = await api("/orders", token, {
    lines: [{ variant_id: variant.id }],
    post_id: tee.post.id,
    shipping_address: { name: "Ada", line1: "1 Market St", city: "San Francisco", region: "CA", postal_code: "94103", country: "US" },
    payment: { card: { number: "4242424242424242", exp_month: 12, exp_year: 2030, cvc: "123" } },
  });
  assert.equal(order.status, "paid");
  assert.equal(order.post_id, tee.post.id);

  const page = await phone(ctx.browser);
  await logIn(page, ctx.server.url, ctx.server.demo.owner_handle, ctx.server.demo.owner_password);
  await page.goto(ctx.server.url + "/merchant");
  const link = page.locator(`a[href^="/merchant/funnel/${tee.post.id}"]`);
  await link.click();
  await page.waitForURL(/\/merchant\/funnel\/post_/);
  const chart = page.getByRole("img", { name: /Funnel: Buy button against the plain link/ });
  assert.ok(await chart.isVisible(), "the chart is drawn");
  const table = page.getByRole("table", { name: "The experiment in numbers" });
  assert.ok(await table.isVisible(), "the table is beside it");
  const buyers = table.getByRole("row", { name: /Buyers/ });
  // The order is exact at once; impressions follow within a second or so.
  assert.match(await buyers.innerText(), /Buyers\s+1\s+0/);
  assert.match(await page.locator(".verdict").innerText(), /not enough data yet|Buy converts/);
  await page.screenshot({ path: join(artifacts, "merchant-funnel.png"), fullPage: true });
  await page.context().close();
});
