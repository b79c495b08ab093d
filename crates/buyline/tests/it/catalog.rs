//! Merchants, keys, products and buy cards.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn create_merchant_returns_secrets_once_in_the_contract_shape() {
    let app = spawn_app().await;
    let (owner, _) = app.signup("owner").await;
    let r = app
        .post(
            "/merchants",
            Some(&owner),
            json!({"name": "Acme", "handle": "acme", "kind": "retailer", "country": "US",
            "cart_hashtags": {"US": "#AcmeCart", "GB": "#AcmeBasket"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let m = &r.body["merchant"];
    assert!(m["id"].as_str().unwrap().starts_with("mer_"));
    assert_eq!(
        (m["handle"].as_str(), m["name"].as_str(), m["kind"].as_str()),
        (Some("acme"), Some("Acme"), Some("retailer"))
    );
    assert_eq!((m["country"].as_str(), m["currency"].as_str()), (Some("US"), Some("USD")));
    assert_eq!(m["cart_hashtags"], json!({"US": "#AcmeCart", "GB": "#AcmeBasket"}));
    let key = r.body["api_key"].as_str().unwrap();
    assert!(key.starts_with("sk_"));
    assert!(r.body["webhook_secret"].as_str().unwrap().starts_with("whsec_"));
    let me = app.get("/merchant", Some(key)).await;
    assert_eq!(me.body["id"], m["id"]);
    assert!(!me.text.contains("whsec_") && !me.text.contains("sk_"));

    let gb = app
        .post("/merchants", Some(&owner), json!({"name": "Brit", "handle": "brit", "kind": "brand", "country": "gb"}))
        .await;
    assert_eq!(gb.body["merchant"]["currency"], "GBP");
    let r = app
        .post("/merchants", Some(&owner), json!({"name": "X", "handle": "acme", "kind": "retailer", "country": "US"}))
        .await;
    assert_eq!(fields(&assert_problem(&r, 409, "conflict")), ["handle"]);
    let r = app.post("/merchants", Some(&owner), json!({"name": "", "handle": "h!", "kind": "shop", "country": "FR", "webhook_url": "ftp://x", "cart_hashtags": {"US": "not a tag"}})).await;
    let mut f = fields(&assert_problem(&r, 422, "validation_failed"));
    f.sort();
    assert_eq!(f, ["cart_hashtags.US", "country", "handle", "kind", "name", "webhook_url"]);
    assert_problem(
        &app.post("/merchants", Some(key), json!({"name": "N", "handle": "n", "kind": "retailer", "country": "US"}))
            .await,
        403,
        "forbidden",
    );
    app.stop().await;
}

#[tokio::test]
async fn api_key_rotation_revokes_the_old_key() {
    let app = spawn_app().await;
    let (key, _) = app.merchant("rot").await;
    let r = app.post("/merchant/api_key/rotate", Some(&key), json!({})).await;
    assert_eq!(r.status, 201);
    let new = r.body["api_key"].as_str().unwrap();
    assert_problem(&app.get("/merchant", Some(&key)).await, 401, "unauthorized");
    assert_eq!(app.get("/merchant", Some(new)).await.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn products_have_options_variants_stock_and_shipping() {
    let app = spawn_app().await;
    let (key, m) = app.merchant("shop").await;
    let p = app.shirt(&key, 3).await;
    assert!(p["id"].as_str().unwrap().starts_with("prod_"));
    assert_eq!(p["kind"], "physical");
    assert_eq!(p["url"], format!("{}/p/{}", app.url, p["id"].as_str().unwrap()));
    assert_eq!(
        p["options"],
        json!([{"name": "size", "values": ["S", "M"]}, {"name": "colour", "values": ["red", "blue"]}])
    );
    let variants = p["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 4);
    for v in variants {
        assert!(v["id"].as_str().unwrap().starts_with("var_"));
        assert_eq!(v["price"], 2500);
        assert_eq!(v["inventory"], json!({"type": "finite", "quantity": 3}));
        assert_eq!(v["available"], true);
        assert!(v["options"]["size"].is_string() && v["options"]["colour"].is_string());
    }
    let rates = p["shipping_rates"].as_array().unwrap();
    assert_eq!(rates[0]["countries"], json!(["US"]));
    assert!(p["return_policy"].as_str().unwrap().len() > 5);
    assert_eq!(app.get(&format!("/products/{}", p["id"].as_str().unwrap()), None).await.body["merchant_id"], m["id"]);

    // Stock to zero: the variant shows unavailable.
    let pid = p["id"].as_str().unwrap();
    let vid = variants[0]["id"].as_str().unwrap();
    let r = app
        .patch(
            &format!("/products/{pid}/variants/{vid}"),
            Some(&key),
            json!({"inventory": {"type": "finite", "quantity": 0}, "price": 2600}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v0 = r.body["variants"].as_array().unwrap().iter().find(|v| v["id"] == vid).unwrap().clone();
    assert_eq!((v0["available"].as_bool(), v0["price"].as_i64()), (Some(false), Some(2600)));
    let r = app
        .patch(&format!("/products/{pid}"), Some(&key), json!({"name": "Better Tee", "return_policy": "60 days"}))
        .await;
    assert_eq!((r.body["name"].as_str(), r.body["return_policy"].as_str()), (Some("Better Tee"), Some("60 days")));
    app.stop().await;
}

#[tokio::test]
async fn product_kinds_and_their_rules() {
    let app = spawn_app().await;
    let (key, _) = app.merchant("kinds").await;
    let digital = app.post("/products", Some(&key), json!({"name": "E-book", "kind": "digital", "price": 900})).await;
    assert_eq!(digital.status, 201, "{}", digital.text);
    assert_eq!(digital.body["variants"][0]["inventory"], json!({"type": "infinite", "quantity": null}));
    let donation = app
        .post(
            "/products",
            Some(&key),
            json!({"name": "Give", "kind": "donation", "donation": {"min": 100, "max": 10000}}),
        )
        .await;
    assert_eq!(donation.status, 201, "{}", donation.text);
    assert_eq!(donation.body["donation"], json!({"min": 100, "max": 10000}));

    let r = app.post("/products", Some(&key), json!({"name": "Shirt", "kind": "physical", "price": 100})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["shipping_rates"]);
    let r = app.post("/products", Some(&key), json!({"name": "File", "kind": "digital", "price": 100, "shipping_rates": [{"name": "x", "price": 1, "countries": ["US"]}]})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["shipping_rates"]);
    let r = app.post("/products", Some(&key), json!({"name": "Give", "kind": "donation"})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["donation"]);
    let r = app
        .post(
            "/products",
            Some(&key),
            json!({"name": "Bad", "kind": "digital",
            "options": [{"name": "size", "values": ["S", "S"]}],
            "variants": [{"options": {"size": "XL"}, "price": -5}, {"options": {}, "price": 1}]}),
        )
        .await;
    let mut f = fields(&assert_problem(&r, 422, "validation_failed"));
    f.sort();
    assert_eq!(f, ["options[0].values[1]", "variants[0].options.size", "variants[0].price", "variants[1].options"]);
    let (shopper, _) = app.signup("notmerchant").await;
    assert_problem(
        &app.post("/products", Some(&shopper), json!({"name": "x", "kind": "digital", "price": 1})).await,
        403,
        "forbidden",
    );
    app.stop().await;
}

#[tokio::test]
async fn merchants_cannot_touch_each_others_products() {
    let app = spawn_app().await;
    let (k1, _) = app.merchant("one").await;
    let (k2, _) = app.merchant("two").await;
    let p = app.shirt(&k1, 1).await;
    let pid = p["id"].as_str().unwrap();
    let vid = p["variants"][0]["id"].as_str().unwrap();
    assert_problem(
        &app.patch(&format!("/products/{pid}"), Some(&k2), json!({"name": "mine now"})).await,
        404,
        "not_found",
    );
    assert_problem(
        &app.patch(&format!("/products/{pid}/variants/{vid}"), Some(&k2), json!({"price": 1})).await,
        404,
        "not_found",
    );
    let r = app.post("/posts", Some(&k2), json!({"text": "not mine", "product_id": pid})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["product_id"]);
    assert_eq!(app.get(&format!("/products/{pid}"), None).await.body["name"], "Tee");
    app.stop().await;
}

#[tokio::test]
async fn merchant_post_carries_a_buy_card_per_the_rollout() {
    let app = spawn_app().await;
    let (key, m) = app.merchant("cardshop").await;
    let p = app.shirt(&key, 2).await;
    let pid = p["id"].as_str().unwrap();
    let post = app.post("/posts", Some(&key), json!({"text": "New tee!", "product_id": pid})).await;
    assert_eq!(post.status, 201, "{}", post.text);
    assert_eq!(post.body["author"]["handle"], "cardshop");
    assert_eq!(post.body["product_id"], pid);

    let (us, _) = app.signup_in("usbuyer", "US").await;
    let (gb, _) = app.signup_in("gbbuyer", "GB").await;
    for t in [&us, &gb] {
        app.post("/accounts/cardshop/follow", Some(t), json!({})).await;
    }
    let item = app.get("/timeline", Some(&us)).await.body["data"][0].clone();
    assert_eq!(
        item["buy"],
        json!({"product_id": pid, "name": "Tee", "image_url": format!("{}/p/{pid}/image.svg", app.url),
               "price_min": 2500, "price_max": 2500, "currency": "USD", "available": true})
    );
    let item = app.get("/timeline", Some(&gb)).await.body["data"][0].clone();
    assert_eq!(item["buy"], json!(null));
    assert_eq!(item["product_url"], format!("{}/p/{pid}", app.url));
    let thread = app.get(&format!("/posts/{}", post.body["id"].as_str().unwrap()), Some(&us)).await;
    assert_eq!(thread.body["buy"]["product_id"], pid);

    // Sold out everywhere: the card says unavailable.
    for v in p["variants"].as_array().unwrap() {
        let vid = v["id"].as_str().unwrap();
        app.patch(
            &format!("/products/{pid}/variants/{vid}"),
            Some(&key),
            json!({"inventory": {"type": "finite", "quantity": 0}}),
        )
        .await;
    }
    assert_eq!(app.get("/timeline", Some(&us)).await.body["data"][0]["buy"]["available"], false);

    // Kill switch: nobody gets Buy.
    let op = app.admin_token.clone();
    let off = json!({"enabled": false, "countries": ["US"], "percent": 100, "merchants": null, "holdout_percent": 0});
    app.call(reqwest::Method::PUT, "/admin/flags/buy_button", Some(&op), Some(off)).await;
    assert_eq!(app.get("/timeline", Some(&us)).await.body["data"][0]["buy"], json!(null));
    // Allowlist of another merchant: still none; of this one: Buy again.
    let only =
        json!({"enabled": true, "countries": ["US"], "percent": 100, "merchants": [m["id"]], "holdout_percent": 0});
    app.call(reqwest::Method::PUT, "/admin/flags/buy_button", Some(&op), Some(only)).await;
    assert!(app.get("/timeline", Some(&us)).await.body["data"][0]["buy"].is_object());
    app.stop().await;
}

#[tokio::test]
async fn demo_content_fills_the_shoppers_timeline() {
    let app = spawn_demo().await;
    let demo = app.demo.clone().expect("demo credentials");
    let r = app.post("/sessions", None, json!({"login": demo.shopper_handle, "password": demo.shopper_password})).await;
    assert_eq!(r.status, 201);
    let t = r.body["token"].as_str().unwrap().to_string();
    let items = app.get("/timeline", Some(&t)).await.body["data"].as_array().unwrap().clone();
    let cards: Vec<_> = items.iter().filter(|i| i["buy"].is_object()).collect();
    assert!(cards.len() >= 4, "{items:?}");
    let tee = cards.iter().find(|i| i["buy"]["name"] == "Buyline Tee").expect("the tee");
    assert_eq!(tee["post"]["author"]["handle"], "acme");
    let product = app.get(&format!("/products/{}", tee["buy"]["product_id"].as_str().unwrap()), None).await.body;
    assert_eq!(product["variants"].as_array().unwrap().len(), 6);
    let sold_out: Vec<_> = product["variants"].as_array().unwrap().iter().filter(|v| v["available"] == false).collect();
    assert_eq!(sold_out.len(), 1);
    let countries: Vec<_> = product["shipping_rates"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["countries"].as_array().unwrap().clone())
        .collect();
    assert!(countries.contains(&json!("US")) && countries.contains(&json!("GB")));
    let kinds: std::collections::BTreeSet<_> = ["acme", "northwind", "mayaprints", "cleanrivers"].iter().collect();
    assert_eq!(kinds.len(), 4);
    app.stop().await;
}
