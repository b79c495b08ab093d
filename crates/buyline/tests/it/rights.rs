//! Rights and contracts an attacker or a careful reader checks: log-in guessing counted
//! per account across handle, e-mail and server processes; erasure that leaves no copy
//! (events, later deliveries, e-mails, the database); shipping what is left of a partly
//! refunded order; the rollout answering before stock; post entities as twitter-text
//! gives them.

use crate::helpers::*;
use crate::webhooks::{hooked, hooked_app, Receiver};
use serde_json::{json, Value};
use std::time::Duration;

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

async fn wrong(app: &TestApp, login: &str) -> Resp {
    app.post("/sessions", None, json!({"login": login, "password": "not the password"})).await
}

#[tokio::test]
async fn handle_and_email_share_one_count_of_failed_log_ins() {
    let app = spawn_app().await;
    app.signup("twofaced").await;
    for _ in 0..5 {
        assert_problem(&wrong(&app, "twofaced").await, 401, "unauthorized");
    }
    for _ in 0..5 {
        assert_problem(&wrong(&app, "TwoFaced@Example.com").await, 401, "unauthorized");
    }
    let r = wrong(&app, "@twofaced").await;
    assert_problem(&r, 429, "rate_limited");
    let wait: u64 = r.headers.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
    let r = app
        .post("/sessions", None, json!({"login": "twofaced@example.com", "password": "correct horse battery"}))
        .await;
    assert_problem(&r, 429, "rate_limited");
    // An unknown login is counted too, under its own text, so it cannot be probed freely.
    for _ in 0..10 {
        assert_problem(&wrong(&app, "nobody_here").await, 401, "unauthorized");
    }
    assert_problem(&wrong(&app, "Nobody_Here").await, 429, "rate_limited");
    app.stop().await;
}

#[tokio::test]
async fn two_servers_on_one_database_share_the_count() {
    let a = spawn_app().await;
    let (url, dir) = (a.database_url.clone(), a.dir.path().to_path_buf());
    let b = spawn_with(move |c| {
        c.database_url = Some(url);
        c.data_dir = dir;
    })
    .await;
    a.signup("shared").await;
    for i in 0..10 {
        let app = if i % 2 == 0 { &a } else { &b };
        assert_problem(&wrong(app, "shared").await, 401, "unauthorized");
    }
    assert_problem(&wrong(&a, "shared").await, 429, "rate_limited");
    let r = b.post("/sessions", None, json!({"login": "shared", "password": "correct horse battery"})).await;
    assert_problem(&r, 429, "rate_limited");
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn a_partly_refunded_order_still_ships_the_rest() {
    let app = spawn_app().await;
    let (key, _) = app.merchant("partship").await;
    let p = app.shirt(&key, 5).await;
    let (shopper, _) = app.signup("partbuyer").await;
    let o = app.buy(&shopper, &variant(&p, "M", "red"), "4242424242424242").await.body;
    let r = app
        .post(
            &format!("/merchant/orders/{}/refund", id(&o)),
            Some(&key),
            json!({"amount": 1000, "reason": "one was torn"}),
        )
        .await;
    assert_eq!(r.body["status"], "partially_refunded", "{}", r.text);
    let ship = json!({"carrier": "UPS", "tracking_number": "1Z42"});
    let r = app.post(&format!("/merchant/orders/{}/fulfill", id(&o)), Some(&key), ship.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The refund stays on record; the tracking shows it shipped.
    assert_eq!(r.body["status"], "partially_refunded");
    assert_eq!(r.body["refunded_amount"], 1000);
    assert_eq!(r.body["fulfillment"], ship);
    let seen = app.get(&format!("/orders/{}", id(&o)), Some(&shopper)).await.body;
    assert_eq!(seen["fulfillment"], ship);
    let notes = app.get("/notifications", Some(&shopper)).await.body;
    assert!(notes["data"][0]["text"].as_str().unwrap().contains("1Z42"), "{notes}");
    // Once shipped, it does not ship again.
    let r = app.post(&format!("/merchant/orders/{}/fulfill", id(&o)), Some(&key), ship).await;
    assert_problem(&r, 409, "conflict");
    // What is left can still be refunded.
    let r = app.post(&format!("/merchant/orders/{}/refund", id(&o)), Some(&key), json!({})).await;
    assert_eq!(r.body["status"], "refunded", "{}", r.text);
    app.stop().await;
}

#[tokio::test]
async fn an_excluded_shopper_hears_not_available_before_sold_out() {
    let app = spawn_app().await;
    let (key, m) = app.merchant("soldout").await;
    let p = app.shirt(&key, 0).await;
    let vid = variant(&p, "S", "blue");
    let (gb, gb_account) = app.signup_in("limey", "GB").await;
    let r = app.post("/checkouts", Some(&gb), json!({"lines": [{"variant_id": vid}]})).await;
    assert_problem(&r, 403, "not_available");
    // Before quantities too: nothing about the line is checked for someone who may not buy.
    let r = app.post("/checkouts", Some(&gb), json!({"lines": [{"variant_id": vid, "quantity": 0}]})).await;
    assert_problem(&r, 403, "not_available");
    let mut gb_address = address();
    gb_address["country"] = json!("GB");
    gb_address["region"] = json!("");
    gb_address["postal_code"] = json!("SW1A 1AA");
    let r = app
        .post(
            "/orders",
            Some(&gb),
            json!({"lines": [{"variant_id": vid}], "shipping_address": gb_address, "payment": card("4242424242424242")}),
        )
        .await;
    assert_problem(&r, 403, "not_available");
    // A cart with the sold-out item (put there while it was in stock).
    {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
        sqlx::query(
            "insert into cart_items (id, account_id, merchant_id, product_id, variant_id, quantity, created_at) \
             values ('citem_rights0000000000', $1, $2, $3, $4, 1, 1)",
        )
        .bind(id(&gb_account))
        .bind(id(&m))
        .bind(id(&p))
        .bind(&vid)
        .execute(&mut c)
        .await
        .unwrap();
    }
    let r = app.post(&format!("/carts/{}/checkout", id(&m)), Some(&gb), json!({})).await;
    assert_problem(&r, 403, "not_available");
    // Someone the rollout admits hears about the stock.
    let (us, _) = app.signup("yankee").await;
    assert_problem(
        &app.post("/checkouts", Some(&us), json!({"lines": [{"variant_id": vid}]})).await,
        409,
        "out_of_stock",
    );
    app.stop().await;
}

#[tokio::test]
async fn completing_a_checkout_after_the_kill_switch_is_not_available_before_the_address_is_read() {
    let app = spawn_app().await;
    let (key, _) = app.merchant("switched").await;
    let p = app.shirt(&key, 5).await;
    let (us, _) = app.signup("switchee").await;
    let c = app.post("/checkouts", Some(&us), json!({"lines": [{"variant_id": variant(&p, "S", "red")}]})).await;
    assert_eq!(c.status, 201, "{}", c.text);
    let off = json!({"enabled": false, "countries": ["US"], "percent": 100, "merchants": null, "holdout_percent": 0});
    let admin = app.admin_token.clone();
    app.call(reqwest::Method::PUT, "/admin/flags/buy_button", Some(&admin), Some(off)).await;
    let path = format!("/checkouts/{}/complete", c.body["id"].as_str().unwrap());
    let r = app
        .post(&path, Some(&us), json!({"shipping_address": {"name": ""}, "payment": card("4242424242424242")}))
        .await;
    assert_problem(&r, 403, "not_available");
    app.stop().await;
}

#[tokio::test]
async fn post_entities_count_code_points_and_find_bare_domains() {
    let app = spawn_app().await;
    let (t, _) = app.signup("emoji").await;
    let text = "😀 #Sale by @acme at example.com or https://shop.example.org/x";
    let r = app.post("/posts", Some(&t), json!({"text": text})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let e = &r.body["entities"];
    assert_eq!(e["hashtags"], json!([{"tag": "Sale", "indices": [2, 7]}]));
    assert_eq!(e["mentions"], json!([{"handle": "acme", "indices": [11, 16]}]));
    assert_eq!(
        e["urls"],
        json!([{"url": "example.com", "indices": [20, 31]}, {"url": "https://shop.example.org/x", "indices": [35, 61]}])
    );
    // The page links exactly those words.
    let html = app.client.get(format!("{}/posts/{}", app.url, id(&r.body))).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<a href=\"/u/acme\">@acme</a>"), "{html}");
    assert!(html.contains("<span class=\"tag\">#Sale</span>"), "{html}");
    assert!(html.contains("<a href=\"https://example.com\" rel=\"nofollow noopener\">example.com</a>"), "{html}");
    assert!(
        html.contains(
            "<a href=\"https://shop.example.org/x\" rel=\"nofollow noopener\">https://shop.example.org/x</a>"
        ),
        "{html}"
    );
    app.stop().await;
}

/// Every table's every value, as text: what the database holds, whatever the backend.
async fn database_text(app: &TestApp) -> String {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
    let columns_sql = if app.is_sqlite() {
        "select m.name, p.name from sqlite_master m join pragma_table_info(m.name) p where m.type = 'table'"
    } else {
        "select table_name::text, column_name::text from information_schema.columns where table_schema = 'public'"
    };
    let cols: Vec<(String, String)> = sqlx::query(columns_sql)
        .fetch_all(&mut c)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
        .collect();
    let mut out = String::new();
    // sqlx's own bookkeeping holds checksums (bytes), never user data.
    for (table, col) in cols.into_iter().filter(|(t, _)| !t.starts_with("_sqlx")) {
        let sql = format!("select cast(\"{col}\" as text) from \"{table}\"");
        for r in sqlx::query(&sql).fetch_all(&mut c).await.unwrap() {
            if let Ok(Some(v)) = r.try_get::<Option<String>, _>(0) {
                out.push_str(&v);
                out.push('\n');
            }
        }
    }
    out
}

fn mail_text(app: &TestApp) -> String {
    let mut out = String::new();
    if let Ok(dir) = std::fs::read_dir(app.dir.path().join("mail")) {
        for e in dir.flatten() {
            out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    out
}

/// Her name, street, e-mail and phone (as the helpers' address and sign-up give them).
const PERSONAL: [&str; 4] = ["Ada Lovelace", "1 Market St", "erased_b@example.com", "415 555 0100"];

fn holds_personal_data(hay: &str) -> Vec<&'static str> {
    PERSONAL.iter().copied().filter(|p| hay.contains(p)).collect()
}

#[tokio::test]
async fn erasure_leaves_no_copy_in_events_deliveries_mail_or_tables() {
    let app = hooked_app().await;
    let rx = Receiver::start().await;
    let (key, _, p, shopper) = hooked(&app, &rx, "erased").await;
    let vid = variant(&p, "M", "blue");
    let order = app.buy(&shopper, &vid, "4242424242424242").await.body;
    assert_eq!(order["status"], "paid", "{order}");
    let r = app.post(&format!("/merchant/orders/{}/refund", id(&order)), Some(&key), json!({"amount": 500})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ship = json!({"carrier": "UPS", "tracking_number": "1Z1"});
    assert_eq!(app.post(&format!("/merchant/orders/{}/fulfill", id(&order)), Some(&key), ship).await.status, 200);
    rx.wait_for(2).await;
    // Before: the copies exist (so the checks below mean something). Events are listed
    // once they are a second old.
    let mut events = app.get("/merchant/events", Some(&key)).await;
    for _ in 0..50 {
        if events.body["data"].as_array().is_some_and(|d| d.len() == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        events = app.get("/merchant/events", Some(&key)).await;
    }
    assert_eq!(events.status, 200, "{}", events.text);
    assert_eq!(holds_personal_data(&events.text), PERSONAL.to_vec(), "{}", events.text);
    let mut mail = String::new();
    for _ in 0..50 {
        mail = mail_text(&app);
        if mail.matches("Subject:").count() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(mail.contains("erased_b@example.com"), "the receipts were spooled: {mail}");
    assert!(!holds_personal_data(&database_text(&app).await).is_empty());

    let r = app.call(reqwest::Method::DELETE, "/me", Some(&shopper), None).await;
    assert_eq!(r.status, 204, "{}", r.text);

    // The merchant's events API: the events stay, without her.
    let events = app.get("/merchant/events", Some(&key)).await;
    assert_eq!(events.status, 200);
    assert_eq!(events.body["data"].as_array().unwrap().len(), 2, "{}", events.text);
    assert!(holds_personal_data(&events.text).is_empty(), "{}", events.text);
    // A delivery sent afterwards (a replay of the first) carries the erased version.
    let deliveries = app.get("/merchant/webhook_deliveries", Some(&key)).await.body;
    let first = deliveries["data"].as_array().unwrap().last().unwrap().clone();
    let before = rx.received().len();
    let r = app.post(&format!("/merchant/webhook_deliveries/{}/retry", id(&first)), Some(&key), json!({})).await;
    assert!(r.status.is_success(), "{}", r.text);
    let mut replayed = None;
    for _ in 0..100 {
        let got = rx.received();
        if got.len() > before {
            replayed = Some(got[before].1.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let replayed = replayed.expect("the replay arrived");
    assert_eq!(replayed["data"]["id"], order["id"]);
    assert_eq!(replayed["data"]["shipping_address"], json!(null));
    assert!(holds_personal_data(&replayed.to_string()).is_empty(), "{replayed}");
    // The mail folder and every table.
    assert!(holds_personal_data(&mail_text(&app)).is_empty(), "{}", mail_text(&app));
    let db = database_text(&app).await;
    assert!(holds_personal_data(&db).is_empty(), "{:?}", holds_personal_data(&db));
    // The order stays for the merchant and the ledger: status, totals, lines.
    let kept = app.get(&format!("/merchant/orders/{}", id(&order)), Some(&key)).await.body;
    assert_eq!(kept["status"], "partially_refunded");
    assert_eq!(kept["totals"], order["totals"]);
    assert_eq!(kept["lines"], order["lines"]);
    assert_eq!(kept["refunded_amount"], 500);
    assert_eq!(kept["shipping_address"], json!(null));
    app.stop().await;
}

#[test]
fn erasing_an_event_payload_keeps_the_order_and_drops_the_person() {
    use buyline_core::service::erase_personal_data;
    let order = json!({"type": "order.created", "timestamp": "t", "data": {
        "id": "ord_1", "status": "paid", "totals": {"total": 3000}, "lines": [{"sku": "S"}],
        "shipping_address": {"name": "Ada Lovelace", "line1": "1 Market St", "phone": "+1 415 555 0100"},
        "contact_email": "ada@example.com"}});
    let erased: Value = serde_json::from_str(&erase_personal_data(&order.to_string()).unwrap()).unwrap();
    assert_eq!(erased["data"]["shipping_address"], json!(null));
    assert_eq!(erased["data"]["contact_email"], json!(null));
    assert_eq!(erased["data"]["totals"], order["data"]["totals"]);
    assert_eq!(erased["data"]["lines"], order["data"]["lines"]);
    let cart = json!({"type": "cart.item_added", "data": {"cart_item": {"id": "citem_1"},
        "shopper": {"id": "acct_1", "handle": "ada"}}});
    let erased: Value = serde_json::from_str(&erase_personal_data(&cart.to_string()).unwrap()).unwrap();
    assert_eq!(erased["data"]["shopper"], json!({"id": null, "handle": null}));
    assert_eq!(erased["data"]["cart_item"], cart["data"]["cart_item"]);
    // Already erased: nothing to rewrite.
    assert_eq!(erase_personal_data(&erased.to_string()), None);
}
