//! Campaigns, promoted posts in the home timeline, Twitter's reply rule, search, hashtags,
//! who to follow and notifications, over the API and the pages.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashSet;

/// A post by the merchant carrying `product`, and its id.
async fn product_post(app: &TestApp, key: &str, product: &Value, text: &str) -> String {
    let r = app.post("/posts", Some(key), json!({"text": text, "product_id": product["id"]})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().unwrap().to_string()
}

async fn campaign(app: &TestApp, key: &str, post_id: &str, countries: Value) -> Value {
    let r = app.post("/campaigns", Some(key), json!({"post_id": post_id, "countries": countries})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

async fn timeline(app: &TestApp, token: &str, query: &str) -> Value {
    let r = app.get(&format!("/timeline{query}"), Some(token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

fn promoted_ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["promoted"] == true)
        .map(|i| i["post"]["id"].as_str().unwrap().to_string())
        .collect()
}

fn post_ids(page: &Value) -> Vec<String> {
    page["data"].as_array().unwrap().iter().map(|i| i["post"]["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn campaigns_are_validated_listed_paused_and_ended() {
    let app = spawn_app().await;
    let (key, merchant) = app.merchant("cmpshop").await;
    let (other_key, _) = app.merchant("cmpother").await;
    let (shopper, _) = app.signup("cmpshopper").await;
    let shirt = app.shirt(&key, 10).await;
    let with_product = product_post(&app, &key, &shirt, "The tee").await;
    let plain = app.post("/posts", Some(&key), json!({"text": "no product"})).await.body["id"].clone();
    let reply =
        app.post("/posts", Some(&key), json!({"text": "reply", "reply_to": with_product})).await.body["id"].clone();
    let foreign = app.post("/posts", Some(&other_key), json!({"text": "theirs"})).await.body["id"].clone();

    // Who and what.
    assert_problem(
        &app.post("/campaigns", Some(&shopper), json!({"post_id": with_product, "countries": ["US"]})).await,
        403,
        "forbidden",
    );
    assert_problem(
        &app.post("/campaigns", None, json!({"post_id": with_product, "countries": ["US"]})).await,
        401,
        "unauthorized",
    );
    for id in [foreign.clone(), json!("post_doesnotexist0000000"), json!("nope")] {
        let r = app.post("/campaigns", Some(&key), json!({"post_id": id, "countries": ["US"]})).await;
        assert_problem(&r, 404, "not_found");
    }
    let r = app.post("/campaigns", Some(&key), json!({"post_id": plain, "countries": ["US"]})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["post_id"]);
    let r = app.post("/campaigns", Some(&key), json!({"post_id": reply, "countries": ["US"]})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["post_id"]);
    let r = app.post("/campaigns", Some(&key), json!({"post_id": with_product, "countries": ["US", "ZZ"]})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["countries[1]"]);
    let r = app.post("/campaigns", Some(&key), json!({"post_id": with_product, "countries": []})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["countries"]);
    let many: Vec<&str> = vec!["US"; 51];
    let r = app.post("/campaigns", Some(&key), json!({"post_id": with_product, "countries": many})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["countries"]);

    // Created, in the SPEC's shape.
    let c = campaign(&app, &key, &with_product, json!(["us", "GB", "US"])).await;
    assert!(c["id"].as_str().unwrap().starts_with("cmp_"));
    assert_eq!(c["post_id"], with_product.as_str());
    assert_eq!(c["countries"], json!(["US", "GB"]));
    assert_eq!(c["status"], "active");
    assert!(c["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(c.get("merchant_id").is_none());
    // Idempotency-Key: the same key and body give the same campaign, not a second one.
    let send = || {
        app.client
            .post(format!("{}/api/v1/campaigns", app.url))
            .bearer_auth(&key)
            .header("idempotency-key", "cmp-once")
            .json(&json!({"post_id": with_product, "countries": ["US"]}))
            .send()
    };
    let first: Value = send().await.unwrap().json().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["id"], again["id"]);
    let c2 = first;

    // Listed newest first, paged.
    let page = app.get("/campaigns?limit=1", Some(&key)).await.body;
    assert_eq!(page["data"][0]["id"], c2["id"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let page2 = app.get(&format!("/campaigns?limit=1&cursor={cursor}"), Some(&key)).await.body;
    assert_eq!(page2["data"][0]["id"], c["id"]);
    assert_eq!(page2["next_cursor"], json!(null));
    assert_eq!(app.get("/campaigns", Some(&other_key)).await.body["data"], json!([]));
    assert_problem(&app.get("/campaigns?cursor=%21%21", Some(&key)).await, 422, "validation_failed");

    // Pause, resume, end; ended is final; another merchant's campaign is not found.
    let id = c["id"].as_str().unwrap();
    let path = format!("/campaigns/{id}");
    assert_problem(&app.patch(&path, Some(&other_key), json!({"status": "paused"})).await, 404, "not_found");
    assert_problem(&app.patch("/campaigns/cmp_nope", Some(&key), json!({"status": "paused"})).await, 404, "not_found");
    let r = app.patch(&path, Some(&key), json!({"status": "sleeping"})).await;
    assert_problem(&r, 422, "validation_failed");
    for status in ["paused", "active", "paused", "ended", "ended"] {
        let r = app.patch(&path, Some(&key), json!({"status": status})).await;
        assert_eq!((r.status.as_u16(), r.body["status"].as_str()), (200, Some(status)), "{}", r.text);
    }
    for status in ["active", "paused"] {
        let r = app.patch(&path, Some(&key), json!({"status": status})).await;
        assert_eq!(fields(&assert_problem(&r, 409, "conflict")), ["status"]);
    }
    assert_eq!(merchant["country"], "US");
    app.stop().await;
}

#[tokio::test]
async fn a_new_us_shopper_gets_promoted_posts_a_gb_shopper_does_not_and_pausing_removes_them() {
    let app = spawn_app().await;
    let (key, merchant) = app.merchant("promoshop").await;
    let shirt = app.shirt(&key, 10).await;
    let post = product_post(&app, &key, &shirt, "Promoted tee").await;
    let c = campaign(&app, &key, &post, json!(["US"])).await;

    // A brand-new US shopper: follows no one, yet the first page holds the post with Buy.
    let (us, _) = app.signup_in("newus", "US").await;
    let page = timeline(&app, &us, "").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
    let item = &page["data"][0];
    assert_eq!(item["promoted"], true);
    assert_eq!(item["post"]["id"], post.as_str());
    assert_eq!(item["buy"]["product_id"], shirt["id"]);
    assert_eq!(page["next_cursor"], json!(null));

    // GB is not in the campaign's countries.
    let (gb, _) = app.signup_in("newgb", "GB").await;
    assert!(timeline(&app, &gb, "").await["data"].as_array().unwrap().is_empty());

    // The merchant's own account does not see its post as promoted (only organically).
    let own = timeline(&app, &key, "").await;
    assert!(promoted_ids(&own).is_empty(), "{own}");
    assert!(post_ids(&own).contains(&post));

    // A follower sees the post once on a page, organically, not again as promoted.
    let (fan, _) = app.signup_in("promofan", "US").await;
    app.post("/accounts/promoshop/follow", Some(&fan), json!({})).await;
    let fan_page = timeline(&app, &fan, "").await;
    assert_eq!(post_ids(&fan_page).iter().filter(|id| **id == post).count(), 1);
    assert!(promoted_ids(&fan_page).is_empty());

    // Paused: gone at once (well within the second the SPEC allows); resumed: back.
    let path = format!("/campaigns/{}", c["id"].as_str().unwrap());
    app.patch(&path, Some(&key), json!({"status": "paused"})).await;
    assert!(timeline(&app, &us, "").await["data"].as_array().unwrap().is_empty());
    app.patch(&path, Some(&key), json!({"status": "active"})).await;
    assert_eq!(promoted_ids(&timeline(&app, &us, "").await), vec![post.clone()]);

    // A merchant outside the rollout's allowlist: still promoted, but no Buy button; the
    // plain product link instead.
    let flag = json!({"enabled": true, "countries": ["US"], "percent": 100, "merchants": ["mer_someoneelse"], "holdout_percent": 0});
    let r = app.call(Method::PUT, "/admin/flags/buy_button", Some(&app.admin_token.clone()), Some(flag)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let item = timeline(&app, &us, "").await["data"][0].clone();
    assert_eq!((item["promoted"].clone(), item["buy"].clone()), (json!(true), json!(null)));
    assert!(item["product_url"].as_str().unwrap().contains(shirt["id"].as_str().unwrap()));

    // Ended: gone for good.
    app.patch(&path, Some(&key), json!({"status": "ended"})).await;
    assert!(timeline(&app, &us, "").await["data"].as_array().unwrap().is_empty());

    // A promoted post that is deleted leaves the timeline at once.
    let other = product_post(&app, &key, &shirt, "Second promoted tee").await;
    campaign(&app, &key, &other, json!(["US"])).await;
    assert_eq!(promoted_ids(&timeline(&app, &us, "").await), vec![other.clone()]);
    assert_eq!(app.call(Method::DELETE, &format!("/posts/{other}"), Some(&key), None).await.status, 204);
    assert!(timeline(&app, &us, "").await["data"].as_array().unwrap().is_empty());
    assert_eq!(merchant["country"], "US");
    app.stop().await;
}

#[tokio::test]
async fn promoted_items_are_at_most_one_in_five_and_paging_is_stable() {
    let app = spawn_app().await;
    let (reader, _) = app.signup("weaver").await;
    let (friend, _) = app.signup("weavefriend").await;
    app.post("/accounts/weavefriend/follow", Some(&reader), json!({})).await;
    let mut organic = Vec::new();
    for i in 0..23 {
        let r = app.post("/posts", Some(&friend), json!({"text": format!("organic {i}")})).await;
        organic.push(r.body["id"].as_str().unwrap().to_string());
    }
    organic.reverse();
    let mut promoted = HashSet::new();
    for i in 0..3 {
        let (key, _) = app.merchant(&format!("weaveshop{i}")).await;
        let shirt = app.shirt(&key, 5).await;
        let post = product_post(&app, &key, &shirt, &format!("promo {i}")).await;
        campaign(&app, &key, &post, json!(["US"])).await;
        promoted.insert(post);
    }

    for limit in [7, 20] {
        let mut items: Vec<(String, bool)> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let q = match &cursor {
                Some(c) => format!("?limit={limit}&cursor={c}"),
                None => format!("?limit={limit}"),
            };
            let page = timeline(&app, &reader, &q).await;
            let data = page["data"].as_array().unwrap();
            assert!(data.len() <= limit);
            let mut seen = HashSet::new();
            for i in data {
                let id = i["post"]["id"].as_str().unwrap().to_string();
                let is_promoted = i["promoted"] == true;
                if is_promoted {
                    assert!(promoted.contains(&id), "only campaign posts are promoted");
                    assert!(i["buy"].is_object(), "the promoted shirt has its Buy button");
                }
                assert!(seen.insert(id.clone()), "{id} twice on one page");
                items.push((id, is_promoted));
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let organic_seen: Vec<String> = items.iter().filter(|i| !i.1).map(|i| i.0.clone()).collect();
        assert_eq!(organic_seen, organic, "limit {limit}: every organic post once, in order");
        for w in items.windows(5) {
            assert!(w.iter().filter(|i| i.1).count() <= 1, "limit {limit}: {w:?}");
        }
        assert!(!items[0].1 && items[1].1, "the newest organic post on top, then a promoted one");
        let promoted_count = items.iter().filter(|i| i.1).count();
        if limit == 7 {
            // Two slots a page, three campaigns: every fifth item is promoted.
            assert_eq!(promoted_count, items.len().div_ceil(5), "every fifth slot filled: {items:?}");
        } else {
            // Page 1: four slots, three campaigns, so its fourth slot is organic (each once a
            // page); page 2 (items 20..): slots 20 and 25.
            assert_eq!(promoted_count, 3 + 2, "{items:?}");
        }
    }
    assert_problem(&app.get("/timeline?cursor=bm9wZQ", Some(&reader)).await, 422, "validation_failed");
    app.stop().await;
}

/// More active campaigns in a country than a timeline considers at once
/// (`MAX_PROMOTIONS`, 50): the window moves on with each load of the one-second cache, so
/// the newest campaigns are shown too, not only the fifty oldest.
#[tokio::test]
async fn every_campaign_takes_its_turn_when_more_run_than_a_timeline_considers() {
    const CAMPAIGNS: usize = 52;
    let app = spawn_app().await;
    let (key, _) = app.merchant("turnshop").await;
    let shirt = app.shirt(&key, 5).await;
    let mut campaigns = HashSet::new();
    for i in 0..CAMPAIGNS {
        let post = product_post(&app, &key, &shirt, &format!("turn {i}")).await;
        campaign(&app, &key, &post, json!(["US"])).await;
        campaigns.insert(post);
    }
    let (reader, _) = app.signup("turnreader").await;
    let (friend, _) = app.signup("turnfriend").await;
    app.post("/accounts/turnfriend/follow", Some(&reader), json!({})).await;
    // Enough organic posts for 50 promoted slots in one walk of the timeline.
    for i in 0..250 {
        let r = app.post("/posts", Some(&friend), json!({"text": format!("organic {i}")})).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let walk = || async {
        let mut promoted = HashSet::new();
        let mut q = "?limit=100".to_string();
        loop {
            let page = timeline(&app, &reader, &q).await;
            promoted.extend(promoted_ids(&page));
            match page["next_cursor"].as_str() {
                Some(c) => q = format!("?limit=100&cursor={c}"),
                None => return promoted,
            }
        }
    };
    let mut seen = walk().await;
    for _ in 0..5 {
        if seen.len() == CAMPAIGNS {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        seen.extend(walk().await);
    }
    assert!(seen.is_subset(&campaigns));
    assert_eq!(seen.len(), CAMPAIGNS, "every active campaign is shown in its turn");
    app.stop().await;
}

/// Search ignores accents the same way on both backends: "cafe" finds "Café" and "crème"
/// finds "creme" (SQLite's FTS5 folds them in its tokenizer; PostgreSQL through
/// `unaccent` on both the posts and the query).
#[tokio::test]
async fn search_matches_words_with_or_without_their_accents() {
    let app = spawn_app().await;
    let (token, _) = app.signup("accents").await;
    let post = |text: &'static str| {
        let (app, token) = (&app, &token);
        async move { app.post("/posts", Some(token), json!({"text": text})).await.body["id"].as_str().unwrap().to_string() }
    };
    let cafe = post("Café au lait at noon").await;
    let creme = post("creme brulee tonight").await;
    for (q, want) in [("cafe", &cafe), ("CAFÉ", &cafe), ("crème brûlée", &creme), ("Brulee", &creme)] {
        let r = app.get(&format!("/search?q={}", url_encode(q)), None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(post_ids(&r.body), vec![want.clone()], "{q}");
    }
    app.stop().await;
}

#[tokio::test]
async fn replies_reach_a_home_timeline_only_when_both_sides_are_followed() {
    let app = spawn_app().await;
    let (viewer, _) = app.signup("rrviewer").await;
    let (dave, _) = app.signup("rrdave").await;
    let (key, _) = app.merchant("rrshop").await;
    app.post("/accounts/rrshop/follow", Some(&viewer), json!({})).await;

    let daves = app.post("/posts", Some(&dave), json!({"text": "#RrCart please"})).await.body["id"].clone();
    let answer =
        app.post("/posts", Some(&key), json!({"text": "@rrdave Added it to your cart", "reply_to": daves})).await;
    let answer = answer.body["id"].as_str().unwrap().to_string();
    let shop_top =
        app.post("/posts", Some(&key), json!({"text": "New stock"})).await.body["id"].as_str().unwrap().to_string();
    let own_reply_to_stranger =
        app.post("/posts", Some(&viewer), json!({"text": "me too", "reply_to": daves})).await.body["id"]
            .as_str()
            .unwrap()
            .to_string();
    let own_reply_to_shop = app.post("/posts", Some(&viewer), json!({"text": "nice", "reply_to": shop_top})).await.body
        ["id"]
        .as_str()
        .unwrap()
        .to_string();

    let ids = post_ids(&timeline(&app, &viewer, "").await);
    assert!(ids.contains(&shop_top));
    assert!(!ids.contains(&answer), "a shop's answer to someone the viewer does not follow stays out");
    assert!(!ids.contains(&own_reply_to_stranger), "own reply to an unfollowed account stays out");
    assert!(ids.contains(&own_reply_to_shop), "own reply to a followed account is in");
    // Dave follows the shop: he sees the answer to him (he is its other side).
    app.post("/accounts/rrshop/follow", Some(&dave), json!({})).await;
    assert!(post_ids(&timeline(&app, &dave, "").await).contains(&answer));
    // Following both sides brings the answer in; the thread shows it regardless.
    app.post("/accounts/rrdave/follow", Some(&viewer), json!({})).await;
    let ids = post_ids(&timeline(&app, &viewer, "").await);
    assert!(ids.contains(&answer) && ids.contains(&own_reply_to_stranger));
    let thread = app.get(&format!("/posts/{}", daves.as_str().unwrap()), None).await.body;
    assert!(thread["replies"].as_array().unwrap().iter().any(|r| r["id"] == answer.as_str()));
    app.stop().await;
}

#[tokio::test]
async fn search_finds_words_hashtags_and_accounts_and_forgets_the_deleted() {
    let app = spawn_app().await;
    let (key, _) = app.merchant("beanery").await;
    let (ann, _) = app.signup("annsearch").await;
    let (bob, _) = app.signup("bobsearch").await;
    let shirt = app.shirt(&key, 3).await;
    let shop_post = product_post(&app, &key, &shirt, "Fresh Roast beans, grab the #CoffeeDeal today").await;
    let ann_post =
        app.post("/posts", Some(&ann), json!({"text": "Morning roast with café crème #coffeedeal"})).await.body["id"]
            .as_str()
            .unwrap()
            .to_string();
    let bob_post = app.post("/posts", Some(&bob), json!({"text": "roast dinner tonight"})).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.post("/posts", Some(&bob), json!({"text": "nothing to see"})).await;

    let search = |q: &str| {
        let path = format!("/search?q={}", url_encode(q));
        let app = &app;
        async move {
            let r = app.get(&path, None).await;
            assert_eq!(r.status, 200, "{path}: {}", r.text);
            post_ids(&r.body)
        }
    };
    assert_eq!(search("roast").await, [bob_post.clone(), ann_post.clone(), shop_post.clone()], "newest first");
    assert_eq!(search("ROAST beans").await, vec![shop_post.clone()], "every word must occur");
    assert_eq!(search("#coffeedeal").await, [ann_post.clone(), shop_post.clone()]);
    // Results carry buy cards like the timeline.
    let r = app.get("/search?q=beans", Some(&ann)).await;
    assert_eq!(r.body["data"][0]["buy"]["product_id"], shirt["id"]);
    assert_eq!(r.body["data"][0]["promoted"], false);
    // Paging.
    let p1 = app.get("/search?q=roast&limit=2", None).await.body;
    assert_eq!(post_ids(&p1), [bob_post.clone(), ann_post.clone()]);
    let p2 =
        app.get(&format!("/search?q=roast&limit=2&cursor={}", p1["next_cursor"].as_str().unwrap()), None).await.body;
    assert_eq!((post_ids(&p2), p2["next_cursor"].clone()), (vec![shop_post.clone()], json!(null)));

    // The index's own syntax in user input is just words (or nothing), never a 500.
    for q in [
        "\"roast",
        "roast*",
        "NEAR(roast beans)",
        "roast AND OR NOT",
        "col:roast",
        "'; drop table posts; --",
        "(((",
        "^",
        "-roast",
        "@#$%",
        "🙂",
    ] {
        let r = app.get(&format!("/search?q={}", url_encode(q)), None).await;
        assert_eq!(r.status, 200, "{q}: {}", r.text);
    }
    assert_eq!(search("\"roast* AND").await.len(), 0, "'and' is a word here, and none has it");
    for q in ["", "   ", &"a".repeat(101), "a\u{0}b"] {
        let r = app.get(&format!("/search?q={}", url_encode(q)), None).await;
        assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["q"], "{q:?}");
    }
    assert_problem(&app.get("/search", None).await, 422, "validation_failed");
    assert_problem(&app.get("/search?q=roast&cursor=zz", None).await, 422, "validation_failed");

    // Hashtag page: newest first, case-insensitive, `#` optional.
    for tag in ["coffeedeal", "CoffeeDeal", "%23coffeedeal"] {
        let r = app.get(&format!("/hashtags/{tag}"), None).await;
        assert_eq!(post_ids(&r.body), [ann_post.clone(), shop_post.clone()], "{tag}");
    }
    let h1 = app.get("/hashtags/coffeedeal?limit=1", None).await.body;
    let h2 = app
        .get(&format!("/hashtags/coffeedeal?limit=1&cursor={}", h1["next_cursor"].as_str().unwrap()), None)
        .await
        .body;
    assert_eq!(post_ids(&h2), vec![shop_post.clone()]);
    assert!(
        app.get("/hashtags/roast", None).await.body["data"].as_array().unwrap().is_empty(),
        "a word is not a hashtag"
    );
    assert_problem(&app.get(&format!("/hashtags/{}", "a".repeat(101)), None).await, 422, "validation_failed");

    // Accounts by handle or name prefix.
    let accounts = |q: &str| {
        let path = format!("/search/accounts?q={}", url_encode(q));
        let app = &app;
        async move {
            let r = app.get(&path, None).await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["handle"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(accounts("@ANNS").await, ["annsearch"]);
    assert_eq!(accounts("bean").await, ["beanery", "beanery_o"], "the shop, then its owner (newest first)");
    assert!(accounts("shop").await.contains(&"beanery".to_string()), "display name 'beanery shop': a word's prefix");
    assert!(accounts("%").await.is_empty() && accounts("_").await.is_empty(), "like wildcards are literal");
    let r = app.get("/search/accounts?q=annsearch", None).await;
    assert!(r.body["data"][0].get("email").is_none(), "no e-mail in search results");

    // Deleted posts and erased accounts vanish.
    let r = app.call(Method::DELETE, &format!("/posts/{shop_post}"), Some(&key), None).await;
    assert_eq!(r.status, 204);
    assert_eq!(search("roast").await, [bob_post.clone(), ann_post.clone()]);
    assert_eq!(app.get("/hashtags/coffeedeal", None).await.body["data"].as_array().unwrap().len(), 1);
    let r = app.call(Method::DELETE, "/me", Some(&ann), None).await;
    assert!(r.status.is_success(), "{}", r.text);
    assert_eq!(search("roast").await, vec![bob_post.clone()]);
    assert!(app.get("/hashtags/coffeedeal", None).await.body["data"].as_array().unwrap().is_empty());
    assert!(accounts("annsearch").await.is_empty() && accounts("deleted").await.is_empty());
    app.stop().await;
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn suggestions_are_merchants_and_active_accounts_of_the_country_not_yet_followed() {
    let app = spawn_app().await;
    let (me, _) = app.signup_in("sugme", "US").await;
    app.merchant("sugshop").await; // its owner `sugshop_o` is a US person who never posted
    let (active, _) = app.signup_in("sugactive", "US").await;
    app.post("/posts", Some(&active), json!({"text": "hello"})).await;
    let (gb, _) = app.signup_in("suggb", "GB").await;
    app.post("/posts", Some(&gb), json!({"text": "hiya"})).await;
    app.signup_in("sugquiet", "US").await;
    app.post("/posts", Some(&me), json!({"text": "me"})).await;

    let handles = |v: &Value| -> Vec<String> {
        v["data"].as_array().unwrap().iter().map(|a| a["handle"].as_str().unwrap().to_string()).collect()
    };
    let r = app.get("/suggestions", Some(&me)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(handles(&r.body), ["sugshop", "sugactive"], "merchants first; not GB, not quiet, not me");
    app.post("/accounts/sugshop/follow", Some(&me), json!({})).await;
    assert_eq!(handles(&app.get("/suggestions", Some(&me)).await.body), ["sugactive"]);
    assert_problem(&app.get("/suggestions", None).await, 401, "unauthorized");
    let (key, _) = app.merchant("sugkeyed").await;
    assert_problem(&app.get("/suggestions", Some(&key)).await, 403, "forbidden");
    app.stop().await;
}

struct Browser {
    client: reqwest::Client,
    base: String,
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf-token\" content=\"").expect("csrf meta") + 27;
    html[at..].split('"').next().unwrap().to_string()
}

impl Browser {
    async fn signed_up(app: &TestApp, handle: &str, country: &str) -> Self {
        let client =
            reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let b = Browser { client, base: app.url.clone() };
        let email = format!("{handle}@example.com");
        let (status, _, _) = b
            .submit(
                "/signup",
                "/signup",
                &[("handle", handle), ("email", &email), ("password", "correct horse battery"), ("country", country)],
            )
            .await;
        assert_eq!(status, 303);
        b
    }

    /// Signed up in the US through the pages, and an API token of the same account.
    async fn signed_up_with_token(app: &TestApp, handle: &str) -> (Self, String) {
        let b = Self::signed_up(app, handle, "US").await;
        let r = app.post("/sessions", None, json!({"login": handle, "password": "correct horse battery"})).await;
        (b, r.body["token"].as_str().unwrap().to_string())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self.client.get(format!("{}{path}", self.base)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn submit(&self, from: &str, action: &str, fields: &[(&str, &str)]) -> (u16, String, Option<String>) {
        let (_, page) = self.get(from).await;
        let token = csrf_of(&page);
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf", &token));
        let r = self.client.post(format!("{}{action}", self.base)).form(&form).send().await.unwrap();
        let loc = r.headers().get("location").map(|v| v.to_str().unwrap().to_string());
        (r.status().as_u16(), r.text().await.unwrap(), loc)
    }
}

#[tokio::test]
async fn home_page_of_a_new_shopper_shows_promoted_posts_and_who_to_follow() {
    let app = spawn_app().await;
    let (key, _) = app.merchant("pageshop").await;
    let shirt = app.shirt(&key, 4).await;
    let post = product_post(&app, &key, &shirt, "Tee for #Summer, ask @pageshop").await;
    campaign(&app, &key, &post, json!(["US"])).await;

    let b = Browser::signed_up(&app, "pagenew", "US").await;
    let (status, home) = b.get("/").await;
    assert_eq!(status, 200);
    assert!(home.contains("class=\"post promoted\"") && home.contains(&format!("id=\"{post}\"")), "{home}");
    assert!(home.contains(&format!("href=\"/buy/{post}\"")), "the promoted post has its Buy button");
    assert!(home.contains("Who to follow") && home.contains("action=\"/u/pageshop/follow\""), "{home}");
    // Hashtags and mentions are links.
    assert!(home.contains("<a href=\"/hashtag/Summer\"><span class=\"tag\">#Summer</span></a>"), "{home}");
    assert!(home.contains("<a href=\"/u/pageshop\">@pageshop</a>"));

    // Follow from the list, without JavaScript: back home, now following.
    let (status, _, loc) = b.submit("/", "/u/pageshop/follow", &[("next", "/")]).await;
    assert_eq!((status, loc.as_deref()), (303, Some("/")));
    let (_, profile) = b.get("/u/pageshop").await;
    assert!(profile.contains("Unfollow"));
    // Without the CSRF token, nothing happens.
    let r = b.client.post(format!("{}/u/pageshop/unfollow", app.url)).form(&[("csrf", "bad")]).send().await.unwrap();
    assert_eq!(r.status(), 403);

    // Search and hashtag pages.
    let (status, page) = b.get("/search?q=tee").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("<label for=\"q\"") && page.contains(&format!("id=\"{post}\"")) && page.contains("@pageshop")
    );
    let (status, page) = b.get(&format!("/search?q={}", "x".repeat(101))).await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"q-error\"") && page.contains(&"x".repeat(101)), "error beside the field, input kept");
    let (status, page) = b.get("/hashtag/summer").await;
    assert_eq!(status, 200);
    assert!(page.contains("#summer") && page.contains(&format!("id=\"{post}\"")));
    app.stop().await;
}

#[tokio::test]
async fn notifications_page_by_page_with_an_unread_count_in_the_header() {
    let app = spawn_app().await;
    let (key, _) = app.merchant("noteshop").await;
    let shirt = app.shirt(&key, 10).await;
    let (b, token) = Browser::signed_up_with_token(&app, "notebuyer").await;
    let vid = variant(&shirt, "M", "red");
    for _ in 0..3 {
        assert_eq!(app.buy(&token, &vid, "4242424242424242").await.status, 201);
    }
    let all = app.get("/notifications", Some(&token)).await.body;
    assert_eq!(all["data"].as_array().unwrap().len(), 3, "{all}");
    let p1 = app.get("/notifications?limit=2", Some(&token)).await.body;
    let p2 = app
        .get(&format!("/notifications?limit=2&cursor={}", p1["next_cursor"].as_str().unwrap()), Some(&token))
        .await
        .body;
    let ids: Vec<Value> =
        p1["data"].as_array().unwrap().iter().chain(p2["data"].as_array().unwrap()).map(|n| n["id"].clone()).collect();
    assert_eq!(ids, all["data"].as_array().unwrap().iter().map(|n| n["id"].clone()).collect::<Vec<_>>());
    assert_eq!(p2["next_cursor"], json!(null));
    assert_problem(&app.get("/notifications?cursor=zz", Some(&token)).await, 422, "validation_failed");

    let (_, home) = b.get("/").await;
    assert!(home.contains("aria-label=\"3 unread\""), "{home}");
    let (status, page) = b.get("/notifications").await;
    assert_eq!(status, 200);
    assert_eq!(page.matches("class=\"unread\"").count(), 3);
    assert!(!page.contains("unread-count"), "the page that shows them counts none in its header");
    let (_, home) = b.get("/").await;
    assert!(!home.contains("unread-count"), "viewing the page marks them read");
    app.stop().await;
}

/// An order paid when it is placed is its own in-app receipt: it writes no notification row
/// (whose index by account would cost the order one more page), yet the list shows it in
/// its place among the rows (a shipping notice here), page by page, unread until she looks.
#[tokio::test]
async fn an_order_paid_at_once_is_listed_as_its_own_receipt_among_the_notification_rows() {
    use sqlx::{Connection, Row};
    let app = spawn_app().await;
    let (key, _) = app.merchant("selfnote").await;
    let shirt = app.shirt(&key, 10).await;
    let (b, token) = Browser::signed_up_with_token(&app, "selfnotebuyer").await;
    let vid = variant(&shirt, "M", "red");
    let first = app.buy(&token, &vid, "4242424242424242").await.body;
    let second = app.buy(&token, &vid, "4242424242424242").await.body;
    let id = |o: &Value| o["id"].as_str().unwrap().to_string();
    let ship = json!({"carrier": "UPS", "tracking_number": "1Z77"});
    let r = app.post(&format!("/merchant/orders/{}/fulfill", id(&first)), Some(&key), ship).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let all = app.get("/notifications", Some(&token)).await.body;
    let texts: Vec<&str> = all["data"].as_array().unwrap().iter().map(|n| n["text"].as_str().unwrap()).collect();
    assert_eq!(texts.len(), 3, "{all}");
    assert!(texts[0].contains("1Z77"), "the shipping notice is newest: {all}");
    let paid = |o: &Value| {
        let total = o["totals"]["total"].as_i64().unwrap();
        format!("Order {} paid: ${}.{:02}", id(o), total / 100, total % 100)
    };
    assert_eq!(texts[1], paid(&second), "{all}");
    assert_eq!(texts[2], paid(&first), "{all}");
    assert_eq!(all["data"][1]["link"], format!("/orders/{}", id(&second)));
    // Page by page, one at a time, across both kinds.
    let paged: Vec<Value> =
        app.every_page("/notifications?limit=1", Some(&token)).await.iter().map(|n| n["id"].clone()).collect();
    assert_eq!(paged, all["data"].as_array().unwrap().iter().map(|n| n["id"].clone()).collect::<Vec<_>>());

    // One row in the table: the shipping notice; the two receipts are the orders.
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
    let rows: i64 = sqlx::query("select count(*) from notifications").fetch_one(&mut c).await.unwrap().get(0);
    assert_eq!(rows, 1);
    c.close().await.unwrap();

    // Unread until she looks; a receipt after that is unread again.
    let (_, home) = b.get("/").await;
    assert!(home.contains("aria-label=\"3 unread\""), "{home}");
    let (_, page) = b.get("/notifications").await;
    assert_eq!(page.matches("class=\"unread\"").count(), 3);
    let (_, home) = b.get("/").await;
    assert!(!home.contains("unread-count"), "viewing the page marks them read");
    assert_eq!(app.buy(&token, &vid, "4242424242424242").await.status, 201);
    let (_, home) = b.get("/").await;
    assert!(home.contains("aria-label=\"1 unread\""), "{home}");
    app.stop().await;
}

#[tokio::test]
async fn the_demo_promotes_posts_to_a_new_us_shopper() {
    let app = spawn_demo().await;
    let (us, _) = app.signup_in("demonewbie", "US").await;
    let page = timeline(&app, &us, "").await;
    let item = &page["data"][0];
    assert_eq!(item["promoted"], true, "{page}");
    assert!(item["buy"]["product_id"].is_string(), "{page}");
    app.stop().await;
}

#[tokio::test]
async fn a_shop_runs_its_campaigns_from_the_merchant_pages() {
    let app = spawn_app().await;
    let (b, owner) = Browser::signed_up_with_token(&app, "pageowner").await;
    let r = app
        .post(
            "/merchants",
            Some(&owner),
            json!({"name": "Page Shop", "handle": "pagecmp", "kind": "retailer", "country": "US"}),
        )
        .await;
    let key = r.body["api_key"].as_str().unwrap().to_string();
    let m = r.body["merchant"]["id"].as_str().unwrap().to_string();
    let shirt = app.shirt(&key, 5).await;
    let post = product_post(&app, &key, &shirt, "Promote me").await;

    let (status, page) = b.get("/merchant/campaigns").await;
    assert_eq!(status, 200);
    assert!(page.contains(&format!("<option value=\"{post}\"")) && page.contains("<label for=\"countries\""), "{page}");
    let (status, page, _) = b
        .submit("/merchant/campaigns", "/merchant/campaigns", &[("m", &m), ("post_id", &post), ("countries", "US, ZZ")])
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"countries-error\"") && page.contains("value=\"US, ZZ\""), "{page}");
    let (status, _, loc) = b
        .submit("/merchant/campaigns", "/merchant/campaigns", &[("m", &m), ("post_id", &post), ("countries", "US")])
        .await;
    assert_eq!((status, loc.as_deref()), (303, Some(format!("/merchant/campaigns?m={m}").as_str())));
    let list = app.get("/campaigns", Some(&key)).await.body;
    let id = list["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(list["data"][0]["status"], "active");
    let (status, _, _) = b
        .submit("/merchant/campaigns", &format!("/merchant/campaigns/{id}/status"), &[("m", &m), ("status", "paused")])
        .await;
    assert_eq!(status, 303);
    assert_eq!(app.get("/campaigns", Some(&key)).await.body["data"][0]["status"], "paused");
    let (_, page) = b.get("/merchant/campaigns").await;
    assert!(page.contains("status-paused") && page.contains(">Resume<"));
    app.stop().await;
}
