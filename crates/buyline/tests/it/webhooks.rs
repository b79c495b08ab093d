//! Orders reach merchants: signed webhooks to a real local receiver, retries, the delivery
//! log, the polling fallback, secret rotation, the SSRF guard, and the merchant's order
//! lifecycle with refunds on the ledger.

use crate::helpers::*;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
pub enum Behaviour {
    Status(u16),
    RetryAfter(u16, u64),
    Sleep(u64),
}

#[derive(Default)]
pub struct Inbox {
    pub secrets: Vec<String>,
    pub script: VecDeque<Behaviour>,
    /// Verified deliveries: (webhook-id, body, signature header).
    pub received: Vec<(String, Value, String)>,
    pub calls: usize,
    pub bad_signatures: usize,
}

/// A merchant's endpoint: verifies every request with the merchant's secret(s), then acts
/// out its script (fail, slow down, …) before accepting.
pub struct Receiver {
    pub url: String,
    pub inbox: Arc<Mutex<Inbox>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let state = inbox.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let inbox = state.clone();
                async move {
                    let (step, secrets) = {
                        let mut i = inbox.lock().unwrap();
                        i.calls += 1;
                        (i.script.pop_front(), i.secrets.clone())
                    };
                    let verified = secrets.iter().any(|s| {
                        standardwebhooks::Webhook::new(s).map(|w| w.verify(&body, &headers).is_ok()).unwrap_or(false)
                    });
                    if !verified {
                        inbox.lock().unwrap().bad_signatures += 1;
                        return (StatusCode::UNAUTHORIZED, HeaderMap::new(), "bad signature");
                    }
                    let mut out = HeaderMap::new();
                    match step {
                        Some(Behaviour::Status(s)) => return (StatusCode::from_u16(s).unwrap(), out, "not now"),
                        Some(Behaviour::RetryAfter(s, secs)) => {
                            out.insert("retry-after", secs.to_string().parse().unwrap());
                            return (StatusCode::from_u16(s).unwrap(), out, "slow down");
                        }
                        Some(Behaviour::Sleep(ms)) => tokio::time::sleep(Duration::from_millis(ms)).await,
                        None => {}
                    }
                    let id = headers.get("webhook-id").unwrap().to_str().unwrap().to_string();
                    let sig = headers.get("webhook-signature").unwrap().to_str().unwrap().to_string();
                    inbox.lock().unwrap().received.push((id, serde_json::from_slice(&body).unwrap(), sig));
                    (StatusCode::NO_CONTENT, out, "")
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, inbox }
    }

    pub fn received(&self) -> Vec<(String, Value, String)> {
        self.inbox.lock().unwrap().received.clone()
    }

    /// Waits until `n` distinct events have arrived (or 15 s pass).
    pub async fn wait_for(&self, n: usize) -> Vec<(String, Value, String)> {
        for _ in 0..150 {
            let got = self.received();
            let distinct: std::collections::BTreeSet<_> = got.iter().map(|g| g.0.clone()).collect();
            if distinct.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.received()
    }
}

pub async fn hooked_app() -> TestApp {
    spawn_with(|c| {
        c.allow_private_webhooks = true;
        c.webhook_timeout_secs = 1;
    })
    .await
}

/// A merchant with its webhook pointing at the receiver, a product, and a shopper.
pub async fn hooked(app: &TestApp, rx: &Receiver, handle: &str) -> (String, Value, Value, String) {
    let (owner, _) = app.signup(&format!("{handle}_o")).await;
    let r = app
        .post(
            "/merchants",
            Some(&owner),
            json!({"name": "Hooked", "handle": handle, "kind": "retailer", "country": "US", "webhook_url": rx.url}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    rx.inbox.lock().unwrap().secrets.push(r.body["webhook_secret"].as_str().unwrap().to_string());
    let key = r.body["api_key"].as_str().unwrap().to_string();
    let p = app.shirt(&key, 50).await;
    let (shopper, _) = app.signup(&format!("{handle}_b")).await;
    (key, r.body["merchant"].clone(), p, shopper)
}

async fn fast_forward(app: &TestApp) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
    sqlx::query("update webhook_deliveries set next_attempt_at = 0, locked_until = 0 where status = 'pending'")
        .execute(&mut c)
        .await
        .unwrap();
}

#[tokio::test]
async fn order_created_reaches_the_merchant_signed() {
    let app = hooked_app().await;
    let rx = Receiver::start().await;
    let (key, m, p, shopper) = hooked(&app, &rx, "hooks").await;
    let order = app.buy(&shopper, p["variants"][0]["id"].as_str().unwrap(), "4242424242424242").await.body;
    let got = rx.wait_for(1).await;
    assert_eq!(got.len(), 1, "exactly one delivery");
    let (id, body, _) = &got[0];
    assert!(id.starts_with("evt_"));
    assert_eq!(body["type"], "order.created");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    let d = &body["data"];
    assert_eq!(d["id"], order["id"]);
    assert_eq!(d["merchant_id"], m["id"]);
    assert_eq!(d["lines"][0]["sku"], p["variants"][0]["sku"]);
    assert_eq!(d["lines"][0]["options"], p["variants"][0]["options"]);
    assert_eq!((d["lines"][0]["quantity"].as_i64(), d["lines"][0]["unit_price"].as_i64()), (Some(1), Some(2500)));
    assert_eq!(d["shipping_address"]["postal_code"], "94103");
    assert_eq!(d["shipping"]["name"], "Standard");
    assert_eq!(d["totals"]["total"], 3000);
    assert_eq!(d["platform_fee"], 150);
    assert_eq!(d["contact_email"], "hooks_b@example.com");
    let text = body.to_string();
    assert!(d.get("payment").is_none() && !text.contains("4242") && !text.contains("last4") && !text.contains("brand"));
    // The delivery log shows it, with its attempt (recorded just after the receiver answered).
    let log = log_when(&app, &key, |l| l["data"][0]["status"] == "delivered").await;
    assert_eq!(log["data"][0]["status"], "delivered");
    assert_eq!(log["data"][0]["event_type"], "order.created");
    assert_eq!(log["data"][0]["attempt_log"][0]["status_code"], 204);
    assert_eq!(rx.inbox.lock().unwrap().bad_signatures, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_failing_then_recovering_receiver_gets_everything() {
    let app = hooked_app().await;
    let rx = Receiver::start().await;
    rx.inbox.lock().unwrap().script =
        VecDeque::from(vec![Behaviour::Status(500), Behaviour::Status(503), Behaviour::Status(500)]);
    let (key, _, p, shopper) = hooked(&app, &rx, "flaky").await;
    let vid = p["variants"][0]["id"].as_str().unwrap();
    for _ in 0..3 {
        assert_eq!(app.buy(&shopper, vid, "4242424242424242").await.status, 201);
    }
    for _ in 0..20 {
        fast_forward(&app).await;
        if rx.received().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ids: std::collections::BTreeSet<_> = rx.received().into_iter().map(|r| r.0).collect();
    assert_eq!(ids.len(), 3, "all three orders arrived");
    let attempts_of = |log: &Value| -> usize {
        log["data"].as_array().map_or(0, |l| l.iter().map(|d| d["attempt_log"].as_array().map_or(0, Vec::len)).sum())
    };
    let log = log_when(&app, &key, |l| {
        attempts_of(l) >= 6 && l["data"].as_array().is_some_and(|d| d.iter().all(|d| d["status"] == "delivered"))
    })
    .await;
    let attempts = attempts_of(&log);
    assert_eq!(attempts, 6, "three failures logged beside three successes");
    assert!(log["data"].as_array().unwrap().iter().all(|d| d["status"] == "delivered"));
    app.stop().await;
}

#[tokio::test]
async fn slow_receivers_time_out_and_are_retried() {
    let app = hooked_app().await;
    let rx = Receiver::start().await;
    rx.inbox.lock().unwrap().script = VecDeque::from(vec![Behaviour::Sleep(2500)]);
    let (key, _, p, shopper) = hooked(&app, &rx, "slowpoke").await;
    app.buy(&shopper, p["variants"][0]["id"].as_str().unwrap(), "4242424242424242").await;
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let log = app.get("/merchant/webhook_deliveries", Some(&key)).await.body;
    assert_eq!(log["data"][0]["attempt_log"][0]["error"], "timed out");
    assert_eq!(log["data"][0]["status"], "pending");
    fast_forward(&app).await;
    let got = rx.wait_for(1).await;
    assert!(!got.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_retry_after_is_honoured() {
    let app = hooked_app().await;
    let rx = Receiver::start().await;
    rx.inbox.lock().unwrap().script = VecDeque::from(vec![Behaviour::RetryAfter(429, 3600)]);
    let (key, _, p, shopper) = hooked(&app, &rx, "gone").await;
    let vid = p["variants"][0]["id"].as_str().unwrap();
    app.buy(&shopper, vid, "4242424242424242").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let d = app.get("/merchant/webhook_deliveries", Some(&key)).await.body["data"][0].clone();
    assert_eq!(d["status"], "pending");
    let next = chrono::DateTime::parse_from_rfc3339(d["next_attempt_at"].as_str().unwrap()).unwrap();
    let wait = next.timestamp() - chrono::Utc::now().timestamp();
    assert!(wait > 3000, "waits as the receiver asked ({wait} s)");
    // A replay sends it now.
    let r = app
        .post(&format!("/merchant/webhook_deliveries/{}/retry", d["id"].as_str().unwrap()), Some(&key), json!({}))
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(rx.wait_for(1).await.len(), 1);
    // 410 Gone: the endpoint is disabled; later events are not sent.
    rx.inbox.lock().unwrap().script = VecDeque::from(vec![Behaviour::Status(410)]);
    app.buy(&shopper, vid, "4242424242424242").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    app.buy(&shopper, vid, "4242424242424242").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let log = app.get("/merchant/webhook_deliveries", Some(&key)).await.body;
    assert_eq!(log["data"].as_array().unwrap().len(), 2, "no delivery is queued for a disabled endpoint");
    assert_eq!(log["data"][0]["status"], "disabled");
    // The events are still there to poll.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ev = app.get("/merchant/events", Some(&key)).await.body;
    assert_eq!(ev["data"].as_array().unwrap().len(), 3);
    // Setting the URL again turns deliveries back on.
    app.patch("/merchant", Some(&key), json!({"webhook_url": format!("{}?v=2", rx.url)})).await;
    app.buy(&shopper, vid, "4242424242424242").await;
    assert_eq!(rx.wait_for(2).await.len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn events_can_be_polled_after_a_cursor() {
    let app = hooked_app().await;
    let rx = Receiver::start().await;
    let (key, _, p, shopper) = hooked(&app, &rx, "poller").await;
    let vid = p["variants"][0]["id"].as_str().unwrap();
    for _ in 0..3 {
        app.buy(&shopper, vid, "4242424242424242").await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let first = app.get("/merchant/events?limit=2", Some(&key)).await.body;
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    assert_eq!(first["data"][0]["type"], "order.created");
    assert_eq!(first["data"][0]["payload"]["type"], "order.created");
    let after = first["next_cursor"].as_str().unwrap();
    let rest = app.get(&format!("/merchant/events?after={after}"), Some(&key)).await.body;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    let all: std::collections::BTreeSet<_> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["data"].as_array().unwrap())
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(all.len(), 3);
    assert_problem(&app.get("/merchant/events?after=evt_nope", Some(&key)).await, 422, "validation_failed");
    app.stop().await;
}

#[tokio::test]
async fn rotated_secret_signs_beside_the_old_one() {
    let app = hooked_app().await;
    let rx = Receiver::start().await;
    let (key, _, p, shopper) = hooked(&app, &rx, "rotor").await;
    let old = rx.inbox.lock().unwrap().secrets[0].clone();
    let r = app.post("/merchant/webhook_secret/rotate", Some(&key), json!({})).await;
    assert_eq!(r.status, 201);
    let new = r.body["webhook_secret"].as_str().unwrap().to_string();
    assert!(new.starts_with("whsec_") && new != old);
    // A receiver that knows only the new secret, and one that knows only the old, both verify.
    rx.inbox.lock().unwrap().secrets = vec![new.clone()];
    app.buy(&shopper, p["variants"][0]["id"].as_str().unwrap(), "4242424242424242").await;
    let got = rx.wait_for(1).await;
    assert_eq!(got[0].2.split(' ').count(), 2, "two signatures during the overlap");
    rx.inbox.lock().unwrap().secrets = vec![old];
    app.buy(&shopper, p["variants"][0]["id"].as_str().unwrap(), "4242424242424242").await;
    assert_eq!(rx.wait_for(2).await.len(), 2);
    assert_eq!(rx.inbox.lock().unwrap().bad_signatures, 0);
    app.stop().await;
}

#[tokio::test]
async fn webhook_targets_must_be_public_unless_allowed() {
    let app = spawn_app().await;
    let (owner, _) = app.signup("ssrf").await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/",
        "http://localhost:8080/",
        "http://[::1]/",
        "http://192.168.1.10/",
    ] {
        let r = app
            .post(
                "/merchants",
                Some(&owner),
                json!({"name": "S", "handle": "ssrfshop", "kind": "retailer", "country": "US", "webhook_url": url}),
            )
            .await;
        let p = assert_problem(&r, 422, "validation_failed");
        assert_eq!(fields(&p), ["webhook_url"], "{url}");
    }
    let (key, _) = app.merchant("ssrf2").await;
    let r = app.patch("/merchant", Some(&key), json!({"webhook_url": "http://127.0.0.1:1/"})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["webhook_url"]);
    app.stop().await;
}

#[tokio::test]
async fn merchants_manage_their_orders_and_refunds_balance_the_books() {
    let app = hooked_app().await;
    let rx = Receiver::start().await;
    let (key, m, p, shopper) = hooked(&app, &rx, "lifecycle").await;
    let vid = p["variants"][0]["id"].as_str().unwrap().to_string();
    let o1 = app.buy(&shopper, &vid, "4242424242424242").await.body;
    let o2 = app.buy(&shopper, &vid, "4242424242424242").await.body;
    let o3 = app.buy(&shopper, &vid, "4242424242424242").await.body;
    let id = |o: &Value| o["id"].as_str().unwrap().to_string();
    assert_eq!(stock_of(&app, &p, &vid).await, 47);

    let list = app.get("/merchant/orders?status=paid", Some(&key)).await.body;
    assert_eq!(list["data"].as_array().unwrap().len(), 3);
    assert!(list["data"][0].get("payment").is_none());
    let r = app.post(&format!("/merchant/orders/{}/acknowledge", id(&o1)), Some(&key), json!({})).await;
    assert_eq!(r.body["acknowledged"], true);

    // Fulfil: the shopper sees tracking and is told.
    let r = app
        .post(
            &format!("/merchant/orders/{}/fulfill", id(&o1)),
            Some(&key),
            json!({"carrier": "UPS", "tracking_number": "1Z999"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "fulfilled");
    let seen = app.get(&format!("/orders/{}", id(&o1)), Some(&shopper)).await.body;
    assert_eq!(seen["fulfillment"], json!({"carrier": "UPS", "tracking_number": "1Z999"}));
    assert!(app.get("/notifications", Some(&shopper)).await.body["data"][0]["text"]
        .as_str()
        .unwrap()
        .contains("1Z999"));
    let r = app
        .post(
            &format!("/merchant/orders/{}/fulfill", id(&o1)),
            Some(&key),
            json!({"carrier": "", "tracking_number": ""}),
        )
        .await;
    let mut f = fields(&assert_problem(&r, 422, "validation_failed"));
    f.sort();
    assert_eq!(f, ["carrier", "tracking_number"]);

    // Cancel: refunded in full, stock back.
    let r = app.post(&format!("/merchant/orders/{}/cancel", id(&o2)), Some(&key), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.body["status"].as_str(), r.body["refunded_amount"].as_i64()), (Some("canceled"), Some(3000)));
    assert_eq!(stock_of(&app, &p, &vid).await, 48);

    // Partial refund, too much, then the rest.
    let r = app
        .post(&format!("/merchant/orders/{}/refund", id(&o3)), Some(&key), json!({"amount": 1000, "reason": "scuffed"}))
        .await;
    assert_eq!(
        (r.body["status"].as_str(), r.body["refunded_amount"].as_i64()),
        (Some("partially_refunded"), Some(1000))
    );
    let r = app.post(&format!("/merchant/orders/{}/refund", id(&o3)), Some(&key), json!({"amount": 2001})).await;
    assert_eq!(fields(&assert_problem(&r, 422, "validation_failed")), ["amount"]);
    let r = app.call(reqwest::Method::POST, &format!("/merchant/orders/{}/refund", id(&o3)), Some(&key), None).await;
    assert_eq!(
        (r.body["status"].as_str(), r.body["refunded_amount"].as_i64()),
        (Some("refunded"), Some(3000)),
        "{}",
        r.text
    );

    // Illegal transitions are 409.
    assert_problem(
        &app.post(&format!("/merchant/orders/{}/cancel", id(&o1)), Some(&key), json!({})).await,
        409,
        "conflict",
    );
    assert_problem(
        &app.post(
            &format!("/merchant/orders/{}/fulfill", id(&o2)),
            Some(&key),
            json!({"carrier": "UPS", "tracking_number": "1"}),
        )
        .await,
        409,
        "conflict",
    );
    assert_problem(
        &app.post(&format!("/merchant/orders/{}/refund", id(&o3)), Some(&key), json!({"amount": 1})).await,
        409,
        "conflict",
    );

    // The books: balanced; the merchant keeps o1 less its fee; fees on refunds came back.
    let tb = app.trial_balance().await;
    assert_eq!(tb["totals"], json!({"USD": 0}));
    let bal = |a: &str| {
        tb["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["account"] == a)
            .map(|l| l["balance"].as_i64().unwrap())
            .unwrap_or(0)
    };
    assert_eq!(bal(&format!("merchant_payable:{}", m["id"].as_str().unwrap())), -(3000 - 150));
    assert_eq!(bal("platform_revenue"), -150);
    assert_eq!(bal("processor_receivable"), 3000);

    // Events: order.created ×3, order.canceled, order.refunded ×2 — all delivered, signed.
    let got = rx.wait_for(6).await;
    let mut kinds: Vec<_> = got.iter().map(|g| g.1["type"].as_str().unwrap().to_string()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["order.canceled", "order.created", "order.created", "order.created", "order.refunded", "order.refunded"]
    );
    let refunded =
        got.iter().find(|g| g.1["type"] == "order.refunded" && g.1["data"]["refund"]["amount"] == 1000).unwrap();
    assert_eq!(refunded.1["data"]["refund"]["reason"], "scuffed");
    app.stop().await;
}

#[tokio::test]
async fn another_merchants_orders_are_not_found() {
    let app = hooked_app().await;
    let rx = Receiver::start().await;
    let (_, _, p, shopper) = hooked(&app, &rx, "mine").await;
    let (other, _) = app.merchant("notmine").await;
    let o = app.buy(&shopper, p["variants"][0]["id"].as_str().unwrap(), "4242424242424242").await.body;
    let id = o["id"].as_str().unwrap();
    assert_problem(&app.get(&format!("/merchant/orders/{id}"), Some(&other)).await, 404, "not_found");
    for action in ["acknowledge", "cancel", "refund"] {
        assert_problem(
            &app.post(&format!("/merchant/orders/{id}/{action}"), Some(&other), json!({})).await,
            404,
            "not_found",
        );
    }
    assert!(app.get("/merchant/orders", Some(&other)).await.body["data"].as_array().unwrap().is_empty());
    assert_problem(&app.get("/merchant/orders", Some(&shopper)).await, 403, "forbidden");
    let d = app.get("/merchant/webhook_deliveries", Some(&other)).await.body;
    assert!(d["data"].as_array().unwrap().is_empty());
    app.stop().await;
}

/// A `buyline serve` child process, as an operator runs it.
struct Child {
    proc: std::process::Child,
    url: String,
}

fn serve(dir: &std::path::Path, database_url: &str) -> Child {
    use std::io::BufRead;
    let mut proc = std::process::Command::new(env!("CARGO_BIN_EXE_buyline"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-demo",
            "--allow-private-webhooks",
            "--webhook-timeout-secs",
            "2",
        ])
        .arg("--data-dir")
        .arg(dir)
        .env("DATABASE_URL", database_url)
        .env("BUYLINE_ADMIN_TOKEN", "op_kill_test")
        .env("BUYLINE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start buyline serve");
    let out = proc.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(out).lines();
    let url = loop {
        let line = lines.next().expect("server output").unwrap();
        if let Some(u) = line.strip_prefix("Buyline is running at ") {
            break u.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Child { proc, url }
}

#[tokio::test]
async fn a_server_killed_mid_delivery_delivers_everything_after_restart() {
    let rx = Receiver::start().await;
    // The first deliveries hang long enough for the kill to land while they are in flight.
    rx.inbox.lock().unwrap().script = VecDeque::from(vec![Behaviour::Sleep(1500); 3]);
    let dir = tempfile::tempdir().unwrap();
    let db = match std::env::var("BUYLINE_TEST_DATABASE_URL") {
        Ok(base) if !base.is_empty() => fresh_postgres(&base).await,
        _ => buyline::config::database_url(dir.path(), None),
    };
    let mut child = serve(dir.path(), &db);
    let client = reqwest::Client::new();
    let api = |path: &str| format!("{}/api/v1{path}", child.url);
    let post = |url: String, token: Option<String>, body: Value| {
        let c = client.clone();
        async move {
            let mut r = c.post(url).json(&body);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.send().await.unwrap().json::<Value>().await.unwrap()
        }
    };
    let signup = |h: &str| json!({"handle": h, "email": format!("{h}@example.com"), "password": "correct horse battery", "country": "US"});
    let owner = post(api("/accounts"), None, signup("killowner")).await["token"].as_str().unwrap().to_string();
    let m = post(
        api("/merchants"),
        Some(owner),
        json!({"name": "K", "handle": "killshop", "kind": "retailer", "country": "US", "webhook_url": rx.url}),
    )
    .await;
    rx.inbox.lock().unwrap().secrets.push(m["webhook_secret"].as_str().unwrap().to_string());
    let key = m["api_key"].as_str().unwrap().to_string();
    let p = post(
        api("/products"),
        Some(key),
        json!({"name": "K", "kind": "physical", "price": 1000,
        "shipping_rates": [{"name": "S", "price": 0, "countries": ["US"]}]}),
    )
    .await;
    let vid = p["variants"][0]["id"].as_str().unwrap().to_string();
    let shopper = post(api("/accounts"), None, signup("killbuyer")).await["token"].as_str().unwrap().to_string();
    let mut orders = Vec::new();
    for _ in 0..5 {
        let o = post(
            api("/orders"),
            Some(shopper.clone()),
            json!({"lines": [{"variant_id": vid}], "shipping_address": address(), "payment": card("4242424242424242")}),
        )
        .await;
        assert_eq!(o["status"], "paid", "{o}");
        orders.push(o["id"].as_str().unwrap().to_string());
    }
    // Kill it the moment a delivery is on the wire.
    for _ in 0..100 {
        if rx.inbox.lock().unwrap().calls > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.proc.kill().unwrap();
    child.proc.wait().unwrap();
    let before = rx.received().len();
    assert!(before < 5, "the kill came before everything was delivered ({before})");

    let mut child = serve(dir.path(), &db);
    let got = rx.wait_for(5).await;
    child.proc.kill().unwrap();
    child.proc.wait().unwrap();
    let ids: std::collections::BTreeSet<String> =
        got.iter().map(|g| g.1["data"]["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, orders.into_iter().collect(), "every order.created arrived after the restart");
    assert_eq!(rx.inbox.lock().unwrap().bad_signatures, 0);
}

#[tokio::test]
async fn two_servers_on_one_database_deliver_each_event_once() {
    let rx = Receiver::start().await;
    let a = hooked_app().await;
    let (url, dir) = (a.database_url.clone(), a.dir.path().to_path_buf());
    let b = spawn_with(move |c| {
        c.allow_private_webhooks = true;
        c.webhook_timeout_secs = 1;
        c.database_url = Some(url);
        c.data_dir = dir;
    })
    .await;
    let (_, _, p, shopper) = hooked(&a, &rx, "twins").await;
    let vid = p["variants"][0]["id"].as_str().unwrap().to_string();
    let mut futs = Vec::new();
    for i in 0..20 {
        let app = if i % 2 == 0 { &a } else { &b };
        futs.push(app.buy(&shopper, &vid, "4242424242424242"));
    }
    for r in join_all(futs).await {
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let got = rx.wait_for(20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_all = rx.received();
    let ids: std::collections::BTreeSet<_> = got.iter().map(|g| g.0.clone()).collect();
    assert_eq!(ids.len(), 20, "no event lost");
    assert_eq!(got_all.len(), 20, "each claimed by one worker: no event sent twice");
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn signing_secrets_rest_sealed_in_the_vault_and_old_plain_ones_are_sealed_at_start() {
    use sqlx::{Connection, Row};
    let app = hooked_app().await;
    let rx = Receiver::start().await;
    let (key, m, p, shopper) = hooked(&app, &rx, "sealed").await;
    let secret = rx.inbox.lock().unwrap().secrets[0].clone();
    let mid = m["id"].as_str().unwrap().to_string();
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
    let (current, _) = stored(&mut c, &mid).await;
    assert!(current.starts_with("whk_"), "the merchant row names a vault record, not the secret: {current}");
    let dump: String = sqlx::query("select coalesce(ciphertext, '') from vault_records where id = $1")
        .bind(&current)
        .fetch_one(&mut c)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert!(!dump.is_empty() && !dump.contains(&secret[6..]), "sealed, not in plain text");

    // Deliveries are signed with the opened secret, and the open is audited.
    app.buy(&shopper, p["variants"][0]["id"].as_str().unwrap(), "4242424242424242").await;
    assert_eq!(rx.wait_for(1).await.len(), 1);
    assert_eq!(rx.inbox.lock().unwrap().bad_signatures, 0);
    let audits: i64 = sqlx::query("select count(*) from vault_audit where record_id = $1")
        .bind(&current)
        .fetch_one(&mut c)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert!(audits >= 1, "opening a signing secret is audited");

    // Rotation seals the new secret too; the old record keeps signing for a day.
    let rotated = app.post("/merchant/webhook_secret/rotate", Some(&key), json!({})).await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);
    let (now, old) = stored(&mut c, &mid).await;
    assert!(now.starts_with("whk_") && old == current, "{now} / {old}");

    // A secret kept in plain text by an older version is sealed when a server starts.
    let plain = rotated.body["webhook_secret"].as_str().unwrap().to_string();
    sqlx::query("update merchants set webhook_secret = $1 where id = $2")
        .bind(&plain)
        .bind(&mid)
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let app = app
        .restart(|c| {
            c.allow_private_webhooks = true;
            c.webhook_timeout_secs = 1;
        })
        .await;
    let mut c = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
    let (now, _) = stored(&mut c, &mid).await;
    assert!(now.starts_with("whk_"), "sealed at start: {now}");
    rx.inbox.lock().unwrap().secrets = vec![plain];
    app.buy(&shopper, p["variants"][0]["id"].as_str().unwrap(), "4242424242424242").await;
    assert_eq!(rx.wait_for(2).await.len(), 2);
    assert_eq!(rx.inbox.lock().unwrap().bad_signatures, 0, "signed with the secret it was before sealing");
    app.stop().await;
}

/// A merchant row's (current, previous) signing secret columns.
async fn stored(c: &mut sqlx::AnyConnection, mid: &str) -> (String, String) {
    use sqlx::Row;
    let r = sqlx::query("select webhook_secret, coalesce(webhook_secret_old, '') as old from merchants where id = $1")
        .bind(mid)
        .fetch_one(c)
        .await
        .unwrap();
    (r.try_get::<String, _>(0).unwrap(), r.try_get::<String, _>(1).unwrap())
}

/// The delivery log once `done` holds for it: the worker records an attempt just after the
/// receiver answers, so a test that saw the webhook arrive may read the log a moment early.
async fn log_when(app: &TestApp, key: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let log = app.get("/merchant/webhook_deliveries", Some(key)).await.body;
        if done(&log) {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.get("/merchant/webhook_deliveries", Some(key)).await.body
}
