//! `Idempotency-Key` under failure: a purchase is bound to its key, so a retry after the
//! first attempt died (or while it runs) finds that purchase; replays hold no secret and
//! expire; a server killed mid-load and retried leaves one order and one capture per key.

use crate::helpers::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

async fn sqlx_conn(database_url: &str) -> sqlx::AnyConnection {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(database_url).await.unwrap()
}

async fn count(database_url: &str, sql: &str) -> i64 {
    use sqlx::Row;
    let mut c = sqlx_conn(database_url).await;
    sqlx::query(sql).fetch_one(&mut c).await.unwrap().try_get::<i64, _>(0).unwrap()
}

async fn keyed(app: &TestApp, path: &str, token: Option<&str>, key: &str, body: &Value) -> Resp {
    let mut req = app.client.post(format!("{}/api/v1{path}", app.url)).header("idempotency-key", key).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("request");
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    Resp { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null), text }
}

async fn shop(app: &TestApp, stock: i64) -> (Value, String, String) {
    let (key, _) = app.merchant("tees").await;
    let p = app.shirt(&key, stock).await;
    let vid = variant(&p, "S", "red");
    let (shopper, _) = app.signup("buyer").await;
    (p, vid, shopper)
}

#[tokio::test]
async fn a_retry_after_the_first_attempt_died_finds_its_order_instead_of_buying_again() {
    let app = spawn_app().await;
    let (p, vid, shopper) = shop(&app, 5).await;
    let body =
        json!({"lines": [{"variant_id": vid}], "shipping_address": address(), "payment": card("4242424242424242")});
    let first = keyed(&app, "/orders", Some(&shopper), "tap-crash", &body).await;
    assert_eq!(first.status, 201, "{}", first.text);
    // As if the server died after paying, before it recorded the answer: the key is left
    // in progress, long enough ago to count as abandoned.
    let mut c = sqlx_conn(&app.database_url).await;
    sqlx::query("update idempotency_keys set status = null, response = null, created_at = 0 where key = 'tap-crash'")
        .execute(&mut c)
        .await
        .unwrap();
    let retry = keyed(&app, "/orders", Some(&shopper), "tap-crash", &body).await;
    assert_eq!(retry.status, 201, "{}", retry.text);
    assert_eq!(retry.body["id"], first.body["id"], "the retry answers with the first order");
    assert_eq!(app.get("/orders", Some(&shopper)).await.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(stock_of(&app, &p, &vid).await, 4);
    assert_eq!(count(&app.database_url, "select count(*) from processor_payments").await, 1, "one authorisation");
    // A new key is a new purchase.
    let other = keyed(&app, "/orders", Some(&shopper), "tap-other", &body).await;
    assert_eq!(other.status, 201, "{}", other.text);
    assert_ne!(other.body["id"], first.body["id"]);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_duplicates_of_a_purchase_all_get_its_one_order() {
    let app = spawn_app().await;
    let (p, vid, shopper) = shop(&app, 5).await;
    let body =
        json!({"lines": [{"variant_id": vid}], "shipping_address": address(), "payment": card("4242424242424242")});
    let taps = (0..6).map(|_| keyed(&app, "/orders", Some(&shopper), "tap-dup", &body));
    let results = join_all(taps.collect()).await;
    let ids: BTreeSet<String> = results
        .iter()
        .map(|r| {
            assert_eq!(r.status, 201, "{}", r.text);
            r.body["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every duplicate answers with the same order");
    assert_eq!(stock_of(&app, &p, &vid).await, 4);
    assert_eq!(count(&app.database_url, "select count(*) from orders").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn replays_keep_no_secret_and_are_scoped_to_the_caller() {
    let app = spawn_app().await;
    let signup =
        json!({"handle": "keyed", "email": "keyed@example.com", "password": "correct horse battery", "country": "US"});
    let first = keyed(&app, "/accounts", None, "signup-1", &signup).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let token = first.body["token"].as_str().unwrap().to_string();
    let again = keyed(&app, "/accounts", None, "signup-1", &signup).await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.body["account"], first.body["account"]);
    assert_eq!(again.body["token"], Value::Null, "a token is shown once, never replayed");

    let login = json!({"login": "keyed", "password": "correct horse battery"});
    assert_eq!(keyed(&app, "/sessions", None, "login-1", &login).await.status, 201);
    let replayed = keyed(&app, "/sessions", None, "login-1", &login).await;
    assert_eq!(replayed.body["token"], Value::Null);

    let shop = json!({"name": "Keyed shop", "handle": "keyedshop", "kind": "retailer", "country": "US"});
    let m = keyed(&app, "/merchants", Some(&token), "shop-1", &shop).await;
    assert_eq!(m.status, 201, "{}", m.text);
    assert!(m.body["api_key"].as_str().unwrap().starts_with("sk_"));
    let m2 = keyed(&app, "/merchants", Some(&token), "shop-1", &shop).await;
    assert_eq!((m2.status.as_u16(), &m2.body["merchant"]), (201, &m.body["merchant"]));
    assert_eq!((&m2.body["api_key"], &m2.body["webhook_secret"]), (&Value::Null, &Value::Null));
    let key = m.body["api_key"].as_str().unwrap();
    let rotated = keyed(&app, "/merchant/webhook_secret/rotate", Some(key), "rot-1", &json!({})).await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);

    // Nothing secret rests in the replay table.
    use sqlx::Row;
    let mut c = sqlx_conn(&app.database_url).await;
    let rows = sqlx::query("select coalesce(response, '') as r from idempotency_keys").fetch_all(&mut c).await.unwrap();
    assert!(rows.len() >= 4);
    for r in rows {
        let text: String = r.try_get("r").unwrap();
        for secret in ["st_", "sk_", "whsec_", "correct horse"] {
            assert!(!text.contains(secret), "a replay keeps {secret}: {text}");
        }
    }
    // Another caller's identical key is another request: no replay of someone else's answer.
    let (other, _) = app.signup("other").await;
    let theirs = keyed(&app, "/merchants", Some(&other), "shop-1", &shop).await;
    assert!(theirs.headers.get("idempotent-replayed").is_none());
    assert_problem(&theirs, 409, "conflict");
    app.stop().await;
}

#[tokio::test]
async fn replays_expire_after_a_day_and_the_key_is_new_again() {
    let app = spawn_app().await;
    let (_, vid, shopper) = shop(&app, 5).await;
    let body =
        json!({"lines": [{"variant_id": vid}], "shipping_address": address(), "payment": card("4242424242424242")});
    assert_eq!(keyed(&app, "/orders", Some(&shopper), "day-old", &body).await.status, 201);
    let mut other = body.clone();
    other["lines"][0]["quantity"] = json!(2);
    assert_problem(&keyed(&app, "/orders", Some(&shopper), "day-old", &other).await, 422, "idempotency_mismatch");
    let day_ago = buyline_core::types::now_micros() - 25 * 3600 * 1_000_000;
    let mut c = sqlx_conn(&app.database_url).await;
    sqlx::query("update idempotency_keys set created_at = $1").bind(day_ago).execute(&mut c).await.unwrap();
    let fresh = keyed(&app, "/orders", Some(&shopper), "day-old", &other).await;
    assert_eq!(fresh.status, 201, "{}", fresh.text);
    assert_eq!(fresh.body["lines"][0]["quantity"], 2);
    // The reconciler forgets expired replays.
    sqlx::query("update idempotency_keys set created_at = $1").bind(day_ago).execute(&mut c).await.unwrap();
    app.services().reconcile(buyline_core::types::now_micros()).await.unwrap();
    assert_eq!(count(&app.database_url, "select count(*) from idempotency_keys").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_server_killed_mid_load_and_retried_leaves_one_order_and_one_capture_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = match std::env::var("BUYLINE_TEST_DATABASE_URL") {
        Ok(base) if !base.is_empty() => fresh_postgres(&base).await,
        _ => buyline::config::database_url(dir.path(), None),
    };
    let admin = format!("op_test_{}", rand::random::<u64>());
    let first = ChildServer::start(dir.path(), &database_url, &admin).await;
    let app = TestApp::external(first.url.clone(), admin.clone(), database_url.clone(), dir);
    let (_, vid, shopper) = shop(&app, 1_000).await;
    let pm = app
        .post(
            "/payment_methods",
            Some(&shopper),
            json!({"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}}),
        )
        .await;
    assert_eq!(pm.status, 201, "{}", pm.text);
    let addr = app.post("/addresses", Some(&shopper), address()).await;
    assert_eq!(addr.status, 201, "{}", addr.text);
    let body = json!({"lines": [{"variant_id": vid}], "address_id": addr.body["id"],
                      "payment": {"payment_method_id": pm.body["id"]}});

    // 160 clients, each with its own key, buy at once; the server is killed while they do.
    const KEYS: usize = 160;
    let keys: Vec<String> = (0..KEYS).map(|i| format!("load-{i}-{}", rand::random::<u32>())).collect();
    let sends = keys.iter().map(|k| {
        let (client, url, token, body) = (app.client.clone(), app.url.clone(), shopper.clone(), body.clone());
        let k = k.clone();
        tokio::spawn(async move {
            client
                .post(format!("{url}/api/v1/orders"))
                .bearer_auth(token)
                .header("idempotency-key", k)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    });
    let inflight: Vec<_> = sends.collect();
    // Kill it once the first orders are committed and others are still on their way (group
    // commit settles many at once: wait for no more than the first).
    for _ in 0..3000 {
        if count(&database_url, "select count(*) from orders").await >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    first.kill();
    let committed_at_kill = count(&database_url, "select count(*) from orders").await;
    let mut answered_before = 0;
    for h in inflight {
        if matches!(h.await.unwrap(), Ok(201)) {
            answered_before += 1;
        }
    }

    // Time passes as it would before anyone retries: the keys the dead server left in
    // progress count as abandoned (the double charge this test guards against came from
    // running such a key afresh).
    let mut c = sqlx_conn(&database_url).await;
    let in_progress = sqlx::query("update idempotency_keys set created_at = 0 where status is null")
        .execute(&mut c)
        .await
        .unwrap()
        .rows_affected();
    eprintln!(
        "killed with {committed_at_kill} orders committed, {answered_before} answered, {in_progress} keys in progress"
    );
    assert!(committed_at_kill < KEYS as i64, "the kill came after the load; nothing was tested");

    // A new server on the same database; every client retries with its key until answered.
    let second = ChildServer::start(app.dir.path(), &database_url, &admin).await;
    let mut app = app;
    app.url = second.url.clone();
    let mut orders: BTreeMap<String, String> = BTreeMap::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while orders.len() < KEYS {
        assert!(std::time::Instant::now() < deadline, "not every key was answered: {}/{KEYS}", orders.len());
        for k in &keys {
            if orders.contains_key(k) {
                continue;
            }
            let r = keyed(&app, "/orders", Some(&shopper), k, &body).await;
            match r.status.as_u16() {
                201 => {
                    orders.insert(k.clone(), r.body["id"].as_str().unwrap().to_string());
                }
                409 => {} // still being settled: retry
                s => panic!("unexpected {s}: {}", r.text),
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    // Let the reconciler void what the crash left authorised without an order.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;

    let distinct: BTreeSet<&String> = orders.values().collect();
    assert_eq!(distinct.len(), KEYS, "one order per key ({answered_before} answered before the kill)");
    let db = &app.database_url;
    assert_eq!(count(db, "select count(*) from orders").await, KEYS as i64, "no order beyond one per key");
    assert_eq!(
        count(db, "select count(*) from processor_payments where status = 'captured'").await,
        KEYS as i64,
        "one capture per order"
    );
    assert_eq!(
        count(
            db,
            "select count(*) from processor_payments p where status in ('captured', 'authorized') \
             and not exists (select 1 from orders o where o.payment_id = p.id)"
        )
        .await,
        0,
        "no money held or taken without an order"
    );
    assert_eq!(count(db, "select count(*) from orders where captured_at is null").await, 0);
    assert_eq!(
        count(db, "select count(*) from (select payment_id from orders group by payment_id having count(*) > 1) t")
            .await,
        0
    );
    let tb = app.trial_balance().await;
    assert_eq!(tb["totals"], json!({"USD": 0}));
    second.kill();
    app.stop().await;
}

#[tokio::test]
async fn erasing_an_account_erases_its_replays() {
    let app = spawn_app().await;
    let (key, _) = app.merchant("tees").await;
    let p = app.shirt(&key, 5).await;
    let vid = variant(&p, "S", "red");
    let signup =
        json!({"handle": "gone", "email": "gone@example.com", "password": "correct horse battery", "country": "US"});
    let made = keyed(&app, "/accounts", None, "signup-gone", &signup).await;
    assert_eq!(made.status, 201, "{}", made.text);
    let token = made.body["token"].as_str().unwrap().to_string();
    let body =
        json!({"lines": [{"variant_id": vid}], "shipping_address": address(), "payment": card("4242424242424242")});
    assert_eq!(keyed(&app, "/orders", Some(&token), "tap-gone", &body).await.status, 201);
    let stays = keyed(&app, "/products", Some(&key), "prod-stays", &json!({"name": "x"})).await;
    assert_eq!(stays.status, 422);
    assert_eq!(count(&app.database_url, "select count(*) from idempotency_keys").await, 3);
    let r = app.call(reqwest::Method::DELETE, "/me", Some(&token), None).await;
    assert!(r.status.is_success(), "{}", r.text);
    use sqlx::Row;
    let mut c = sqlx_conn(&app.database_url).await;
    let left: Vec<String> = sqlx::query("select key from idempotency_keys")
        .fetch_all(&mut c)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String, _>("key").unwrap())
        .collect();
    assert_eq!(left, vec!["prod-stays".to_string()], "her sign-up and her order's replays are gone; others stay");
    app.stop().await;
}

#[tokio::test]
async fn duplicates_of_a_request_still_running_wait_for_its_answer() {
    let app = spawn_app().await;
    let (token, _) = app.signup("poster").await;
    let body = json!({"text": "one post, however often it is sent"});
    let sends = (0..6).map(|_| keyed(&app, "/posts", Some(&token), "post-dup", &body));
    let results = join_all(sends.collect()).await;
    let ids: BTreeSet<String> = results
        .iter()
        .map(|r| {
            assert_eq!(r.status, 201, "{}", r.text);
            r.body["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every duplicate gets the first answer");
    assert_eq!(count(&app.database_url, "select count(*) from posts").await, 1);
    app.stop().await;
}
