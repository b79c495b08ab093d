//! Every `/merchant` and `/admin` route, asked by someone it is not for — a visitor, a
//! shopper without a shop, the owner of another shop — with a valid CSRF token and the shop's
//! own ids: nobody sees the shop's data and nothing of the shop changes.

use crate::helpers::*;
use serde_json::json;

struct Actor {
    name: &'static str,
    browser: Browser,
}

async fn logged_in_as(app: &TestApp, login: &str) -> Browser {
    let b = Browser::new(app);
    let (status, _, _) = b.submit("/login", "/login", &[("login", login), ("password", "correct horse battery")]).await;
    assert_eq!(status, 303, "{login} logs in");
    b
}

#[tokio::test]
async fn merchant_and_operator_pages_give_nothing_to_anyone_else() {
    let app = spawn_app().await;
    // The shop under attack: a product, a post, an order, a campaign, a delivery.
    let (key, shop) = app.merchant("target").await;
    let mid = shop["id"].as_str().unwrap().to_string();
    let p = app.shirt(&key, 5).await;
    let pid = p["id"].as_str().unwrap().to_string();
    let vid = variant(&p, "M", "red");
    let post = app.post("/posts", Some(&key), json!({"text": "Secret launch", "product_id": pid})).await;
    let post_id = post.body["id"].as_str().unwrap().to_string();
    let campaign = app.post("/campaigns", Some(&key), json!({"post_id": post_id, "countries": ["US"]})).await;
    assert_eq!(campaign.status.as_u16(), 201, "{}", campaign.text);
    let cmp = campaign.body["id"].as_str().unwrap().to_string();
    let (buyer, _) = app.signup("buyer").await;
    let order = app.buy(&buyer, &vid, "4242424242424242").await;
    let oid = order.body["id"].as_str().unwrap().to_string();
    let webhook_before = app.get("/merchant", Some(&key)).await.body["webhook_url"].clone();

    // Those it is not for.
    app.signup("plain").await;
    app.merchant("rival").await;
    let actors = vec![
        Actor { name: "visitor", browser: Browser::new(&app) },
        Actor { name: "shopper", browser: logged_in_as(&app, "plain").await },
        Actor { name: "rival", browser: logged_in_as(&app, "rival_o").await },
    ];
    let m = format!("?m={mid}");
    let gets = [
        format!("/merchant{m}"),
        format!("/merchant/products/new{m}"),
        format!("/merchant/products/{pid}{m}"),
        format!("/merchant/products/{pid}/uploads{m}"),
        format!("/merchant/campaigns{m}"),
        format!("/merchant/orders/{oid}{m}"),
        format!("/merchant/funnel/{post_id}{m}"),
        "/admin".to_string(),
        format!("/admin/merchants/{mid}"),
        format!("/admin/funnel/{post_id}"),
        format!("/admin/funnel?post_id={post_id}"),
    ];
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/merchant/products".into(), vec![("name", "Planted"), ("kind", "physical"), ("price", "1.00")]),
        (format!("/merchant/products/{pid}"), vec![("name", "Renamed"), ("description", "x"), ("return_policy", "x")]),
        (format!("/merchant/products/{pid}/variants/{vid}"), vec![("price", "0.01"), ("stock", "0")]),
        (format!("/merchant/products/{pid}/image"), vec![]),
        (format!("/merchant/products/{pid}/file"), vec![]),
        ("/merchant/posts".into(), vec![("text", "hijacked"), ("product_id", &pid)]),
        ("/merchant/campaigns".into(), vec![("post_id", &post_id), ("countries", "GB")]),
        (format!("/merchant/campaigns/{cmp}/status"), vec![("status", "ended")]),
        ("/merchant/webhook".into(), vec![("webhook_url", "https://attacker.example/hook")]),
        ("/merchant/cart".into(), vec![("cart_form", "1"), ("tag_US", "#Hijack")]),
        ("/merchant/webhook_secret/rotate".into(), vec![]),
        ("/merchant/terms".into(), vec![("tax_US", "99"), ("return_policy", "none")]),
        (format!("/merchant/products/{pid}/archive"), vec![]),
        (format!("/merchant/orders/{oid}/fulfill"), vec![("carrier", "UPS"), ("tracking_number", "1Z")]),
        (format!("/merchant/orders/{oid}/refund"), vec![]),
        (format!("/merchant/orders/{oid}/cancel"), vec![]),
        ("/admin/flag".into(), vec![("enabled", "1"), ("countries", "GB"), ("percent", "1"), ("holdout_percent", "0")]),
        ("/admin/kill".into(), vec![("confirm", "yes")]),
        (
            "/admin/fees".into(),
            vec![("kind_retailer", "9999"), ("kind_brand", "0"), ("kind_artist", "0"), ("kind_nonprofit", "0")],
        ),
        (format!("/admin/fees/overrides/{mid}/delete"), vec![]),
        ("/admin/payouts".into(), vec![("merchant_id", &mid)]),
    ];
    for a in &actors {
        for path in &gets {
            let (status, page) = a.browser.get(path).await;
            let who = a.name;
            assert!(!page.contains("Secret launch") && !page.contains(&oid), "{who} GET {path} showed the shop's data");
            assert!(!page.contains("Kill switch"), "{who} GET {path} showed the console");
            // Only log-in or open-a-shop forms, redirects and refusals.
            let allowed = match status {
                303 | 401 | 403 | 404 => true,
                // The console's log-in form is all a stranger gets from /admin.
                200 => path == "/admin" && page.contains("Operator token"),
                _ => false,
            };
            assert!(allowed, "{who} GET {path} answered {status}");
        }
        for (path, fields) in &posts {
            let mut fields = fields.clone();
            fields.push(("m", &mid));
            let (status, page, _) = a.browser.submit("/", path, &fields).await;
            let who = a.name;
            // A refusal: to log in (303), the console's log-in (401), not yours (403/404), or a
            // body that is not an upload (400) — never a success.
            assert!([303, 400, 401, 403, 404].contains(&status), "{who} POST {path} answered {status}");
            assert!(!page.contains(&oid), "{who} POST {path} showed the shop's order");
        }
    }

    // Nothing of the shop or the platform changed.
    let now = app.get(&format!("/products/{pid}"), None).await.body;
    assert_eq!(now["name"], p["name"]);
    assert_eq!(now["variants"], app.get(&format!("/products/{pid}"), None).await.body["variants"]);
    let v = now["variants"].as_array().unwrap().iter().find(|v| v["id"] == vid.as_str()).unwrap().clone();
    assert_eq!(
        (v["price"].clone(), v["inventory"]["quantity"].as_i64()),
        (p["variants"].as_array().unwrap().iter().find(|x| x["id"] == vid.as_str()).unwrap()["price"].clone(), Some(4))
    );
    let me = app.get("/merchant", Some(&key)).await.body;
    assert_eq!(me["webhook_url"], webhook_before);
    assert!(me["cart_hashtags"].get("US").is_none());
    assert!(me["tax_rates"].get("US").is_none());
    assert_eq!(app.get(&format!("/products/{pid}"), None).await.status.as_u16(), 200, "not archived");
    assert_eq!(app.get(&format!("/merchant/orders/{oid}"), Some(&key)).await.body["status"], "paid");
    assert_eq!(app.get("/campaigns", Some(&key)).await.body["data"][0]["status"], "active");
    assert_eq!(app.get("/campaigns", Some(&key)).await.body["data"].as_array().unwrap().len(), 1);
    let posts = app.get("/accounts/target/posts", None).await.body;
    assert_eq!(posts["data"].as_array().unwrap().len(), 1, "no post was made as the shop");
    let flag = app.get("/admin/flags/buy_button", Some(&app.admin_token)).await.body;
    assert_eq!((flag["enabled"].as_bool(), flag["countries"].clone()), (Some(true), json!(["US"])));
    assert_eq!(app.get("/admin/fees", Some(&app.admin_token)).await.body["kinds"]["retailer"], 500);
    assert_eq!(app.get("/admin/payouts", Some(&app.admin_token)).await.body["data"], json!([]));
    let rival_products = app.get("/accounts/rival/posts", None).await.body;
    assert_eq!(rival_products["data"], json!([]), "the rival's own shop did not get the planted post either");
}
