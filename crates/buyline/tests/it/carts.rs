//! Hashtag carts: unique hashtags, consent links, replies answered once (by the worker, by
//! hand, after a restart), every edge case answered in the thread, carts and their checkout,
//! `cart.item_added` to the merchant, and 429 on a burst.

use crate::helpers::*;
use crate::webhooks::{hooked_app, Receiver};
use serde_json::{json, Value};
use std::time::Duration;

/// A merchant with US and GB cart hashtags (webhook to `rx` if given), its T-shirt, and a
/// post linking the S/red variant.
async fn cart_merchant(app: &TestApp, handle: &str, rx: Option<&Receiver>) -> (String, Value, Value, Value) {
    let (owner, _) = app.signup(&format!("{handle}_o")).await;
    let title = format!("{}{}", handle[..1].to_uppercase(), &handle[1..]);
    let mut body = json!({"name": format!("{title} Shop"), "handle": handle, "kind": "retailer", "country": "US",
        "cart_hashtags": {"US": format!("#{title}Cart"), "GB": format!("#{title}Basket")}});
    if let Some(rx) = rx {
        body["webhook_url"] = json!(rx.url);
    }
    let r = app.post("/merchants", Some(&owner), body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    if let Some(rx) = rx {
        rx.inbox.lock().unwrap().secrets.push(r.body["webhook_secret"].as_str().unwrap().to_string());
    }
    let key = r.body["api_key"].as_str().unwrap().to_string();
    let shirt = app.shirt(&key, 5).await;
    let red_s = variant(&shirt, "S", "red");
    let text = format!("New tee! {}/p/{}?variant={}", app.url, shirt["id"].as_str().unwrap(), red_s);
    let p = app.post("/posts", Some(&key), json!({"text": text})).await;
    assert_eq!(p.status, 201, "{}", p.text);
    (key, r.body["merchant"].clone(), shirt, p.body)
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

async fn reply(app: &TestApp, token: &str, parent: Option<&str>, text: &str) -> Value {
    let r = app.post("/posts", Some(token), json!({"text": text, "reply_to": parent})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

/// The merchant's answers under a post (waiting up to 10 s for the worker).
async fn answers(app: &TestApp, post: &Value) -> Vec<Value> {
    for _ in 0..200 {
        let t = app.get(&format!("/posts/{}", id(post)), None).await;
        let replies = t.body["replies"].as_array().cloned().unwrap_or_default();
        if !replies.is_empty() {
            return replies;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    vec![]
}

async fn answer_text(app: &TestApp, post: &Value) -> String {
    let a = answers(app, post).await;
    assert_eq!(a.len(), 1, "exactly one answer: {a:?}");
    a[0]["text"].as_str().unwrap().to_string()
}

async fn link(app: &TestApp, token: &str, merchant: &Value) {
    let r = app.post(&format!("/merchants/{}/link", id(merchant)), Some(token), json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn cart_hashtags_are_unique_across_merchants_ignoring_case() {
    let app = spawn_app().await;
    let (_, acme, _, _) = cart_merchant(&app, "acme", None).await;
    assert_eq!(acme["cart_hashtags"], json!({"US": "#AcmeCart", "GB": "#AcmeBasket"}));
    let (key, _) = app.merchant("copycat").await;
    let r = app.patch("/merchant", Some(&key), json!({"cart_hashtags": {"US": "#acmecart"}})).await;
    assert_eq!(fields(&assert_problem(&r, 409, "conflict")), ["cart_hashtags.US"]);
    // Creating a merchant with a taken tag is refused the same way, and creates nothing.
    let (owner, _) = app.signup("copy2_o").await;
    let body = json!({"name": "C", "handle": "copy2", "kind": "retailer", "country": "US",
        "cart_hashtags": {"GB": "#ACMEBASKET"}});
    let r = app.post("/merchants", Some(&owner), body).await;
    assert_eq!(fields(&assert_problem(&r, 409, "conflict")), ["cart_hashtags.GB"]);
    assert_eq!(app.get("/accounts/copy2", None).await.status, 404);
    // Malformed tags, one tag for two countries, and donations as a cart kind.
    let bad = json!({"cart_hashtags": {"US": "Copy Cart", "GB": "#"}});
    let r = app.patch("/merchant", Some(&key), bad).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["cart_hashtags.GB", "cart_hashtags.US"]);
    let r = app.patch("/merchant", Some(&key), json!({"cart_hashtags": {"US": "#CopyCart", "GB": "#copycart"}})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["cart_hashtags.US"]);
    let r = app.patch("/merchant", Some(&key), json!({"cart_kinds": ["donation"]})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["cart_kinds[0]"]);
    // A tag freed by its merchant can be taken.
    let r = app.patch("/merchant", Some(&key), json!({"cart_hashtags": {"US": "#CopyCart"}})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["cart_kinds"], json!(["physical"]));
    app.stop().await;
}

#[tokio::test]
async fn a_linked_shoppers_reply_fills_the_cart_and_the_cart_checks_out() {
    let app = hooked_app().await;
    let rx = Receiver::start().await;
    let (merchant_key, acme, shirt, post) = cart_merchant(&app, "acme", Some(&rx)).await;
    let (ann, ann_acct) = app.signup("ann").await;

    // Consent first, shown in the shopper's links; linking twice is one link.
    link(&app, &ann, &acme).await;
    link(&app, &ann, &acme).await;
    let links = app.get("/me/links", Some(&ann)).await;
    assert_eq!(links.body["data"].as_array().unwrap().len(), 1, "{}", links.text);
    assert_eq!(links.body["data"][0]["merchant_id"], acme["id"]);

    // Matched case-insensitively, as twitter-text extracts it.
    let r = reply(&app, &ann, Some(id(&post)), "Want it! #acmeCART").await;
    let text = answer_text(&app, &r).await;
    assert!(text.starts_with("@ann Added Tee (S, red) to your cart"), "{text}");
    assert!(text.contains(&format!("{}/cart", app.url)), "{text}");
    let answer = &answers(&app, &r).await[0];
    assert_eq!(answer["author"]["handle"], "acme");

    let carts = app.get("/carts", Some(&ann)).await;
    assert_eq!(carts.status, 200, "{}", carts.text);
    let cart = &carts.body["data"][0];
    assert_eq!(cart["merchant_id"], acme["id"]);
    let item = &cart["items"][0];
    assert_eq!(item["product_id"], shirt["id"]);
    assert_eq!(item["variant_id"].as_str().unwrap(), variant(&shirt, "S", "red"));
    assert_eq!(
        (item["name"].clone(), item["quantity"].clone(), item["unit_price"].clone()),
        (json!("Tee"), json!(1), json!(2500))
    );

    // The shopper is notified; the merchant gets cart.item_added, signed.
    let notes = app.get("/notifications", Some(&ann)).await;
    assert!(notes.body["data"].as_array().unwrap().iter().any(|n| n["link"] == "/cart"), "{}", notes.text);
    let got = rx.wait_for(1).await;
    let added = got.iter().find(|g| g.1["type"] == "cart.item_added").expect("cart.item_added delivered");
    assert_eq!(added.1["data"]["cart_item"]["id"], item["id"]);
    assert_eq!(added.1["data"]["shopper"]["id"], ann_acct["id"]);
    assert_eq!(added.1["data"]["post_id"], r["id"]);

    // Again: already there, so nothing changes (quantity is chosen at checkout).
    let again = reply(&app, &ann, Some(id(&post)), "#AcmeCart").await;
    assert!(answer_text(&app, &again).await.contains("is already in your cart"));
    let carts = app.get("/carts", Some(&ann)).await;
    assert_eq!(carts.body["data"][0]["items"].as_array().unwrap().len(), 1);

    // A second item, from a post linking another variant.
    let blue_m = variant(&shirt, "M", "blue");
    let text = format!("Blue too: {}/p/{}?variant={blue_m}", app.url, id(&shirt));
    let second_post = app.post("/posts", Some(&merchant_key), json!({"text": text})).await.body;
    let r2 = reply(&app, &ann, Some(id(&second_post)), "#AcmeCart").await;
    assert!(answer_text(&app, &r2).await.contains("Added Tee (M, blue)"));
    let carts = app.get("/carts", Some(&ann)).await;
    assert_eq!(carts.body["data"][0]["items"].as_array().unwrap().len(), 2);
    assert_eq!(carts.body["data"][0]["subtotal"], 5000);

    // Check out the cart through the normal checkout, every line in one order; the order
    // empties the cart.
    let mid = id(&acme).to_string();
    let chk = app.post(&format!("/carts/{mid}/checkout"), Some(&ann), json!({})).await;
    assert_eq!(chk.status, 201, "{}", chk.text);
    assert_eq!(chk.body["lines"].as_array().unwrap().len(), 2);
    assert_eq!(chk.body["status"], "open");
    let done = app
        .post(
            &format!("/checkouts/{}/complete", id(&chk.body)),
            Some(&ann),
            json!({"shipping_address": address(), "payment": card("4242424242424242")}),
        )
        .await;
    assert_eq!(done.status, 201, "{}", done.text);
    assert_eq!(done.body["status"], "paid");
    assert_eq!(done.body["totals"]["subtotal"], 5000);
    assert_eq!(done.body["lines"].as_array().unwrap().len(), 2);
    assert_eq!(app.get("/carts", Some(&ann)).await.body["data"], json!([]));
    assert_eq!(stock_of(&app, &shirt, &variant(&shirt, "S", "red")).await, 4);
    assert_eq!(stock_of(&app, &shirt, &blue_m).await, 4);
    let r = app.post(&format!("/carts/{mid}/checkout"), Some(&ann), json!({})).await;
    assert_problem(&r, 404, "not_found");

    // Revoking the link: the next reply invites the shopper to link again.
    let r = app.call(reqwest::Method::DELETE, &format!("/merchants/{mid}/link"), Some(&ann), None).await;
    assert_eq!(r.status, 204);
    let r = app.call(reqwest::Method::DELETE, &format!("/merchants/{mid}/link"), Some(&ann), None).await;
    assert_problem(&r, 404, "not_found");
    let later = reply(&app, &ann, Some(id(&post)), "#AcmeCart").await;
    assert!(answer_text(&app, &later).await.contains("/connect/acme"));
    app.stop().await;
}

#[tokio::test]
async fn every_edge_case_is_answered_in_the_thread_once() {
    // The worker is off: jobs are drained by hand, so each step is deterministic.
    let app = spawn_with(|c| c.cart_worker = false).await;
    let (key, acme, shirt, post) = cart_merchant(&app, "acme", None).await;
    let (ann, _) = app.signup("ann").await;
    let (gus, _) = app.signup_in("gus", "GB").await;
    let (ned, _) = app.signup("ned").await;
    link(&app, &ann, &acme).await;
    link(&app, &gus, &acme).await;

    let plain = app.post("/posts", Some(&key), json!({"text": "Thanks for 1k followers!"})).await.body;
    // Sold out: the variant's stock goes to zero after the post.
    let blue_m = variant(&shirt, "M", "blue");
    let r = app
        .patch(
            &format!("/products/{}/variants/{blue_m}", id(&shirt)),
            Some(&key),
            json!({"inventory": {"type": "finite", "quantity": 0}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let sold_out_post = app
        .post("/posts", Some(&key), json!({"text": format!("Blue M: {}/p/{}?variant={blue_m}", app.url, id(&shirt))}))
        .await
        .body;
    let digital =
        app.post("/products", Some(&key), json!({"name": "E-book", "kind": "digital", "price": 900})).await.body;
    // A digital product is posted only once its file is uploaded.
    let up = app
        .client
        .put(format!("{}/api/v1/products/{}/file", app.url, id(&digital)))
        .bearer_auth(&key)
        .body("the book")
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 200);
    let digital_post =
        app.post("/posts", Some(&key), json!({"text": "Read it now", "product_id": id(&digital)})).await.body;
    // A parent deleted before the reply is answered.
    let doomed =
        app.post("/posts", Some(&key), json!({"text": format!("Soon gone {}/p/{}", app.url, id(&shirt))})).await.body;

    let cases: Vec<(Value, &str)> = vec![
        (reply(&app, &ned, Some(id(&post)), "#AcmeCart").await, "/connect/acme"),
        (reply(&app, &gus, Some(id(&post)), "#AcmeCart").await, "reply with #AcmeBasket instead"),
        (reply(&app, &ann, Some(id(&plain)), "#AcmeCart").await, "doesn't link one of Acme Shop's products"),
        (reply(&app, &ann, Some(id(&sold_out_post)), "#AcmeCart").await, "Tee (M, blue) is sold out"),
        (reply(&app, &ann, Some(id(&digital_post)), "#AcmeCart").await, "doesn't add digital products"),
        (reply(&app, &ann, None, "Loving this shop #AcmeCart").await, "Reply with #AcmeCart to a post of ours"),
        (reply(&app, &ann, Some(id(&doomed)), "#AcmeCart").await, "That post was deleted"),
    ];
    let r = app.call(reqwest::Method::DELETE, &format!("/posts/{}", id(&doomed)), Some(&key), None).await;
    assert_eq!(r.status, 204, "{}", r.text);

    // Two workers (or two processes) draining at once still answer each post once.
    let s = app.services().clone();
    let (a, b) = tokio::join!(s.process_cart_jobs(100), s.process_cart_jobs(100));
    assert_eq!(a.unwrap() + b.unwrap(), cases.len());
    assert_eq!(s.process_cart_jobs(100).await.unwrap(), 0, "nothing left to answer");
    for (post, expect) in &cases {
        let text = answer_text(&app, post).await;
        assert!(text.contains(expect), "expected {expect:?} in {text:?}");
    }
    assert_eq!(app.get("/carts", Some(&ann)).await.body["data"], json!([]));

    // Once the merchant allows digital goods, the same reply adds the e-book.
    let r = app.patch("/merchant", Some(&key), json!({"cart_kinds": ["physical", "digital"]})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ok = reply(&app, &ann, Some(id(&digital_post)), "#AcmeCart").await;
    s.process_cart_jobs(100).await.unwrap();
    assert!(answer_text(&app, &ok).await.contains("Added E-book"));

    // Another merchant's hashtag under this merchant's post: nothing of theirs is linked.
    let (_, other, _, _) = cart_merchant(&app, "zeta", None).await;
    link(&app, &ann, &other).await;
    let cross = reply(&app, &ann, Some(id(&post)), "#ZetaCart").await;
    s.process_cart_jobs(100).await.unwrap();
    assert!(answer_text(&app, &cross).await.contains("doesn't link one of Zeta Shop's products"));

    // Posts without a cart hashtag, and the merchant's own posts, queue nothing.
    reply(&app, &ann, Some(id(&post)), "#SomethingElse nice").await;
    app.post("/posts", Some(&key), json!({"text": "Reply with #AcmeCart to add it!"})).await;
    assert_eq!(s.process_cart_jobs(100).await.unwrap(), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_reply_written_before_a_restart_is_answered_after_it() {
    let app = spawn_with(|c| c.cart_worker = false).await;
    let (_, acme, _, post) = cart_merchant(&app, "acme", None).await;
    let (ann, _) = app.signup("ann").await;
    link(&app, &ann, &acme).await;
    let r = reply(&app, &ann, Some(id(&post)), "#AcmeCart").await;
    // Not answered yet: no worker runs here.
    let thread = app.get(&format!("/posts/{}", id(&r)), None).await;
    assert_eq!(thread.body["replies"], json!([]), "{}", thread.text);
    // A process with the worker picks the job up from the database.
    let app = app.restart(|_| {}).await;
    let text = answer_text(&app, &r).await;
    assert!(text.contains("Added Tee (S, red)"), "{text}");
    app.stop().await;
}

#[tokio::test]
async fn a_burst_of_cart_replies_is_rate_limited_and_bad_input_is_refused() {
    let app = spawn_with(|c| {
        c.cart_worker = false;
        c.cart_reply_limit = 5;
    })
    .await;
    let (key, acme, shirt, post) = cart_merchant(&app, "acme", None).await;
    let (ann, _) = app.signup("ann").await;
    for i in 0..5 {
        reply(&app, &ann, Some(id(&post)), &format!("#AcmeCart {i}")).await;
    }
    let r = app.post("/posts", Some(&ann), json!({"text": "#AcmeCart 6", "reply_to": id(&post)})).await;
    assert_problem(&r, 429, "rate_limited");
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Ordinary posts are not limited by this.
    assert_eq!(app.post("/posts", Some(&ann), json!({"text": "just chatting"})).await.status, 201);

    // Unknown merchants, items and carts.
    let r = app.post("/merchants/mer_nope/link", Some(&ann), json!({})).await;
    assert_problem(&r, 404, "not_found");
    let r =
        app.call(reqwest::Method::DELETE, &format!("/carts/{}/items/citem_nope", id(&acme)), Some(&ann), None).await;
    assert_problem(&r, 404, "not_found");
    assert_problem(&app.get("/carts", None).await, 401, "unauthorized");
    // A merchant key is not a shopper.
    assert_problem(&app.post(&format!("/merchants/{}/link", id(&acme)), Some(&key), json!({})).await, 403, "forbidden");
    let _ = (shirt, key);
    app.stop().await;
}

#[tokio::test]
async fn items_can_be_removed_and_another_shopper_cannot_touch_them() {
    let app = spawn_with(|c| c.cart_worker = false).await;
    let (_, acme, _, post) = cart_merchant(&app, "acme", None).await;
    let (ann, _) = app.signup("ann").await;
    let (bob, _) = app.signup("bob").await;
    link(&app, &ann, &acme).await;
    // Two replies answered in one batch: the second finds the item the first adds.
    let first = reply(&app, &ann, Some(id(&post)), "#AcmeCart").await;
    let second = reply(&app, &ann, Some(id(&post)), "#AcmeCart again").await;
    app.services().process_cart_jobs(10).await.unwrap();
    assert!(answer_text(&app, &first).await.contains("Added Tee (S, red)"));
    assert!(answer_text(&app, &second).await.contains("already in your cart"));
    let cart = app.get("/carts", Some(&ann)).await.body;
    assert_eq!(cart["data"][0]["items"].as_array().unwrap().len(), 1, "{cart}");
    let item = cart["data"][0]["items"][0]["id"].as_str().unwrap().to_string();
    let path = format!("/carts/{}/items/{item}", id(&acme));
    assert_problem(&app.call(reqwest::Method::DELETE, &path, Some(&bob), None).await, 404, "not_found");
    assert_eq!(app.call(reqwest::Method::DELETE, &path, Some(&ann), None).await.status, 204);
    assert_eq!(app.get("/carts", Some(&ann)).await.body["data"], json!([]));
    // Account deletion takes the links and the cart with it.
    link(&app, &bob, &acme).await;
    let export = app.get("/me/export", Some(&bob)).await;
    assert_eq!(export.body["merchant_links"][0]["merchant_id"], acme["id"], "{}", export.text);
    app.stop().await;
}
