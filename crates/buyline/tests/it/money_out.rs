//! Money out and every merchant kind: uploads into the blob store (limits, types, serving),
//! digital delivery (links on the order, its page and the receipt; counted, expired,
//! revoked), balances from the ledger, and payouts (idempotent, never twice, across two
//! servers on one database, the refund window, the schedule, `payout.paid`). One test runs
//! against a real S3-compatible server when `BUYLINE_TEST_S3_ENDPOINT` names one.

use crate::helpers::*;
use crate::webhooks::{hooked, hooked_app, Receiver};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// A 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53, 0xDE, 0x00, 0x00, 0x00, 0x0C, 0x49,
    0x44, 0x41, 0x54, 0x08, 0xD7, 0x63, 0xF8, 0xCF, 0xC0, 0x00, 0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xDD, 0x8D, 0xB0,
    0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

/// `PUT /api/v1{path}` with a raw body.
async fn put_raw(app: &TestApp, path: &str, key: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Resp {
    let mut req = app.client.put(format!("{}/api/v1{path}", app.url)).bearer_auth(key).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp { status, headers, body, text }
}

/// GET an absolute URL: status, headers and bytes.
async fn fetch(app: &TestApp, url: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let r = app.client.get(url).send().await.unwrap();
    let (s, h) = (r.status().as_u16(), r.headers().clone());
    (s, h, r.bytes().await.unwrap().to_vec())
}

/// Every file under `dir`, however deep.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

async fn sql(app: &TestApp, statement: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
    sqlx::query(statement).execute(&mut c).await.unwrap();
    c.close().await.ok();
}

async fn digital(app: &TestApp, key: &str, name: &str) -> Value {
    let r = app.post("/products", Some(key), json!({"name": name, "kind": "digital", "price": 1200})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

async fn buy_digital(app: &TestApp, shopper: &str, product: &Value) -> Resp {
    let vid = product["variants"][0]["id"].as_str().unwrap();
    app.post(
        "/orders",
        Some(shopper),
        json!({"lines": [{"variant_id": vid, "quantity": 1}], "payment": card("4242424242424242")}),
    )
    .await
}

/// Sends a chunked request (no Content-Length) of `total` bytes in 64 KiB chunks, the way a
/// streaming client would; returns the status line's code and the body.
async fn put_chunked(app: &TestApp, path: &str, key: &str, first: &[u8], total: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.url.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "PUT /api/v1{path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: image/png\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut sent = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    chunk[..first.len()].copy_from_slice(first);
    while sent < total {
        let n = chunk.len().min(total - sent);
        // The server may answer and close before the rest is sent: that is the point.
        if s.write_all(format!("{n:x}\r\n").as_bytes()).await.is_err()
            || s.write_all(&chunk[..n]).await.is_err()
            || s.write_all(b"\r\n").await.is_err()
        {
            break;
        }
        chunk[..first.len()].fill(0);
        sent += n;
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text)
}

#[tokio::test]
async fn images_are_limited_sniffed_stored_by_content_and_served_for_good() {
    let app = spawn_with(|c| c.max_image_bytes = 64 * 1024).await;
    let (key, _) = app.merchant("pics").await;
    let (other_key, _) = app.merchant("others").await;
    let (shopper, _) = app.signup("looker").await;
    let shirt = app.shirt(&key, 5).await;
    let path = format!("/products/{}/image", id(&shirt));

    // Who may upload: the owner only; anyone else's product is not found.
    assert_problem(&put_raw(&app, &path, &other_key, PNG.to_vec(), &[]).await, 404, "not_found");
    assert_problem(&put_raw(&app, &path, &shopper, PNG.to_vec(), &[]).await, 403, "forbidden");
    assert_problem(&put_raw(&app, "/products/prod_nope/image", &key, PNG.to_vec(), &[]).await, 404, "not_found");

    // The type comes from the bytes, not the header.
    let r = put_raw(&app, &path, &key, b"GIF? no, text pretending".to_vec(), &[("content-type", "image/png")]).await;
    assert_problem(&r, 415, "unsupported_media_type");
    assert_problem(&put_raw(&app, &path, &key, vec![], &[]).await, 422, "validation_failed");
    // Over the limit: refused by its declared length, and while streaming without one.
    let mut big = PNG.to_vec();
    big.resize(64 * 1024 + 1, 0);
    assert_problem(&put_raw(&app, &path, &key, big, &[]).await, 413, "payload_too_large");
    let (code, text) = put_chunked(&app, &path, &key, PNG, 1024 * 1024).await;
    assert_eq!(code, 413, "{text}");
    assert!(text.contains("payload_too_large"), "{text}");
    let blobs = app.dir.path().join("blobs");
    assert_eq!(files_under(&blobs), Vec::<std::path::PathBuf>::new(), "nothing stored by refused uploads");

    // A real image: stored under its SHA-256, the product's image_url points at it.
    let r = put_raw(&app, &path, &key, PNG.to_vec(), &[("content-type", "application/octet-stream")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let url = r.body["image_url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{}/api/v1/media/", app.url)) && url.ends_with(".png"), "{url}");
    let stored = files_under(&blobs);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].to_string_lossy().contains("images/"));
    assert_eq!(app.get(&format!("/products/{}", id(&shirt)), None).await.body["image_url"], url);
    // The same bytes again store nothing new.
    assert_eq!(put_raw(&app, &path, &key, PNG.to_vec(), &[]).await.status, 200);
    assert_eq!(files_under(&blobs).len(), 1);

    let (status, headers, bytes) = fetch(&app, &url).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, PNG);
    assert_eq!(headers["content-type"], "image/png");
    let cache = headers["cache-control"].to_str().unwrap();
    assert!(cache.contains("public") && cache.contains("immutable") && cache.contains("max-age="), "{cache}");
    let etag = headers["etag"].to_str().unwrap().to_string();
    let again = app.client.get(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 304);
    let (status, _, _) = fetch(&app, &format!("{}/api/v1/media/{}.png", app.url, "0".repeat(64))).await;
    assert_eq!(status, 404);
    let (status, _, _) = fetch(&app, &format!("{}/api/v1/media/..%2Fsecret.png", app.url)).await;
    assert_eq!(status, 404);

    // Shown where the product is: the buy card (via the product) and the product page.
    let (status, _, page) = fetch(&app, &format!("{}/p/{}", app.url, id(&shirt))).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&page).contains(&url), "the product page shows the image");
    app.stop().await;
}

#[tokio::test]
async fn a_digital_product_delivers_its_file_by_counted_expiring_links() {
    let app = spawn_app().await;
    let (key, _) = app.merchant("books").await;
    let (shopper, _) = app.signup("reader").await;
    let (stranger, _) = app.signup("stranger").await;
    let book = digital(&app, &key, "Field Guide").await;

    // Neither posted nor sold before its file is there.
    let r = app.post("/posts", Some(&key), json!({"text": "Out now", "product_id": id(&book)})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), vec!["product_id"]);
    let r = buy_digital(&app, &shopper, &book).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), vec!["lines[0].variant_id"]);
    // A physical product has no file.
    let shirt = app.shirt(&key, 5).await;
    let r = put_raw(&app, &format!("/products/{}/file", id(&shirt)), &key, b"x".to_vec(), &[]).await;
    assert_problem(&r, 422, "validation_failed");

    let content = b"%PDF-1.4 a small field guide".to_vec();
    let r = put_raw(
        &app,
        &format!("/products/{}/file", id(&book)),
        &key,
        content.clone(),
        &[("content-type", "application/pdf"), ("content-disposition", "attachment; filename=\"../guide.pdf\"")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["file"], json!({"name": "guide.pdf", "content_type": "application/pdf", "size": content.len()}));
    let r = app.post("/posts", Some(&key), json!({"text": "Out now", "product_id": id(&book)})).await;
    assert_eq!(r.status, 201, "{}", r.text);

    let order = buy_digital(&app, &shopper, &book).await;
    assert_eq!(order.status, 201, "{}", order.text);
    let oid = id(&order.body);
    // The order carries its link from the purchase's own answer on, and in the list too.
    assert_eq!(order.body["lines"][0]["download"]["downloads_left"], 5, "{}", order.text);
    let listed = app.get("/orders", Some(&shopper)).await.body;
    assert_eq!(listed["data"][0]["id"], oid.as_str());
    assert!(listed["data"][0]["lines"][0]["download"]["url"].is_string(), "{listed}");
    let o = app.get(&format!("/orders/{oid}"), Some(&shopper)).await.body;
    let d = o["lines"][0]["download"].clone();
    assert_eq!(d["downloads_left"], 5, "{o}");
    assert!(d["expires_at"].is_string());
    let url = d["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{}/api/v1/downloads/", app.url)), "{url}");
    // The token is long and unguessable, and kept only hashed.
    let token = url.rsplit('/').next().unwrap().to_string();
    assert!(token.len() > 40);
    // Nobody else sees the order.
    assert_problem(&app.get(&format!("/orders/{oid}"), Some(&stranger)).await, 404, "not_found");

    // The receipt e-mail carries the same link.
    {
        use sqlx::{Connection, Row};
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
        let bodies: Vec<String> = sqlx::query("select body from emails where to_address = 'reader@example.com'")
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>("body"))
            .collect();
        assert!(bodies.iter().any(|b| b.contains(&url)), "{bodies:?}");
        let hashes: Vec<String> = sqlx::query("select token_hash from downloads")
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>("token_hash"))
            .collect();
        assert!(hashes.is_empty(), "no row until the link is used");
        c.close().await.ok();
    }

    // A HEAD (a link preview) counts nothing.
    let head = app.client.head(&url).send().await.unwrap();
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(head.headers()["content-disposition"], "attachment; filename=\"guide.pdf\"");
    // Five downloads, then 410; each counted once even when requested together.
    let first = fetch(&app, &url).await;
    assert_eq!(first.0, 200);
    assert_eq!(first.2, content);
    assert_eq!(first.1["content-disposition"], "attachment; filename=\"guide.pdf\"");
    assert_eq!(first.1["content-type"], "application/pdf");
    let dl_path = format!("/downloads/{token}");
    let rest = join_all((0..6).map(|_| app.get(&dl_path, None)).collect()).await;
    assert_eq!(rest.iter().filter(|r| r.status == 200).count(), 4);
    for r in rest.iter().filter(|r| r.status != 200) {
        assert_problem(r, 410, "gone");
    }
    let o = app.get(&format!("/orders/{oid}"), Some(&shopper)).await.body;
    assert_eq!(o["lines"][0]["download"]["downloads_left"], 0);

    // A tampered or unknown token is not found.
    let mut bad = token.clone();
    bad.pop();
    bad.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert_problem(&app.get(&format!("/downloads/{bad}"), None).await, 404, "not_found");
    assert_problem(&app.get("/downloads/nothing-here", None).await, 404, "not_found");

    // A fresh link from the order: five more.
    let r = app.post(&format!("/orders/{oid}/lines/0/download"), Some(&shopper), json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let fresh = r.body["lines"][0]["download"]["url"].as_str().unwrap().to_string();
    assert_ne!(fresh, url);
    assert_eq!(r.body["lines"][0]["download"]["downloads_left"], 5);
    assert_eq!(fetch(&app, &fresh).await.0, 200);
    assert_problem(
        &app.post(&format!("/orders/{oid}/lines/0/download"), Some(&stranger), json!({})).await,
        404,
        "not_found",
    );
    assert_problem(
        &app.post(&format!("/orders/{oid}/lines/7/download"), Some(&shopper), json!({})).await,
        422,
        "validation_failed",
    );

    // Expiry, with time moved rather than waited for.
    sql(&app, "update downloads set expires_at = 1").await;
    let r = app.get(&format!("/downloads/{}", fresh.rsplit('/').next().unwrap()), None).await;
    assert!(assert_problem(&r, 410, "gone")["detail"].as_str().unwrap().contains("expired"));

    // A keyed request for a fresh link: its stored replay keeps no link.
    let keyed = || {
        app.client
            .post(format!("{}/api/v1/orders/{oid}/lines/0/download", app.url))
            .bearer_auth(&shopper)
            .header("idempotency-key", "fresh-1")
            .json(&json!({}))
            .send()
    };
    let first: Value = keyed().await.unwrap().json().await.unwrap();
    assert!(first["lines"][0]["download"]["url"].is_string(), "{first}");
    let replay = keyed().await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replay: Value = replay.json().await.unwrap();
    assert!(replay["lines"][0]["download"].is_null(), "{replay}");

    // A refunded order's links stop working.
    let o2 = buy_digital(&app, &shopper, &book).await;
    assert_eq!(o2.status, 201, "{}", o2.text);
    let o2id = id(&o2.body);
    let link = app.get(&format!("/orders/{o2id}"), Some(&shopper)).await.body["lines"][0]["download"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(fetch(&app, &link).await.0, 200);
    let r = app.post(&format!("/merchant/orders/{o2id}/refund"), Some(&key), json!({})).await;
    assert!(r.status.is_success(), "{}", r.text);
    let (status, _, body) = fetch(&app, &link).await;
    assert_eq!(status, 410, "{}", String::from_utf8_lossy(&body));
    let o = app.get(&format!("/orders/{o2id}"), Some(&shopper)).await.body;
    assert!(o["lines"][0].get("download").is_none(), "{o}");
    assert_problem(
        &app.post(&format!("/orders/{o2id}/lines/0/download"), Some(&shopper), json!({})).await,
        409,
        "conflict",
    );
    app.stop().await;
}

/// The demo's digital print can be bought and downloaded, and its order page (no JavaScript)
/// shows the link and issues a fresh one through a CSRF-protected form.
#[tokio::test]
async fn the_demo_print_is_bought_and_downloaded_from_its_order_page() {
    let app = spawn_demo().await;
    let demo = app.demo.clone().expect("demo credentials");
    let maya = demo.merchant_keys.get("mayaprints").expect("maya's key");
    let products = app.get("/merchant/products", Some(maya)).await.body;
    let print = products["data"].as_array().unwrap().iter().find(|p| p["kind"] == "digital").unwrap().clone();
    assert_eq!(print["file"]["content_type"], "image/png");

    let browser =
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let csrf_of = |html: &str| {
        let at = html.find("name=\"csrf-token\" content=\"").expect("csrf meta") + 27;
        html[at..].split('"').next().unwrap().to_string()
    };
    let page = browser.get(format!("{}/login", app.url)).send().await.unwrap().text().await.unwrap();
    let r = browser
        .post(format!("{}/login", app.url))
        .form(&[
            ("login", demo.shopper_handle.as_str()),
            ("password", demo.shopper_password.as_str()),
            ("next", "/"),
            ("csrf", &csrf_of(&page)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    // The shopper's API token, for the purchase itself.
    let login =
        app.post("/sessions", None, json!({"login": demo.shopper_handle, "password": demo.shopper_password})).await;
    let token = login.body["token"].as_str().unwrap().to_string();
    let order = buy_digital(&app, &token, &print).await;
    assert_eq!(order.status, 201, "{}", order.text);
    let oid = id(&order.body);

    let page = browser.get(format!("{}/orders/{oid}", app.url)).send().await.unwrap().text().await.unwrap();
    let at = page.find("/api/v1/downloads/").expect("a download link on the order page");
    let link: String = page[at..].split('"').next().unwrap().to_string();
    let (status, headers, bytes) = fetch(&app, &format!("{}{}", app.url, link)).await;
    assert_eq!(status, 200);
    assert!(bytes.starts_with(b"\x89PNG"));
    assert_eq!(headers["content-disposition"], "attachment; filename=\"desert-dawn.png\"");
    assert!(page.contains("4 downloads left") || page.contains("5 downloads left"), "{page}");

    // A fresh link: the form needs the page's CSRF token.
    let r = browser.post(format!("{}/orders/{oid}/downloads/0", app.url)).form(&[("csrf", "forged")]).send().await;
    assert_ne!(r.unwrap().status().as_u16(), 303, "a forged form is refused");
    let r = browser
        .post(format!("{}/orders/{oid}/downloads/0", app.url))
        .form(&[("csrf", csrf_of(&page))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let page = browser.get(format!("{}/orders/{oid}", app.url)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("5 downloads left"), "{page}");
    assert!(!page.contains(&link), "the page shows the fresh link");

    // The shop's owner sees what the sale left it owed, on the merchant page.
    let owner =
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = owner.get(format!("{}/login", app.url)).send().await.unwrap().text().await.unwrap();
    let r = owner
        .post(format!("{}/login", app.url))
        .form(&[
            ("login", demo.owner_handle.as_str()),
            ("password", demo.owner_password.as_str()),
            ("next", "/"),
            ("csrf", &csrf_of(&page)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let mid = app.get("/merchant", Some(maya)).await.body["id"].as_str().unwrap().to_string();
    let owed = balance(&app, maya).await["balance"].as_i64().unwrap();
    assert!(owed > 0);
    let page = owner.get(format!("{}/merchant?m={mid}", app.url)).send().await.unwrap().text().await.unwrap();
    let shown = format!("${}.{:02}", owed / 100, owed % 100);
    assert!(page.contains("Owed to you") && page.contains(&shown), "{shown} in {page}");
    app.stop().await;
}

async fn balance(app: &TestApp, key: &str) -> Value {
    let r = app.get("/merchant/balance", Some(key)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"][0].clone()
}

async fn pay_out(app: &TestApp, body: Value) -> Vec<Value> {
    let r = app.post("/admin/payouts", Some(&app.admin_token.clone()), body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["data"].as_array().unwrap().clone()
}

fn assert_books_balance(tb: &Value) {
    for (cur, sum) in tb["totals"].as_object().unwrap() {
        assert_eq!(sum, 0, "trial balance of {cur}: {tb}");
    }
}

#[tokio::test]
async fn balances_come_from_the_ledger_and_payouts_move_them_once() {
    let rx = Receiver::start().await;
    let app = hooked_app().await;
    let (key, merchant, shirt, shopper) = hooked(&app, &rx, "payee").await;
    let mid = id(&merchant);
    let vid = shirt["variants"][0]["id"].as_str().unwrap().to_string();
    let admin = app.admin_token.clone();

    assert_eq!(balance(&app, &key).await, json!({"currency": "USD", "balance": 0, "paid_out": 0}));
    assert_eq!(pay_out(&app, json!({})).await, Vec::<Value>::new(), "nothing owed: an empty list");

    // 25.00 + 5.00 shipping, 5 % fee: 28.50 owed.
    let o1 = app.buy(&shopper, &vid, "4242424242424242").await;
    assert_eq!(o1.status, 201, "{}", o1.text);
    assert_eq!(balance(&app, &key).await, json!({"currency": "USD", "balance": 2850, "paid_out": 0}));

    // Who may pay, and whom.
    assert_problem(&app.post("/admin/payouts", Some(&key), json!({})).await, 403, "forbidden");
    let r = app.post("/admin/payouts", Some(&admin), json!({"merchant_id": "mer_unknown"})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), vec!["merchant_id"]);

    // Paid once, with its Idempotency-Key replayed.
    let keyed = |k: &str| {
        app.client
            .post(format!("{}/api/v1/admin/payouts", app.url))
            .bearer_auth(&admin)
            .header("idempotency-key", k)
            .json(&json!({"merchant_id": mid}))
            .send()
    };
    let first = keyed("pay-1").await.unwrap();
    assert_eq!(first.status().as_u16(), 201);
    let first: Value = first.json().await.unwrap();
    let paid = first["data"].as_array().unwrap();
    assert_eq!(paid.len(), 1, "{first}");
    let p = &paid[0];
    assert!(p["id"].as_str().unwrap().starts_with("po_"));
    assert_eq!(
        (p["merchant_id"].as_str(), p["currency"].as_str(), p["amount"].as_i64()),
        (Some(mid.as_str()), Some("USD"), Some(2850))
    );
    assert_eq!(p["status"], "paid");
    assert!(p["created_at"].is_string());
    let again = keyed("pay-1").await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(pay_out(&app, json!({"merchant_id": mid})).await, Vec::<Value>::new(), "never a cent twice");
    assert_eq!(balance(&app, &key).await, json!({"currency": "USD", "balance": 0, "paid_out": 2850}));
    let mine = app.get("/merchant/payouts", Some(&key)).await.body;
    assert_eq!(mine["data"].as_array().unwrap().len(), 1);
    assert_eq!(mine["data"][0], *p);
    let all = app.get("/admin/payouts?limit=1", Some(&admin)).await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(all.body["data"][0], *p);
    assert_problem(&app.get("/admin/payouts", Some(&key)).await, 403, "forbidden");
    assert_books_balance(&app.trial_balance().await);

    // The merchant hears of it by webhook.
    let got = rx.wait_for(2).await;
    let event = got.iter().find(|g| g.1["type"] == "payout.paid").expect("payout.paid delivered");
    assert_eq!(event.1["data"], *p);

    // A refund after the payout takes the balance below zero; payouts wait until it is
    // positive again.
    let r = app.post(&format!("/merchant/orders/{}/refund", id(&o1.body)), Some(&key), json!({})).await;
    assert!(r.status.is_success(), "{}", r.text);
    assert_eq!(balance(&app, &key).await["balance"], -2850);
    assert_eq!(pay_out(&app, json!({})).await, Vec::<Value>::new());
    assert_eq!(app.buy(&shopper, &vid, "4242424242424242").await.status, 201);
    assert_eq!(balance(&app, &key).await["balance"], 0);
    assert_eq!(pay_out(&app, json!({})).await, Vec::<Value>::new());
    assert_eq!(app.buy(&shopper, &vid, "4242424242424242").await.status, 201);
    let paid = pay_out(&app, json!({})).await;
    assert_eq!(paid.iter().map(|p| p["amount"].as_i64().unwrap()).collect::<Vec<_>>(), vec![2850]);

    // The refund window: money from orders inside it stays until it is out of the window.
    let r = app.call(Method::PUT, "/admin/payout_settings", Some(&admin), Some(json!({"refund_window_days": 7}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r =
        app.call(Method::PUT, "/admin/payout_settings", Some(&admin), Some(json!({"refund_window_days": -1}))).await;
    assert_problem(&r, 422, "validation_failed");
    assert_eq!(app.buy(&shopper, &vid, "4242424242424242").await.status, 201);
    assert_eq!(pay_out(&app, json!({})).await, Vec::<Value>::new(), "too new to pay");
    assert_eq!(balance(&app, &key).await["balance"], 2850);
    // Eight days later (the ledger's clock moved, not the test's).
    sql(&app, "update ledger_entries set created_at = created_at - 691200000000 where order_id is not null").await;
    assert_eq!(pay_out(&app, json!({})).await.len(), 1);
    assert_eq!(balance(&app, &key).await, json!({"currency": "USD", "balance": 0, "paid_out": 8550}));
    assert_books_balance(&app.trial_balance().await);
    app.stop().await;
}

#[tokio::test]
async fn two_servers_paying_at_once_never_pay_the_same_money_twice() {
    let a = spawn_app().await;
    let (url, dir) = (a.database_url.clone(), a.dir.path().to_path_buf());
    let admin = a.admin_token.clone();
    let b = spawn_with(move |c| {
        c.database_url = Some(url);
        c.data_dir = dir;
        c.admin_token = Some(admin);
    })
    .await;
    let (shopper, _) = a.signup("spender").await;
    let mut keys = Vec::new();
    for m in ["alpha", "beta", "gamma"] {
        let (key, _) = a.merchant(m).await;
        let shirt = a.shirt(&key, 10).await;
        let vid = shirt["variants"][0]["id"].as_str().unwrap().to_string();
        for _ in 0..2 {
            assert_eq!(a.buy(&shopper, &vid, "4242424242424242").await.status, 201);
        }
        keys.push(key);
    }
    let mut futs = Vec::new();
    for i in 0..12 {
        let app = if i % 2 == 0 { &a } else { &b };
        futs.push(app.post("/admin/payouts", Some(&app.admin_token), json!({})));
    }
    let mut paid = Vec::new();
    for r in join_all(futs).await {
        assert_eq!(r.status, 201, "{}", r.text);
        paid.extend(r.body["data"].as_array().unwrap().clone());
    }
    assert_eq!(paid.len(), 3, "one payout per merchant: {paid:?}");
    assert_eq!(paid.iter().map(|p| p["amount"].as_i64().unwrap()).sum::<i64>(), 3 * 2 * 2850);
    for key in &keys {
        assert_eq!(balance(&a, key).await, json!({"currency": "USD", "balance": 0, "paid_out": 5700}));
    }
    assert_books_balance(&a.trial_balance().await);
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn scheduled_payouts_run_in_the_worker() {
    let app = spawn_with(|c| c.payout_interval_secs = Some(1)).await;
    let (key, _) = app.merchant("scheduled").await;
    let (shopper, _) = app.signup("buyer").await;
    let shirt = app.shirt(&key, 5).await;
    let vid = shirt["variants"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(app.buy(&shopper, &vid, "4242424242424242").await.status, 201);
    let mut paid_out = 0;
    for _ in 0..50 {
        paid_out = balance(&app, &key).await["paid_out"].as_i64().unwrap();
        if paid_out > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(paid_out, 2850);
    app.stop().await;
}

/// Uploads and downloads through an S3-compatible server (moto in CI; `scripts/test.sh`
/// starts it and sets `BUYLINE_TEST_S3_ENDPOINT` with the `AWS_*` variables).
#[tokio::test]
async fn uploads_live_in_an_s3_bucket_when_configured() {
    let Some(endpoint) = std::env::var("BUYLINE_TEST_S3_ENDPOINT").ok().filter(|e| !e.is_empty()) else {
        eprintln!("skipped: BUYLINE_TEST_S3_ENDPOINT is not set (scripts/test.sh starts moto and sets it)");
        return;
    };
    // Without them the S3 client would look for credentials on the network.
    for var in ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        assert!(std::env::var(var).is_ok_and(|v| !v.is_empty()), "{var} must be set beside BUYLINE_TEST_S3_ENDPOINT");
    }
    let bucket = format!("bl-test-{}", rand::random::<u32>());
    let r = reqwest::Client::new().put(format!("{endpoint}/{bucket}")).send().await.unwrap();
    assert!(r.status().is_success(), "creating the bucket: {}", r.status());
    let blob_url = format!("s3://{bucket}/uploads");
    let app = spawn_with(move |c| c.blob_url = Some(blob_url)).await;
    let (key, _) = app.merchant("cloud").await;
    let (shopper, _) = app.signup("clouder").await;
    let shirt = app.shirt(&key, 5).await;
    let r = put_raw(&app, &format!("/products/{}/image", id(&shirt)), &key, PNG.to_vec(), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (status, _, bytes) = fetch(&app, r.body["image_url"].as_str().unwrap()).await;
    assert_eq!((status, bytes.as_slice()), (200, PNG));

    let book = digital(&app, &key, "Cloud Atlas").await;
    // Larger than one multipart part, so the upload really is multipart.
    let content: Vec<u8> = (0..6 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let r = put_raw(&app, &format!("/products/{}/file", id(&book)), &key, content.clone(), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(files_under(&app.dir.path().join("blobs")).is_empty(), "nothing in the local folder");
    // Objects are in the bucket under the prefix.
    let listing =
        reqwest::get(format!("{endpoint}/{bucket}?list-type=2&prefix=uploads/")).await.unwrap().text().await.unwrap();
    assert!(listing.contains("uploads/files/") && listing.contains("uploads/images/"), "{listing}");
    assert!(!listing.contains("uploads/tmp/"), "no temporary object left: {listing}");
    let order = buy_digital(&app, &shopper, &book).await;
    assert_eq!(order.status, 201, "{}", order.text);
    let o = app.get(&format!("/orders/{}", id(&order.body)), Some(&shopper)).await.body;
    let (status, _, bytes) = fetch(&app, o["lines"][0]["download"]["url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert!(bytes == content, "the file comes back whole");
    app.stop().await;
}

/// A `multipart/form-data` body: the CSRF field, then the file as `upload`.
fn multipart(csrf: &str, filename: &str, content_type: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----buylinetest7d9f";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--{boundary}\r\n\
         Content-Disposition: form-data; name=\"upload\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn a_shop_uploads_its_image_and_file_from_the_merchant_pages() {
    let app = spawn_with(|c| c.max_image_bytes = 4096).await;
    let (key, merchant) = app.merchant("pages").await;
    let mid = id(&merchant);
    let book = digital(&app, &key, "Page Book").await;
    let browser =
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let csrf_of = |html: &str| {
        let at = html.find("name=\"csrf-token\" content=\"").expect("csrf meta") + 27;
        html[at..].split('"').next().unwrap().to_string()
    };
    let page = browser.get(format!("{}/login", app.url)).send().await.unwrap().text().await.unwrap();
    let r = browser
        .post(format!("{}/login", app.url))
        .form(&[("login", "pages_o"), ("password", "correct horse battery"), ("next", "/"), ("csrf", &csrf_of(&page))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let shop = browser.get(format!("{}/merchant?m={mid}", app.url)).send().await.unwrap().text().await.unwrap();
    let uploads = format!("/merchant/products/{}/uploads?m={mid}", id(&book));
    assert!(shop.contains(&uploads.replace('&', "&amp;")) || shop.contains(&uploads), "{shop}");
    assert!(shop.contains("no file yet"));
    let page = browser.get(format!("{}{uploads}", app.url)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<label for=\"file\"") && page.contains("<label for=\"image\""), "{page}");
    let csrf = csrf_of(&page);
    let send = |what: &'static str, body: (String, Vec<u8>)| {
        browser
            .post(format!("{}/merchant/products/{}/{what}?m={mid}", app.url, id(&book)))
            .header("content-type", body.0)
            .body(body.1)
            .send()
    };

    // A forged form reads nothing.
    let r = send("file", multipart("forged", "book.pdf", "application/pdf", b"x")).await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // Wrong type and too large: the message beside the field.
    let r = send("image", multipart(&csrf, "a.png", "image/png", b"not an image at all")).await.unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"image-error\"") && html.contains("PNG, JPEG, WebP or GIF image"), "{html}");
    let mut big = PNG.to_vec();
    big.resize(10_000, 0);
    let r = send("image", multipart(&csrf, "a.png", "image/png", &big)).await.unwrap();
    assert_eq!(r.status().as_u16(), 422);
    assert!(r.text().await.unwrap().contains("larger than the limit of 4 KiB"));

    let r = send("image", multipart(&csrf, "cover.png", "image/png", PNG)).await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let r = send("file", multipart(&csrf, "page-book.pdf", "application/pdf", b"%PDF-1.4 pages")).await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let p = app.get(&format!("/products/{}", id(&book)), None).await.body;
    assert_eq!(p["file"], json!({"name": "page-book.pdf", "content_type": "application/pdf", "size": 14}));
    let (status, _, bytes) = fetch(&app, p["image_url"].as_str().unwrap()).await;
    assert_eq!((status, bytes.as_slice()), (200, PNG));
    app.stop().await;
}
