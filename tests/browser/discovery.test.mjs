// Discovery in a real browser on a phone-sized viewport: a brand-new shopper's first
// timeline already holds a promoted post with Buy (the demo's campaigns), and they buy from it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { useDemo, phone, artifacts } from "./harness.mjs";

const ctx = useDemo();

test("a brand-new shopper buys from a promoted post on their first timeline", async () => {
  const page = await phone(ctx.browser);
  const base = ctx.server.url;
  await page.goto(base + "/signup");
  await page.getByLabel("Handle").fill("newbie");
  await page.getByLabel("E-mail").fill("newbie@example.com");
  await page.getByLabel("Password").fill("correct horse battery");
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.waitForURL(base + "/");

  // Follows no one, yet the timeline is not empty: a promoted post, and who to follow.
  const promoted = page.locator("article.post.promoted");
  assert.equal(await promoted.count(), 1, "one promoted item on a page of one");
  assert.match(await promoted.innerText(), /Promoted/);
  const suggestions = page.locator("section.suggestions");
  assert.match(await suggestions.innerText(), /Who to follow/);
  assert.ok((await suggestions.getByRole("button", { name: /Follow @/ }).count()) >= 2);
  await page.screenshot({ path: join(artifacts, "first-timeline.png"), fullPage: true });

  // Buy from it, through the sheet over the timeline.
  await promoted.getByRole("link", { name: "Buy", exact: true }).click();
  const dialog = page.locator("dialog#buy-dialog");
  await dialog.waitFor();
  // Pick the first available value of each option the product has.
  const names = await dialog.locator("input[type=radio]").evaluateAll((els) => [...new Set(els.map((e) => e.name))]);
  for (const name of names) {
    const enabled = dialog.locator(`input[type=radio][name="${name}"]:not([disabled])`);
    await enabled.first().check();
  }
  await dialog.getByLabel("Full name").fill("Nia Newbie");
  await dialog.getByLabel("Address", { exact: true }).fill("1 Market St");
  await dialog.getByLabel("City").fill("San Francisco");
  await dialog.getByLabel("State / county").fill("CA");
  await dialog.getByLabel("ZIP / postcode").fill("94103");
  await dialog.getByLabel("Card number").fill("4242 4242 4242 4242");
  await dialog.getByLabel("Exp. month").fill("12");
  await dialog.getByLabel("Exp. year").fill("2030");
  await dialog.getByLabel("CVC").fill("123");
  await dialog.getByRole("button", { name: /Confirm and pay/ }).click();
  await page.waitForURL(/\/orders\/ord_/);
  assert.equal(await page.locator("#order-status").innerText(), "Paid");

  // Following from the list works without leaving the home page.
  await page.goto(base + "/");
  const before = await page.locator("section.suggestions li").count();
  await page.locator("section.suggestions").getByRole("button", { name: /Follow @/ }).first().click();
  await page.waitForURL(base + "/");
  assert.ok((await page.locator("section.suggestions li").count()) < before || (await page.locator("section.suggestions").count()) === 0);

  // Search and a hashtag page from a post's link.
  await page.goto(base + "/search");
  await page.getByLabel(/Search posts/).fill("tee");
  await page.getByRole("button", { name: "Search" }).click();
  await page.waitForURL(/\/search\?q=tee/);
  assert.ok((await page.locator("article.post").count()) >= 1);
  await page.context().close();
});
