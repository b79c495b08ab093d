//! Spawning the app and talking to it like a client would.

use buyline::config::ServeConfig;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};

pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    pub admin_token: String,
    pub database_url: String,
    pub dir: tempfile::TempDir,
    pub demo: Option<buyline::demo::DemoCredentials>,
    running: Option<buyline::Running>,
}

/// A new, empty database on the PostgreSQL server named by `BUYLINE_TEST_DATABASE_URL`.
pub async fn fresh_postgres(base: &str) -> String {
    use sqlx::Connection;
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!("bl_t_{}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed), rand::random::<u32>());
    let mut conn = sqlx::PgConnection::connect(base).await.expect("connect to BUYLINE_TEST_DATABASE_URL");
    sqlx::query(&format!("create database {name}")).execute(&mut conn).await.expect("create database");
    conn.close().await.ok();
    let mut url = url::Url::parse(base).expect("database url");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_demo() -> TestApp {
    spawn_with(|c| c.no_demo = false).await
}

pub async fn spawn_with(f: impl FnOnce(&mut ServeConfig)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = ServeConfig::new(dir.path().to_path_buf());
    cfg.listen = "127.0.0.1:0".into();
    cfg.no_demo = true;
    cfg.admin_token = Some(format!("op_test_{}", rand::random::<u64>()));
    if let Ok(base) = std::env::var("BUYLINE_TEST_DATABASE_URL") {
        if !base.is_empty() {
            cfg.database_url = Some(fresh_postgres(&base).await);
        }
    }
    f(&mut cfg);
    let database_url = cfg.database_url();
    let running = buyline::spawn(cfg).await.expect("server starts");
    TestApp {
        url: running.public_url.clone(),
        client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        admin_token: running.admin_token.clone(),
        database_url,
        demo: running.demo.clone(),
        dir,
        running: Some(running),
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl TestApp {
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean stop");
        }
        if let (Ok(base), false) = (std::env::var("BUYLINE_TEST_DATABASE_URL"), self.is_sqlite()) {
            use sqlx::Connection;
            let name = url::Url::parse(&self.database_url).unwrap().path().trim_start_matches('/').to_string();
            if let Ok(mut c) = sqlx::PgConnection::connect(&base).await {
                let _ = sqlx::query(&format!("drop database if exists {name} with (force)")).execute(&mut c).await;
                let _ = c.close().await;
            }
        }
    }

    /// Stops the server but keeps its data dir (returned; the caller removes it) and database.
    pub async fn running_stop(mut self) -> std::path::PathBuf {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean stop");
        }
        self.dir.keep()
    }

    /// Stops the server and starts a new one on the same data dir and database.
    pub async fn restart(mut self, f: impl FnOnce(&mut ServeConfig)) -> TestApp {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean stop");
        }
        let mut cfg = ServeConfig::new(self.dir.path().to_path_buf());
        cfg.listen = "127.0.0.1:0".into();
        cfg.no_demo = true;
        cfg.admin_token = Some(self.admin_token.clone());
        cfg.database_url = Some(self.database_url.clone());
        f(&mut cfg);
        let running = buyline::spawn(cfg).await.expect("server restarts");
        self.url = running.public_url.clone();
        self.running = Some(running);
        self
    }

    /// A client of a server this test started itself (another process), on `dir` and
    /// `database_url`; `stop` only drops its database.
    pub fn external(url: String, admin_token: String, database_url: String, dir: tempfile::TempDir) -> TestApp {
        TestApp {
            url,
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            admin_token,
            database_url,
            demo: None,
            dir,
            running: None,
        }
    }

    pub fn services(&self) -> &buyline_core::Services {
        &self.running.as_ref().expect("running").services
    }

    pub fn db(&self) -> &buyline_store::Db {
        &self.running.as_ref().expect("running").db
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let mut req = self.client.request(method, format!("{}/api/v1{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        // A purchase is answered before its capture, which follows within milliseconds:
        // let it finish, so that what a test reads next (balances, the ledger, `captured`)
        // does not depend on timing. The answer itself is kept as it was sent.
        if let Some(r) = &self.running {
            r.services.drain_captures().await;
        }
        Resp { status, headers, body, text }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.call(Method::PATCH, path, token, Some(body)).await
    }

    /// Signs up `handle` (country US) and returns its session token and account.
    pub async fn signup(&self, handle: &str) -> (String, Value) {
        self.signup_in(handle, "US").await
    }

    pub async fn signup_in(&self, handle: &str, country: &str) -> (String, Value) {
        let r = self
            .post(
                "/accounts",
                None,
                json!({"handle": handle, "email": format!("{handle}@example.com"), "password": "correct horse battery", "country": country}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        (r.body["token"].as_str().unwrap().to_string(), r.body["account"].clone())
    }

    /// A US retailer owned by a new person; returns the merchant's key and record.
    pub async fn merchant(&self, handle: &str) -> (String, Value) {
        let (owner, _) = self.signup(&format!("{handle}_o")).await;
        let r = self
            .post(
                "/merchants",
                Some(&owner),
                json!({"name": format!("{handle} shop"), "handle": handle, "kind": "retailer", "country": "US"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        (r.body["api_key"].as_str().unwrap().to_string(), r.body["merchant"].clone())
    }

    /// The demo-like T-shirt: size × colour with finite stock, US and GB shipping.
    pub async fn shirt(&self, key: &str, stock: i64) -> Value {
        let r = self
            .post(
                "/products",
                Some(key),
                json!({
                    "name": "Tee", "kind": "physical",
                    "options": [{"name": "size", "values": ["S", "M"]}, {"name": "colour", "values": ["red", "blue"]}],
                    "price": 2500, "inventory": {"type": "finite", "quantity": stock},
                    "shipping_rates": [{"name": "Standard", "price": 500, "countries": ["US"]},
                                       {"name": "Intl", "price": 1200, "countries": ["GB"]}]
                }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body
    }
}

/// Asserts a problem document with this status and code, and returns it.
pub fn assert_problem(r: &Resp, status: u16, code: &str) -> Value {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "{}",
        r.text
    );
    assert_eq!(r.body["code"], code, "{}", r.text);
    assert_eq!(r.body["status"], status);
    assert!(r.body["type"].is_string() && r.body["title"].is_string() && r.body["detail"].is_string());
    r.body.clone()
}

/// The field names a 422 (or 409) problem blames.
pub fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|a| a.iter().map(|e| e["field"].as_str().unwrap_or("").to_string()).collect())
        .unwrap_or_default()
}

pub fn address() -> Value {
    json!({"name": "Ada Lovelace", "line1": "1 Market St", "city": "San Francisco", "region": "CA",
           "postal_code": "94103", "country": "US", "phone": "+1 415 555 0100"})
}

pub fn card(number: &str) -> Value {
    json!({"card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
}

impl TestApp {
    /// A one-tap order for `variant_id` with a new card.
    pub async fn buy(&self, token: &str, variant_id: &str, number: &str) -> Resp {
        self.post(
            "/orders",
            Some(token),
            json!({"lines": [{"variant_id": variant_id, "quantity": 1}], "shipping_address": address(), "payment": card(number)}),
        )
        .await
    }

    /// Every item of a paged list, page by page from `path` (which has a query already:
    /// `?limit=…`), following `next_cursor`; each page must answer 200.
    pub async fn every_page(&self, path: &str, token: Option<&str>) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = match &cursor {
                Some(c) => format!("{path}&cursor={c}"),
                None => path.to_string(),
            };
            let r = self.get(&page, token).await;
            assert_eq!(r.status, 200, "{}", r.text);
            items.extend(r.body["data"].as_array().unwrap().iter().cloned());
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return items,
            }
        }
    }

    pub async fn trial_balance(&self) -> Value {
        let r = self.get("/admin/ledger/trial_balance", Some(&self.admin_token.clone())).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body
    }
}

/// Polls all the futures together on this task, as concurrent clients would send them.
pub async fn join_all<F: std::future::Future<Output = Resp>>(futs: Vec<F>) -> Vec<Resp> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<Resp>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if results[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(r) => results[i] = Some(r),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results.into_iter().map(Option::unwrap).collect()
}

/// The id of the shirt's variant with this size and colour.
pub fn variant(p: &Value, size: &str, colour: &str) -> String {
    p["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["options"]["size"] == size && v["options"]["colour"] == colour)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Units left of a product's variant, as the public product API shows them.
pub async fn stock_of(app: &TestApp, product: &Value, vid: &str) -> i64 {
    let p = app.get(&format!("/products/{}", product["id"].as_str().unwrap()), None).await.body;
    p["variants"].as_array().unwrap().iter().find(|v| v["id"] == vid).unwrap()["inventory"]["quantity"]
        .as_i64()
        .unwrap()
}

/// A browser without JavaScript: a cookie jar, no redirects followed.
pub struct Browser {
    pub client: reqwest::Client,
    pub base: String,
}

pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf-token\" content=\"").expect("csrf meta") + 27;
    html[at..].split('"').next().unwrap().to_string()
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        let client =
            reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { client, base: app.url.clone() }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self.client.get(format!("{}{path}", self.base)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Submits a form the way the page would: with the CSRF token from the page at `from`.
    pub async fn submit(&self, from: &str, action: &str, fields: &[(&str, &str)]) -> (u16, String, Option<String>) {
        let (_, page) = self.get(from).await;
        let token = csrf_of(&page);
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf", &token));
        let r = self.client.post(format!("{}{action}", self.base)).form(&form).send().await.unwrap();
        let loc = r.headers().get("location").map(|v| v.to_str().unwrap().to_string());
        (r.status().as_u16(), r.text().await.unwrap(), loc)
    }
}

/// The first e-mail in the spool that holds `needle`, once the mailer has written all of it
/// (it may be mid-write when first seen); empty if none does within 15 s.
pub async fn mail_containing(dir: &std::path::Path, needle: &str) -> String {
    for _ in 0..150 {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            if text.contains(needle) && text.contains("\r\n\r\n") {
                return text;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    String::new()
}

/// A `buyline serve` in its own process: to be killed with SIGKILL mid-flight, or stopped
/// with SIGTERM.
pub struct ChildServer {
    pub child: std::process::Child,
    pub url: String,
}

impl ChildServer {
    /// Started as the crash tests want it: the reconciler every second, a checkout stuck
    /// after two, warnings only.
    pub async fn start(dir: &std::path::Path, database_url: &str, admin_token: &str) -> ChildServer {
        Self::start_with(dir, database_url, admin_token, |cmd| {
            cmd.args(["--reconcile-interval-secs", "1", "--stuck-checkout-secs", "2"])
                .env("BUYLINE_LOG", "warn")
                .stdout(std::process::Stdio::null());
        })
        .await
    }

    /// Started with `configure` adding its own flags, variables and outputs; ready when
    /// `/readyz` answers.
    pub async fn start_with(
        dir: &std::path::Path,
        database_url: &str,
        admin_token: &str,
        configure: impl FnOnce(&mut std::process::Command),
    ) -> ChildServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_buyline"));
        cmd.args(["serve", "--no-demo", "--listen", &format!("127.0.0.1:{port}")])
            .env("BUYLINE_DATA_DIR", dir)
            .env("DATABASE_URL", database_url)
            .env("BUYLINE_ADMIN_TOKEN", admin_token);
        configure(&mut cmd);
        let mut child = cmd.spawn().expect("buyline serve starts");
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if client.get(format!("{url}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
                return ChildServer { child, url };
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the server did not become ready");
    }

    /// SIGKILL: the process dies wherever it is.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// SIGTERM and wait: a graceful stop, everything it logged written out.
    pub fn stop(mut self) {
        let sent = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(sent.success());
        let _ = self.child.wait();
    }
}

/// A second server: stopped at the end, killed if the test fails before (a server left
/// running would hold the test runner's output open).
pub struct KilledUnlessStopped(pub Option<ChildServer>);

impl KilledUnlessStopped {
    /// A second `buyline serve`, its own process, on `app`'s database, quiet; and a client
    /// for it.
    pub async fn beside(app: &TestApp) -> (KilledUnlessStopped, TestApp) {
        let other = KilledUnlessStopped(Some(
            ChildServer::start_with(app.dir.path(), &app.database_url, &app.admin_token, |cmd| {
                cmd.env("BUYLINE_LOG", "warn").stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
            })
            .await,
        ));
        let client = TestApp::external(
            other.0.as_ref().unwrap().url.clone(),
            app.admin_token.clone(),
            app.database_url.clone(),
            tempfile::tempdir().unwrap(),
        );
        (other, client)
    }

    pub fn stop(mut self) {
        self.0.take().unwrap().stop();
    }
}

impl Drop for KilledUnlessStopped {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.kill();
        }
    }
}
