// The shop owner's pages: an order arrives, is shipped with tracking; webhook settings.
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

test("the owner ships an order and the shopper sees the tracking", async () => {
  // A shopper buys the tee by API (one call).
  const { token } = await api("/sessions", null, { login: ctx.server.demo.shopper_handle, password: ctx.server.demo.shopper_password });
  const tl = await api("/timeline", token);
  const tee = tl.data.find((i) => i.buy && i.buy.name === "Buyline Tee");
  const product = await api("/products/" + tee.buy.product_id);
  const variant = product.variants.find((v) => v.available);
  const order = await api("/orders", token, {
    lines: [{ variant_id: variant.id }],
    shipping_address: { name: "Ada", line1: "1 Market St", city: "San Francisco", region: "CA", postal_code: "94103", country: "US" },
    payment: { card: { number: "4242424242424242", exp_month: 12, exp_year: 2030, cvc: "123" } },
  });
  assert.equal(order.status, "paid");

  const page = await phone(ctx.browser);
  await logIn(page, ctx.server.url, ctx.server.demo.owner_handle, ctx.server.demo.owner_password);
  await page.goto(ctx.server.url + "/merchant");
  const row = page.locator("tr.merchant-order").first();
  assert.match(await row.innerText(), /Buyline Tee/);
  await row.getByRole("link").click();
  await page.waitForURL(/\/merchant\/orders\/ord_/);
  assert.match(await page.locator("main").innerText(), /1 Market St/);
  await page.getByLabel("Carrier").fill("UPS");
  await page.getByLabel("Tracking number").fill("1Z999AA10123456784");
  await page.getByRole("button", { name: "Mark as shipped" }).click();
  await page.waitForURL(/\/merchant\/orders\/ord_/);
  assert.equal(await page.locator("#merchant-order-status").innerText(), "fulfilled");
  await page.screenshot({ path: join(artifacts, "merchant-order.png"), fullPage: true });

  // Webhook settings: a private address is refused beside the field; the secret rotates.
  await page.goto(ctx.server.url + "/merchant");
  await page.getByLabel("Endpoint URL").fill("http://127.0.0.1:9/hook");
  await page.getByRole("button", { name: "Save endpoint" }).click();
  assert.match(await page.locator("#webhook_url-error").innerText(), /public address/);
  assert.equal(await page.getByLabel("Endpoint URL").inputValue(), "http://127.0.0.1:9/hook");
  await page.getByRole("button", { name: "Rotate signing secret" }).click();
  assert.match(await page.locator("#new-secret").innerText(), /whsec_/);
  await page.context().close();

  // The shopper sees the tracking on the order.
  const shopper = await phone(ctx.browser);
  await logIn(shopper, ctx.server.url, ctx.server.demo.shopper_handle, ctx.server.demo.shopper_password);
  await shopper.goto(`${ctx.server.url}/orders/${order.id}`);
  assert.equal(await shopper.locator("#order-status").innerText(), "Shipped");
  assert.match(await shopper.locator("main").innerText(), /UPS: 1Z999AA10123456784/);
  await shopper.context().close();
});
