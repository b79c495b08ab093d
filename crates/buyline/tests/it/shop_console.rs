//! `/merchant` as a shop owner uses it without the API: open a shop, create a product with
//! options and stock, edit stock in place, and post it with the shop's composer.

use crate::helpers::*;

fn between<'a>(page: &'a str, from: &str, to: &str) -> &'a str {
    let a = page.find(from).unwrap_or(0);
    let b = page[a..].find(to).map(|b| a + b).unwrap_or(page.len());
    &page[a..b]
}

#[tokio::test]
async fn a_person_opens_a_shop_creates_a_product_edits_stock_and_posts_it() {
    let app = spawn_app().await;
    app.signup("maker").await;
    let b = Browser::new(&app);
    b.submit("/login", "/login", &[("login", "maker"), ("password", "correct horse battery")]).await;

    // No shop yet: the form that opens one. A bad handle is refused beside the field.
    let (status, page) = b.get("/merchant").await;
    assert_eq!(status, 200);
    assert!(page.contains("Open my shop"));
    let bad = [("name", "Maker Goods"), ("handle", "no spaces"), ("kind", "retailer"), ("country", "US")];
    let (status, page, _) = b.submit("/merchant", "/merchant/open", &bad).await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"handle-error\"") && page.contains("value=\"Maker Goods\""));
    let good = [("name", "Maker Goods"), ("handle", "makergoods"), ("kind", "brand"), ("country", "US")];
    let (status, page, _) = b.submit("/merchant", "/merchant/open", &good).await;
    assert_eq!(status, 201);
    let key = between(&page, "id=\"api-key\"", ">");
    let key = key.split("value=\"").nth(1).unwrap().trim_end_matches(['"', '/', ' ']).to_string();
    assert!(key.starts_with("sk_"), "{key}");
    assert!(page.contains("whsec_"));
    // The key works on the API, and the secrets are never shown again.
    let me = app.get("/merchant", Some(&key)).await;
    assert_eq!(me.status.as_u16(), 200, "{}", me.text);
    let mid = me.body["id"].as_str().unwrap().to_string();
    let (_, page) = b.get("/merchant").await;
    assert!(!page.contains(&key) && page.contains("New product"));

    // A product with two options, a price, stock and shipping: mistakes first.
    let from = format!("/merchant/products/new?m={mid}");
    let mut form = vec![
        ("m", mid.as_str()),
        ("name", "Field Jacket"),
        ("kind", "physical"),
        ("option1_name", "size"),
        ("option1_values", "S, M"),
        ("option2_name", "colour"),
        ("option2_values", "olive, navy"),
        ("price", "eighty"),
        ("stock", "3"),
        ("ship_name", "Standard"),
        ("ship_price", "5.00"),
        ("ship_countries", "US"),
        ("return_policy", "30 days"),
        ("ship2_name", "Express"),
        ("ship2_price", "15.00"),
        ("ship2_countries", "US, ca"),
    ];
    let (status, page, _) = b.submit(&from, "/merchant/products", &form).await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"price-error\"") && page.contains("value=\"olive, navy\""));
    form[7] = ("price", "80.00");
    form[11] = ("ship_countries", "US, Atlantis");
    let (status, page, _) = b.submit(&from, "/merchant/products", &form).await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"ship_countries-error\""), "{}", between(&page, "<main>", "</main>"));
    form[11] = ("ship_countries", "US");
    let (status, _, loc) = b.submit(&from, "/merchant/products", &form).await;
    assert_eq!(status, 303);
    let loc = loc.unwrap();
    let pid = loc.trim_start_matches("/merchant/products/").split('?').next().unwrap().to_string();
    let p = app.get(&format!("/products/{pid}"), None).await.body;
    assert_eq!(p["variants"].as_array().unwrap().len(), 4);
    assert!(p["variants"].as_array().unwrap().iter().all(|v| v["price"] == 8000 && v["inventory"]["quantity"] == 3));
    assert_eq!(p["shipping_rates"][0]["price"], 500);
    assert_eq!(p["shipping_rates"][1]["name"], "Express");
    assert_eq!(p["shipping_rates"][1]["countries"], serde_json::json!(["US", "CA"]));

    // Every rate shows on the product's form, with an empty row for one more; saving the
    // form as it is keeps them all, and emptying a row removes that rate.
    let (_, page) = b.get(&loc).await;
    assert!(
        page.contains("value=\"Express\"") && page.contains("id=\"ship3_name\""),
        "{}",
        between(&page, "<main>", "</main>")
    );
    assert!(!page.contains("id=\"ship4_name\""));
    let mut edit = vec![
        ("m", mid.as_str()),
        ("name", "Field Jacket"),
        ("description", ""),
        ("return_policy", "30 days"),
        ("ship_name", "Standard"),
        ("ship_price", "5.00"),
        ("ship_countries", "US"),
        ("ship2_name", "Express"),
        ("ship2_price", "15.00"),
        ("ship2_countries", "US, CA"),
        ("ship3_name", ""),
        ("ship3_price", ""),
        ("ship3_countries", ""),
    ];
    let action = format!("/merchant/products/{pid}");
    let (status, page, _) = b.submit(&loc, &action, &edit).await;
    assert_eq!(status, 200);
    assert!(page.contains("Saved.") && page.contains("value=\"Express\""));
    let rates = app.get(&format!("/products/{pid}"), None).await.body["shipping_rates"].clone();
    assert_eq!(rates.as_array().unwrap().len(), 2, "{rates}");
    // A mistake in the second row is shown beside that row's field.
    edit[8] = ("ship2_price", "fifteen");
    let (status, page, _) = b.submit(&loc, &action, &edit).await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"ship2_price-error\"") && page.contains("value=\"fifteen\""));
    (edit[7], edit[8], edit[9]) = (("ship2_name", ""), ("ship2_price", ""), ("ship2_countries", ""));
    let (status, _, _) = b.submit(&loc, &action, &edit).await;
    assert_eq!(status, 200);
    let rates = app.get(&format!("/products/{pid}"), None).await.body["shipping_rates"].clone();
    assert_eq!(rates.as_array().unwrap().len(), 1, "{rates}");

    // Stock edited in place: one variant sold out, a bad figure refused beside its field.
    let vid = variant(&p, "M", "navy");
    let action = format!("/merchant/products/{pid}/variants/{vid}");
    let (status, page, _) = b.submit(&loc, &action, &[("m", &mid), ("price", "80.00"), ("stock", "-2")]).await;
    assert_eq!(status, 422);
    assert!(page.contains(&format!("id=\"stock_{vid}-error\"")) && page.contains("value=\"-2\""));
    let (status, _, _) = b.submit(&loc, &action, &[("m", &mid), ("price", "85.50"), ("stock", "0")]).await;
    assert_eq!(status, 303);
    let p = app.get(&format!("/products/{pid}"), None).await.body;
    let v = p["variants"].as_array().unwrap().iter().find(|v| v["id"] == vid.as_str()).unwrap().clone();
    assert_eq!((v["price"].as_i64(), v["available"].as_bool()), (Some(8550), Some(false)));

    // The shop's composer: an empty post is refused beside the field; then the post carries the product.
    let (status, page, _) =
        b.submit("/merchant", "/merchant/posts", &[("m", &mid), ("text", " "), ("product_id", &pid)]).await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"text-error\""));
    let (status, _, _) = b
        .submit("/merchant", "/merchant/posts", &[("m", &mid), ("text", "New jackets are in"), ("product_id", &pid)])
        .await;
    assert_eq!(status, 303);
    let posts = app.get("/accounts/makergoods/posts", None).await.body;
    assert_eq!(posts["data"][0]["post"]["text"], "New jackets are in");
    assert_eq!(posts["data"][0]["post"]["product_id"], pid.as_str());
    // The shop's page shows the post as the feed does, with its buy card, and its funnel.
    let (_, page) = b.get("/merchant").await;
    let posts = &page[page.find("id=\"funnel-h\"").unwrap()..];
    assert!(posts.contains("New jackets are in") && posts.contains("class=\"buy-card\""));
    assert!(posts.contains(&format!("data-product-id=\"{pid}\"")) && posts.contains("/merchant/funnel/post_"));
}

#[tokio::test]
async fn a_shop_page_never_shows_or_changes_another_shops_product() {
    let app = spawn_app().await;
    let (other_key, _) = app.merchant("other").await;
    let theirs = app.shirt(&other_key, 5).await;
    let pid = theirs["id"].as_str().unwrap();
    let (_, mine) = app.merchant("mine").await;
    let b = Browser::new(&app);
    b.submit("/login", "/login", &[("login", "mine_o"), ("password", "correct horse battery")]).await;
    let mid = mine["id"].as_str().unwrap();
    assert_eq!(b.get(&format!("/merchant/products/{pid}?m={mid}")).await.0, 404);
    let vid = theirs["variants"][0]["id"].as_str().unwrap();
    let (status, _, _) = b
        .submit(
            "/merchant",
            &format!("/merchant/products/{pid}/variants/{vid}"),
            &[("m", mid), ("price", "1.00"), ("stock", "0")],
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(app.get(&format!("/products/{pid}"), None).await.body["variants"][0]["inventory"]["quantity"], 5);
    // A shopper with no shop is sent to open one; an anonymous visitor to log in.
    app.signup("plain").await;
    let s = Browser::new(&app);
    s.submit("/login", "/login", &[("login", "plain"), ("password", "correct horse battery")]).await;
    let (status, _) = s.get("/merchant/products/new").await;
    assert_eq!(status, 303);
    let anon = Browser::new(&app);
    assert_eq!(anon.get("/merchant/products/new").await.0, 303);
}

#[tokio::test]
async fn a_product_with_open_orders_cannot_be_archived_and_an_archived_one_leaves_the_shop() {
    let app = spawn_app().await;
    let (key, m) = app.merchant("retire").await;
    let mid = m["id"].as_str().unwrap().to_string();
    let p = app.shirt(&key, 5).await;
    let pid = p["id"].as_str().unwrap().to_string();
    let vid = variant(&p, "M", "red");
    let post = app.post("/posts", Some(&key), serde_json::json!({"text": "Last ones", "product_id": pid})).await;
    let post_id = post.body["id"].as_str().unwrap().to_string();
    let (shopper, _) = app.signup("lastbuyer").await;
    let order = app.buy(&shopper, &vid, "4242424242424242").await;
    assert_eq!(order.status.as_u16(), 201, "{}", order.text);
    let oid = order.body["id"].as_str().unwrap().to_string();

    // An open order holds it: refused by the API and beside the page's button.
    let r = app.call(reqwest::Method::DELETE, &format!("/products/{pid}"), Some(&key), None).await;
    assert_problem(&r, 409, "conflict");
    let b = Browser::new(&app);
    b.submit("/login", "/login", &[("login", "retire_o"), ("password", "correct horse battery")]).await;
    let from = format!("/merchant/products/{pid}?m={mid}");
    let (status, page, _) = b.submit(&from, &format!("/merchant/products/{pid}/archive"), &[("m", &mid)]).await;
    assert_eq!(status, 409);
    assert!(page.contains("id=\"archive-error\"") && page.contains("open orders"));
    // Another shop cannot archive it.
    let (other_key, _) = app.merchant("other").await;
    let r = app.call(reqwest::Method::DELETE, &format!("/products/{pid}"), Some(&other_key), None).await;
    assert_problem(&r, 404, "not_found");

    // Shipped, the order is no longer open: the page archives it.
    let f = app
        .post(
            &format!("/merchant/orders/{oid}/fulfill"),
            Some(&key),
            serde_json::json!({"carrier": "UPS", "tracking_number": "1Z1"}),
        )
        .await;
    assert_eq!(f.status.as_u16(), 200, "{}", f.text);
    let (status, _, loc) = b.submit(&from, &format!("/merchant/products/{pid}/archive"), &[("m", &mid)]).await;
    assert_eq!((status, loc.as_deref()), (303, Some(format!("/merchant?m={mid}#products").as_str())));

    // Gone from the catalogue, the shop's list, the post's Buy button and checkout ...
    assert_problem(&app.get(&format!("/products/{pid}"), None).await, 404, "not_found");
    assert_eq!(b.get(&from).await.0, 404);
    let (_, shop) = b.get(&format!("/merchant?m={mid}")).await;
    assert!(!shop.contains(&format!("/merchant/products/{pid}?")));
    let thread = app.get(&format!("/posts/{post_id}"), Some(&shopper)).await.body;
    assert_eq!(thread["buy"], serde_json::Value::Null);
    let r = app
        .post("/checkouts", Some(&shopper), serde_json::json!({"lines": [{"variant_id": vid, "quantity": 1}]}))
        .await;
    assert!(r.status.is_client_error(), "{}", r.text);
    // ... while the paid order keeps its line; archiving again is a 404.
    let mine = app.get(&format!("/orders/{oid}"), Some(&shopper)).await.body;
    assert_eq!(mine["lines"][0]["product_id"], pid.as_str());
    assert_problem(
        &app.call(reqwest::Method::DELETE, &format!("/products/{pid}"), Some(&key), None).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn a_shop_sets_its_tax_rates_and_return_policy_from_its_page() {
    let app = spawn_app().await;
    let (key, m) = app.merchant("taxes").await;
    let mid = m["id"].as_str().unwrap().to_string();
    let b = Browser::new(&app);
    b.submit("/login", "/login", &[("login", "taxes_o"), ("password", "correct horse battery")]).await;
    let from = format!("/merchant?m={mid}");
    let bad = [("m", mid.as_str()), ("tax_US", "eight"), ("tax_GB", "20"), ("return_policy", "30 days")];
    let (status, page, _) = b.submit(&from, "/merchant/terms", &bad).await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"tax_US-error\"") && page.contains("value=\"eight\"") && page.contains("30 days"));
    let good = [("m", mid.as_str()), ("tax_US", "8.25"), ("tax_GB", ""), ("return_policy", "Returns within 30 days")];
    let (status, _, _) = b.submit(&from, "/merchant/terms", &good).await;
    assert_eq!(status, 303);
    let me = app.get("/merchant", Some(&key)).await.body;
    assert_eq!(me["tax_rates"], serde_json::json!({"US": 825}));
    assert_eq!(me["return_policy"], "Returns within 30 days");
    let (_, page) = b.get(&from).await;
    assert!(page.contains("value=\"8.25\""));
}
