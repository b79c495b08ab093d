// Every page of the product — shopper's, merchant's and operator's — at a phone and a
// desktop viewport: no serious or critical axe-core violation, nothing wider than the screen.
import { test } from "node:test";
import assert from "node:assert/strict";
import { useDemo, phone, desktop, logIn, operatorLogIn, assertAccessible } from "./harness.mjs";

const ctx = useDemo();
const viewports = [["phone", phone], ["desktop", desktop]];
const paths = {};

async function api(path, token, body) {
  const r = await fetch(ctx.server.url + "/api/v1" + path, {
    method: body ? "POST" : "GET",
    headers: { "content-type": "application/json", ...(token ? { authorization: "Bearer " + token } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return r.json();
}

// The paths to visit, made once: the demo's tee, its post, and an order of it.
let made;
function setUp() {
  made ??= makePaths();
  return made;
}

async function makePaths() {
  const { token } = await api("/sessions", null, { login: ctx.server.demo.shopper_handle, password: ctx.server.demo.shopper_password });
  const tl = await api("/timeline", token);
  const item = tl.data.find((i) => i.buy && i.buy.name === "Buyline Tee");
  assert.ok(item, "the demo timeline has the tee");
  const product = await api("/products/" + item.buy.product_id);
  const variant = product.variants.find((v) => v.available);
  const order = await api("/orders", token, {
    lines: [{ variant_id: variant.id }],
    shipping_address: { name: "Ada", line1: "1 Market St", city: "San Francisco", region: "CA", postal_code: "94103", country: "US" },
    payment: { card: { number: "4242424242424242", exp_month: 12, exp_year: 2030, cvc: "123" } },
  });
  assert.equal(order.status, "paid");
  Object.assign(paths, {
    post: "/posts/" + item.post.id,
    buy: "/buy/" + item.post.id,
    product: "/p/" + item.buy.product_id,
    profile: "/u/" + item.post.author.handle,
    order: "/orders/" + order.id,
    merchantOrder: "/merchant/orders/" + order.id,
    ownProduct: "/merchant/products/" + item.buy.product_id,
  });
}

async function check(make, label, visit) {
  await setUp();
  const page = await make(ctx.browser);
  try {
    await visit(page);
  } finally {
    await page.context().close();
  }
}

async function at(page, path, label) {
  const r = await page.goto(ctx.server.url + path);
  assert.ok(r.status() < 500, `${label} ${path}: ${r.status()}`);
  await assertAccessible(page, `${label} ${path}`);
}

test("the pages anyone can open", async () => {
  for (const [label, make] of viewports) {
    await check(make, label, async (page) => {
      for (const p of ["/", "/login", "/signup", paths.post, paths.product, paths.profile, "/no-such-page", "/admin",
        "/search?q=tee", "/hashtag/Buyline"]) {
        await at(page, p, label);
      }
    });
  }
});

test("the shopper's pages", async () => {
  for (const [label, make] of viewports) {
    await check(make, label, async (page) => {
      await logIn(page, ctx.server.url, ctx.server.demo.shopper_handle, ctx.server.demo.shopper_password);
      // "/merchant" for someone without a shop is the form that opens one.
      for (const p of ["/", paths.buy, paths.product, paths.post, "/orders", paths.order, "/settings", "/cart", "/merchant",
        "/notifications", "/search?q=coffee"]) {
        await at(page, p, label);
      }
    });
  }
});

test("the merchant's pages", async () => {
  for (const [label, make] of viewports) {
    await check(make, label, async (page) => {
      await logIn(page, ctx.server.url, ctx.server.demo.owner_handle, ctx.server.demo.owner_password);
      for (const p of ["/merchant", paths.merchantOrder, "/merchant/products/new", paths.ownProduct,
        paths.ownProduct.replace(/$/, "/uploads"), "/merchant/campaigns"]) {
        await at(page, p, label);
      }
    });
  }
});

test("the operator's pages", async () => {
  for (const [label, make] of viewports) {
    await check(make, label, async (page) => {
      await operatorLogIn(page, ctx.server);
      await at(page, "/admin", label);
      const merchant = await page.locator("ul.merchants a").first().getAttribute("href");
      await at(page, merchant, label);
      await at(page, "/admin/funnel/" + paths.post.split("/").pop(), label);
    });
  }
});
