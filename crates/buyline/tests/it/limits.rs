//! Limits before work (issue 11 items 1 and 7): a small request that would make the server
//! build something huge is refused at once and the server stays up; every list, map and
//! string is sized before it is walked; webhook URLs that carry a private IPv4 address in
//! an IPv6 form are refused; and a shutdown finishes within its grace period even while a
//! client holds a request open.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn options(n: usize, values: usize) -> Value {
    let list: Vec<Value> = (0..n)
        .map(|i| json!({"name": format!("o{i}"), "values": (0..values).map(|j| format!("v{j}")).collect::<Vec<_>>()}))
        .collect();
    Value::Array(list)
}

/// `n` distinct keys, each mapped to `value`.
fn map_of(n: usize, value: Value) -> Value {
    Value::Object((0..n).map(|i| (format!("K{i}"), value.clone())).collect())
}

#[tokio::test]
async fn eight_options_of_ten_values_are_refused_at_once() {
    let app = spawn_app().await;
    let (key, _) = app.merchant("combo").await;
    // The 684-byte body: 10^8 combinations, which the server used to build first.
    let body = json!({"name": "Boom", "kind": "digital", "price": 100, "options": options(8, 10)});
    assert!(body.to_string().len() < 1024);
    let started = Instant::now();
    let r = app.post("/products", Some(&key), body).await;
    let p = assert_problem(&r, 422, "validation_failed");
    assert_eq!(fields(&p), ["options"], "{}", r.text);
    // Three options of thirty values: each option in bounds, 27 000 variants together.
    let r = app
        .post(
            "/products",
            Some(&key),
            json!({"name": "Big", "kind": "digital", "price": 100, "options": options(3, 30)}),
        )
        .await;
    let p = assert_problem(&r, 422, "validation_failed");
    assert_eq!(fields(&p), ["options"]);
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("27000"), "{}", r.text);
    // Many options of many values: the list is refused and only the first three are looked at.
    let r = app
        .post(
            "/products",
            Some(&key),
            json!({"name": "Wide", "kind": "digital", "price": 100, "options": options(20, 50)}),
        )
        .await;
    let p = assert_problem(&r, 422, "validation_failed");
    assert_eq!(fields(&p), ["options", "options[0].values", "options[1].values", "options[2].values"], "{}", r.text);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    // Listed variants and shipping rates are counted before they are read.
    let variants: Vec<Value> = (0..101).map(|_| json!({"options": {}})).collect();
    let r = app
        .post("/products", Some(&key), json!({"name": "V", "kind": "digital", "price": 100, "variants": variants}))
        .await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["variants"]);
    let rates: Vec<Value> =
        (0..21).map(|i| json!({"name": format!("r{i}"), "price": 1, "countries": ["US"]})).collect();
    let r = app
        .post("/products", Some(&key), json!({"name": "S", "kind": "physical", "price": 100, "shipping_rates": rates}))
        .await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["shipping_rates"]);
    let countries: Vec<String> = (0..251).map(|_| "US".to_string()).collect();
    let many = json!([{"name": "All", "price": 1, "countries": countries}]);
    let r = app
        .post("/products", Some(&key), json!({"name": "S", "kind": "physical", "price": 100, "shipping_rates": many}))
        .await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["shipping_rates[0].countries"]);

    // The server is up and still makes products, and a PATCH is sized the same way.
    let shirt = app.shirt(&key, 5).await;
    assert_eq!(shirt["variants"].as_array().unwrap().len(), 4);
    let pid = shirt["id"].as_str().unwrap();
    let rates: Vec<Value> =
        (0..21).map(|i| json!({"name": format!("r{i}"), "price": 1, "countries": ["US"]})).collect();
    let r = app.patch(&format!("/products/{pid}"), Some(&key), json!({"shipping_rates": rates})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["shipping_rates"]);
    let vid = shirt["variants"][0]["id"].as_str().unwrap();
    let r = app.patch(&format!("/products/{pid}/variants/{vid}"), Some(&key), json!({"sku": "x".repeat(5000)})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["sku"]);
    app.stop().await;
}

#[tokio::test]
async fn lists_maps_and_strings_are_sized_first() {
    let app = spawn_app().await;
    let op = app.admin_token.clone();
    let (key, _) = app.merchant("sizes").await;

    let r = app.patch("/merchant", Some(&key), json!({"tax_rates": map_of(251, json!(100))})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["tax_rates"]);
    let r = app.patch("/merchant", Some(&key), json!({"cart_hashtags": map_of(251, json!("#Cart"))})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["cart_hashtags"]);
    let r =
        app.patch("/merchant", Some(&key), json!({"cart_hashtags": {"US": format!("#{}", "a".repeat(5000))}})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["cart_hashtags.US"]);
    let r =
        app.patch("/merchant", Some(&key), json!({"cart_kinds": ["physical", "physical", "digital", "digital"]})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["cart_kinds"]);
    let long_url = format!("https://example.com/{}", "a".repeat(3000));
    let r = app.patch("/merchant", Some(&key), json!({"webhook_url": long_url})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["webhook_url"]);
    let r = app.patch("/merchant", Some(&key), json!({"return_policy": "é".repeat(20_000)})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["return_policy"]);

    // Post text is measured in bytes before twitter-text reads it.
    let (shopper, _) = app.signup("poster").await;
    let r = app.post("/posts", Some(&shopper), json!({"text": "😀".repeat(4000)})).await;
    let p = assert_problem(&r, 422, "validation_failed");
    assert_eq!(fields(&p), ["text"]);
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("bytes"), "{}", r.text);
    // Text twitter-text 0.3.1 panicked on: an answer, not a 500.
    let r = app.post("/posts", Some(&shopper), json!({"text": "caféX@foo hi"})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["text"]);

    // The operator's maps and lists.
    let mut merchants = serde_json::Map::new();
    for i in 0..1001 {
        merchants.insert(format!("mer_{i}"), json!(100));
    }
    let r = app.call(Method::PUT, "/admin/fees", Some(&op), Some(json!({"kinds": {}, "merchants": merchants}))).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["merchants"]);
    let r = app.call(Method::PUT, "/admin/fees", Some(&op), Some(json!({"kinds": map_of(5, json!(1))}))).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["kinds"]);
    let countries: Vec<String> = (0..251).map(|_| "US".to_string()).collect();
    let flag =
        json!({"enabled": true, "countries": countries, "percent": 100, "merchants": null, "holdout_percent": 0});
    let r = app.call(Method::PUT, "/admin/flags/buy_button", Some(&op), Some(flag)).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["countries"]);
    let allow: Vec<String> = (0..1001).map(|i| format!("mer_{i}")).collect();
    let flag = json!({"enabled": true, "countries": ["US"], "percent": 100, "merchants": allow, "holdout_percent": 0});
    let r = app.call(Method::PUT, "/admin/flags/buy_button", Some(&op), Some(flag)).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["merchants"]);
    let flag = json!({"enabled": true, "countries": ["US"], "percent": 100, "merchants": ["x".repeat(100)], "holdout_percent": 0});
    let r = app.call(Method::PUT, "/admin/flags/buy_button", Some(&op), Some(flag)).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["merchants[0]"]);

    // Pages: the limit and the cursor.
    let r = app.get("/timeline?limit=101", Some(&shopper)).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["limit"]);
    let r = app.get(&format!("/timeline?cursor={}", "A".repeat(400)), Some(&shopper)).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["cursor"]);

    // Checkout lines were already bounded; they stay so.
    let lines: Vec<Value> = (0..21).map(|i| json!({"variant_id": format!("var_{i}"), "quantity": 1})).collect();
    let r = app.post("/checkouts", Some(&shopper), json!({"lines": lines})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["lines"]);
    app.stop().await;
}

#[tokio::test]
async fn webhook_urls_carrying_a_private_ipv4_are_refused() {
    // Private targets not allowed: the helpers' default.
    let app = spawn_app().await;
    let (key, _) = app.merchant("ssrf").await;
    for url in [
        "http://[::127.0.0.1]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:7f00:1::]/",
        "http://[fec0::1]/",
        "http://[::ffff:0:a9fe:a9fe]/",
        "http://[64:ff9b:1::a00:1]/",
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
        "http://0x7f.1/",
    ] {
        let r = app.patch("/merchant", Some(&key), json!({"webhook_url": url})).await;
        assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["webhook_url"], "{url}");
    }
    // The same guard on a new merchant.
    let (owner, _) = app.signup("ssrf2_o").await;
    let r = app
        .post(
            "/merchants",
            Some(&owner),
            json!({"name": "S2", "handle": "ssrf2", "kind": "retailer", "country": "US", "webhook_url": "http://[2002:a9fe:a9fe::]/"}),
        )
        .await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["webhook_url"]);
    // A public IPv6 address is still a fine target.
    let r = app.patch("/merchant", Some(&key), json!({"webhook_url": "https://[2606:2800:220:1::1]/hooks"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.stop().await;
}

/// Opens a connection and sends a sign-up whose body never finishes: the handler waits for
/// it as long as the connection stays open.
async fn hold_request_open(addr: &str) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/accounts HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"handle\": \""
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.flush().await.unwrap();
    s
}

#[tokio::test]
async fn stop_finishes_within_its_grace_while_a_request_is_held_open() {
    let app = spawn_with(|c| c.shutdown_grace_secs = 1).await;
    let addr = app.url.trim_start_matches("http://").to_string();
    let _held = hold_request_open(&addr).await;
    // Let the server read the head and start waiting on the body.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(6), app.stop())
        .await
        .expect("stop waited on the held request past its grace period");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "stopped before the grace period: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn sigterm_ends_the_process_within_its_grace() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_buyline"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--no-demo", "--shutdown-grace-secs", "1"])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("BUYLINE_ADMIN_TOKEN")
        .env("BUYLINE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let pg = match std::env::var("BUYLINE_TEST_DATABASE_URL") {
        Ok(base) if !base.is_empty() => Some(fresh_postgres(&base).await),
        _ => None,
    };
    match &pg {
        Some(url) => cmd.env("DATABASE_URL", url),
        None => cmd.env_remove("DATABASE_URL"),
    };
    let mut child = cmd.spawn().expect("start target/debug/buyline");
    let mut stdout = child.stdout.take().unwrap();
    // "Buyline is running at http://127.0.0.1:PORT"
    let mut seen = String::new();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        let mut buf = [0u8; 256];
        loop {
            let n = stdout.read(&mut buf).await.unwrap();
            assert!(n > 0, "the server exited before listening: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            let prefix = "Buyline is running at ";
            if let Some(i) = seen.find(prefix) {
                if let Some(j) = seen[i..].find('\n') {
                    return seen[i + prefix.len()..i + j].trim().to_string();
                }
            }
        }
    })
    .await
    .expect("the server listens");
    let addr = url.trim_start_matches("http://").to_string();
    let _held = hold_request_open(&addr).await;
    // A second connection that is only open (no request) must not hold it either.
    let _idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pid = child.id().expect("pid").to_string();
    let started = Instant::now();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(8), child.wait()).await;
    let elapsed = started.elapsed();
    if status.is_err() {
        let _ = child.kill().await;
    }
    if let Some(url) = pg {
        use sqlx::Connection;
        let base = std::env::var("BUYLINE_TEST_DATABASE_URL").unwrap();
        let name = url::Url::parse(&url).unwrap().path().trim_start_matches('/').to_string();
        if let Ok(mut c) = sqlx::PgConnection::connect(&base).await {
            let _ = sqlx::query(&format!("drop database if exists {name} with (force)")).execute(&mut c).await;
        }
    }
    let status = status.expect("the process ignored SIGTERM past its grace period").unwrap();
    // The held request is dropped at the deadline and the stop completes.
    assert!(status.success(), "{status:?} after {elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}
