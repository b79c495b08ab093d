// The foundation as a new user meets it: sign up, post, see it; open the demo product.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { useDemo, phone, logIn, artifacts } from "./harness.mjs";

const ctx = useDemo();

test("sign up, post, and see the post in the timeline", async () => {
  const page = await phone(ctx.browser);
  await page.goto(ctx.server.url + "/");
  await page.getByRole("link", { name: "Sign up" }).click();
  // A mistake first: the message appears beside the field and typed values stay.
  await page.getByLabel("Handle").fill("new user!");
  await page.getByLabel("E-mail").fill("newbie@example.com");
  await page.getByLabel("Password").fill("correct horse battery");
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.locator("#handle-error").waitFor();
  assert.match(await page.locator("#handle-error").innerText(), /letters, digits and underscores/);
  assert.equal(await page.getByLabel("E-mail").inputValue(), "newbie@example.com");
  await page.getByLabel("Handle").fill("newbie");
  await page.getByLabel("Password").fill("correct horse battery");
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.waitForURL(ctx.server.url + "/");
  await page.getByLabel("What's happening?").fill("My first post on #Buyline");
  await page.getByRole("button", { name: "Post" }).click();
  await page.waitForURL(ctx.server.url + "/");
  const first = page.locator("article.post").first();
  assert.match(await first.innerText(), /My first post on #Buyline/);
  assert.match(await first.locator(".author").innerText(), /@newbie/);
  await page.screenshot({ path: join(artifacts, "timeline-after-post.png"), fullPage: true });
  await page.context().close();
});

test("the demo shopper's timeline shows buy cards; the card opens the product page", async () => {
  const page = await phone(ctx.browser);
  await logIn(page, ctx.server.url, ctx.server.demo.shopper_handle, ctx.server.demo.shopper_password);
  const card = page.locator(".buy-card", { hasText: "Buyline Tee" });
  await card.waitFor();
  assert.match(await card.innerText(), /\$25\.00 – \$27\.00/);
  await page.screenshot({ path: join(artifacts, "demo-timeline.png"), fullPage: false });
  await card.getByRole("link", { name: "Buyline Tee" }).click();
  await page.waitForURL(/\/p\/prod_/);
  assert.equal(await page.locator("h1").innerText(), "Buyline Tee");
  const soldOut = page.locator("tr.unavailable");
  assert.equal(await soldOut.count(), 1);
  assert.match(await soldOut.innerText(), /size: L, colour: blue/);
  await page.screenshot({ path: join(artifacts, "demo-product.png"), fullPage: true });
  await page.context().close();
});

test("pages work without JavaScript", async () => {
  const context = await ctx.browser.newContext({ javaScriptEnabled: false, viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  await logIn(page, ctx.server.url, ctx.server.demo.shopper_handle, ctx.server.demo.shopper_password);
  await page.getByLabel("What's happening?").fill("Posted with scripts off");
  await page.getByRole("button", { name: "Post" }).click();
  await page.waitForURL(ctx.server.url + "/");
  assert.match(await page.locator("article.post").first().innerText(), /Posted with scripts off/);
  await context.close();
});
