//! `buyline bench`: load scenarios against real `buyline serve` processes on loopback. The
//! load comes from this process; servers are children started with the same binary (or an
//! existing one with `--target`). Every scenario first measures `baseline` — the same HTTP
//! stack answering a constant JSON body — so figures can be read as ratios of this
//! machine's ceiling. Speed is reported, never asserted; correctness counters are, and a
//! scenario whose counters are wrong exits non-zero.

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
pub enum Scenario {
    Baseline,
    OneTap,
    FlashSale,
    Timeline,
    Webhooks,
    HashtagCart,
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    pub scenario: Scenario,
    /// Seconds of measured load.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// End with one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
    /// Database for the servers (`postgres://…` for flash-sale; a fresh database is made on
    /// that server). Default: SQLite in a temp dir; flash-sale uses the local PostgreSQL.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Drive an already running server instead of starting one (baseline, timeline).
    #[arg(long)]
    pub target: Option<String>,
    /// Flash sale: units in stock and buyers.
    #[arg(long, default_value_t = 500)]
    pub stock: i64,
    #[arg(long, default_value_t = 5000)]
    pub buyers: usize,
    /// Webhooks: seconds the receiver is down before it recovers.
    #[arg(long, default_value_t = 10)]
    pub outage: u64,
    /// Webhooks: events put in the outbox at once to measure the pure delivery rate.
    #[arg(long, default_value_t = 5000)]
    pub backlog: usize,
    /// Hashtag cart: replies per second offered (open loop, spread over the clients).
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
}

const ADMIN: &str = "op_bench_token";

/// Set while load runs; the RSS sampler records only then, so set-up (sign-ups hash
/// passwords with Argon2, 19 MiB each) does not count as memory under load.
static MEASURING: AtomicBool = AtomicBool::new(false);
static LOAD_RSS_KIB: AtomicU64 = AtomicU64::new(0);

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse().ok()))
        .unwrap_or(0)
}

/// Samples the servers' resident memory every 50 ms while load runs.
fn sample_rss(pids: Vec<u32>) {
    std::thread::spawn(move || loop {
        if MEASURING.load(Ordering::Relaxed) {
            let total: u64 = pids.iter().map(|p| rss_kib(*p, "VmRSS:")).max().unwrap_or(0);
            LOAD_RSS_KIB.fetch_max(total, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(50));
    });
}

/// A server process started for the run.
struct Server {
    child: std::process::Child,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    fn start(database_url: Option<&str>, dir: Option<&std::path::Path>) -> anyhow::Result<Server> {
        let tmp = if dir.is_none() { Some(tempfile::tempdir()?) } else { None };
        let data_dir = dir.map(|d| d.to_path_buf()).unwrap_or_else(|| tmp.as_ref().unwrap().path().to_path_buf());
        let mut cmd = std::process::Command::new(std::env::current_exe()?);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--no-demo", "--allow-private-webhooks"])
            .arg("--data-dir")
            .arg(&data_dir)
            .env("BUYLINE_ADMIN_TOKEN", ADMIN)
            // The load comes from a few shoppers; the per-shopper burst limit is not under test.
            .env("BUYLINE_CART_REPLY_LIMIT", "1000000")
            .env("BUYLINE_LOG", std::env::var("BUYLINE_LOG").unwrap_or_else(|_| "warn".into()))
            .env_remove("DATABASE_URL")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit());
        if let Some(u) = database_url {
            cmd.env("DATABASE_URL", u);
        }
        let mut child = cmd.spawn().context("starting buyline serve")?;
        let out = child.stdout.take().context("server stdout")?;
        let mut lines = std::io::BufReader::new(out).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(u) = line.strip_prefix("Buyline is running at ") {
                        break u.trim().to_string();
                    }
                }
                _ => bail!("the server exited before listening"),
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Ok(Server { child, url, _dir: tmp })
    }

    /// Peak resident memory of the process over its whole life (set-up included), in MiB.
    fn peak_rss_mib(&self) -> f64 {
        rss_kib(self.child.id(), "VmHWM:") as f64 / 1024.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    fn new(base: &str) -> Api {
        let client = reqwest::Client::builder().pool_max_idle_per_host(1024).build().expect("http client");
        Api { client, base: base.trim_end_matches('/').to_string() }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut r = self.client.request(method, format!("{}/api/v1{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(b);
        }
        let resp = r.send().await?;
        let status = resp.status().as_u16();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> anyhow::Result<Value> {
        let (s, b) = self.call(reqwest::Method::POST, path, token, Some(&body)).await?;
        if !(200..300).contains(&s) {
            bail!("POST {path}: {s} {b}");
        }
        Ok(b)
    }
}

#[derive(Default)]
struct Measured {
    ok: u64,
    errors: u64,
    latencies_us: Vec<u64>,
    elapsed: Duration,
}

impl Measured {
    fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }

    fn per_s(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `clients` loops for `duration`, each calling `op(client_index, iteration)`.
async fn load<F, Fut>(clients: usize, duration: Duration, op: F) -> Measured
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    MEASURING.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (op, stop) = (op.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let (mut ok, mut err) = (0u64, 0u64);
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                if op(c, i).await {
                    ok += 1;
                    lat.push(t.elapsed().as_micros() as u64);
                } else {
                    err += 1;
                }
                i += 1;
            }
            (ok, err, lat)
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    MEASURING.store(false, Ordering::Relaxed);
    let mut m = Measured::default();
    for t in tasks {
        if let Ok((ok, err, lat)) = t.await {
            m.ok += ok;
            m.errors += err;
            m.latencies_us.extend(lat);
        }
    }
    m.elapsed = started.elapsed();
    m.latencies_us.sort_unstable();
    m
}

async fn baseline(api: &Api, clients: usize, duration: Duration) -> Measured {
    let api = api.clone();
    load(clients, duration, move |_, _| {
        let api = api.clone();
        async move { matches!(api.call(reqwest::Method::GET, "/ping", None, None).await, Ok((200, _))) }
    })
    .await
}

struct Shop {
    key: String,
    variant: String,
    post: String,
}

async fn shop(api: &Api, handle: &str, inventory: Value) -> anyhow::Result<Shop> {
    let owner = signup(api, &format!("{handle}_owner")).await?;
    let m = api
        .post(
            "/merchants",
            Some(&owner),
            json!({"name": handle, "handle": handle, "kind": "retailer", "country": "US"}),
        )
        .await?;
    let key = m["api_key"].as_str().unwrap_or("").to_string();
    let p = api
        .post(
            "/products",
            Some(&key),
            json!({"name": "Bench Tee", "kind": "physical", "price": 2500, "inventory": inventory,
            "shipping_rates": [{"name": "Standard", "price": 500, "countries": ["US"]}]}),
        )
        .await?;
    let variant = p["variants"][0]["id"].as_str().unwrap_or("").to_string();
    let post = api.post("/posts", Some(&key), json!({"text": "Bench drop", "product_id": p["id"]})).await?;
    Ok(Shop { key, variant, post: post["id"].as_str().unwrap_or("").to_string() })
}

async fn signup(api: &Api, handle: &str) -> anyhow::Result<String> {
    let b = api
        .post("/accounts", None, json!({"handle": handle, "email": format!("{handle}@bench.test"), "password": "bench password 1", "country": "US"}))
        .await?;
    Ok(b["token"].as_str().unwrap_or("").to_string())
}

/// A shopper with a saved card and address: what one tap needs.
async fn wallet(api: &Api, handle: &str) -> anyhow::Result<(String, String, String)> {
    let t = signup(api, handle).await?;
    let pm = api
        .post(
            "/payment_methods",
            Some(&t),
            json!({"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}}),
        )
        .await?;
    let addr = api
        .post("/addresses", Some(&t), json!({"name": "Bench", "line1": "1 Loop Rd", "city": "Cupertino", "region": "CA", "postal_code": "95014", "country": "US"}))
        .await?;
    Ok((t, pm["id"].as_str().unwrap_or("").into(), addr["id"].as_str().unwrap_or("").into()))
}

async fn wallets(api: &Api, n: usize, prefix: &str) -> anyhow::Result<Vec<(String, String, String)>> {
    let mut set = tokio::task::JoinSet::new();
    let sem = Arc::new(tokio::sync::Semaphore::new(8));
    for i in 0..n {
        let (api, sem, h) = (api.clone(), sem.clone(), format!("{prefix}{i}"));
        set.spawn(async move {
            let _p = sem.acquire().await;
            wallet(&api, &h).await
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r??);
    }
    Ok(out)
}

/// A local merchant endpoint for webhooks: verifies signatures, counts distinct events, and
/// can be told to fail (an outage).
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<std::collections::HashSet<String>>>,
    bad: Arc<AtomicU64>,
    down: Arc<AtomicBool>,
    secret: Arc<Mutex<String>>,
    delivered_at: Arc<Mutex<Vec<Instant>>>,
}

impl Receiver {
    async fn start(&self) -> anyhow::Result<String> {
        let me = self.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let me = me.clone();
                async move {
                    if me.down.load(Ordering::Relaxed) {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let secret = me.secret.lock().unwrap().clone();
                    let ok = standardwebhooks::Webhook::new(&secret)
                        .map(|w| w.verify(&body, &headers).is_ok())
                        .unwrap_or(false);
                    if !ok {
                        me.bad.fetch_add(1, Ordering::Relaxed);
                        return axum::http::StatusCode::UNAUTHORIZED;
                    }
                    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    if me.seen.lock().unwrap().insert(id) {
                        me.delivered_at.lock().unwrap().push(Instant::now());
                    }
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(url)
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    async fn wait_for(&self, n: usize, limit: Duration) -> usize {
        let until = Instant::now() + limit;
        while self.count() < n && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.count()
    }
}

/// A fresh PostgreSQL database on the server named by `base`.
async fn fresh_pg(base: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let name = format!("bl_bench_{}", rand::random::<u32>());
    let mut c = sqlx::PgConnection::connect(base).await.context("connecting to PostgreSQL for the flash sale")?;
    sqlx::query(&format!("create database {name}")).execute(&mut c).await?;
    let mut u = url::Url::parse(base)?;
    u.set_path(&format!("/{name}"));
    Ok(u.to_string())
}

async fn drop_pg(base: &str, url: &str) {
    use sqlx::Connection;
    if let (Ok(mut c), Ok(u)) = (sqlx::PgConnection::connect(base).await, url::Url::parse(url)) {
        let name = u.path().trim_start_matches('/').to_string();
        let _ = sqlx::query(&format!("drop database if exists {name} with (force)")).execute(&mut c).await;
    }
}

async fn pg_count(url: &str, sql: &str) -> anyhow::Result<i64> {
    use sqlx::{Connection, Row};
    let mut c = sqlx::PgConnection::connect(url).await?;
    Ok(sqlx::query(sql).fetch_one(&mut c).await?.try_get::<i64, _>(0)?)
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.duration.max(1));
    let mut counters: BTreeMap<String, Value> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    let mut servers: Vec<Server> = Vec::new();
    let mut pg_cleanup: Option<(String, String)> = None;

    // Servers.
    let api = match (&args.target, args.scenario) {
        (Some(t), Scenario::Baseline | Scenario::Timeline) => Api::new(t),
        (Some(_), _) => bail!("--target drives baseline and timeline; the other scenarios start their own servers"),
        (None, Scenario::FlashSale) => {
            let base = args
                .database_url
                .clone()
                .or_else(|| std::env::var("BUYLINE_BENCH_DATABASE_URL").ok())
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
            let db = fresh_pg(&base).await?;
            pg_cleanup = Some((base, db.clone()));
            let dir = tempfile::tempdir()?;
            // Two processes on one database, sharing the vault key directory.
            servers.push(Server::start(Some(&db), Some(dir.path()))?);
            servers.push(Server::start(Some(&db), Some(dir.path()))?);
            std::mem::forget(dir);
            Api::new(&servers[0].url)
        }
        (None, _) => {
            servers.push(Server::start(args.database_url.as_deref(), None)?);
            Api::new(&servers[0].url)
        }
    };

    sample_rss(servers.iter().map(|s| s.child.id()).collect());
    let base = baseline(
        &api,
        args.clients,
        if args.scenario == Scenario::Baseline { duration } else { duration.min(Duration::from_secs(3)) },
    )
    .await;
    let measured = match args.scenario {
        Scenario::Baseline => Measured {
            ok: base.ok,
            errors: base.errors,
            latencies_us: base.latencies_us.clone(),
            elapsed: base.elapsed,
        },
        Scenario::OneTap => {
            let shop = shop(&api, "benchshop", json!({"type": "infinite"})).await?;
            let ws = Arc::new(wallets(&api, args.clients, "tap").await?);
            let (api2, variant, post) = (api.clone(), shop.variant.clone(), shop.post.clone());
            let m = load(args.clients, duration, move |c, _| {
                let (api, ws, variant, post) = (api2.clone(), ws.clone(), variant.clone(), post.clone());
                async move {
                    let (t, pm, addr) = &ws[c % ws.len()];
                    let body = json!({"lines": [{"variant_id": variant}], "post_id": post, "address_id": addr, "payment": {"payment_method_id": pm}});
                    matches!(api.call(reqwest::Method::POST, "/orders", Some(t), Some(&body)).await, Ok((201, _)))
                }
            })
            .await;
            let tb = api.call(reqwest::Method::GET, "/admin/ledger/trial_balance", Some(ADMIN), None).await?.1;
            let balanced = tb["totals"].as_object().map(|o| o.values().all(|v| v.as_i64() == Some(0))).unwrap_or(false);
            counters.insert("orders".into(), json!(m.ok));
            counters.insert("ledger_balanced".into(), json!(balanced));
            if !balanced {
                failures.push("the ledger does not balance".into());
            }
            let _ = shop.key;
            m
        }
        Scenario::Timeline => {
            let reader = signup(&api, "reader").await?;
            for i in 0..8 {
                let s = shop(&api, &format!("feed{i}"), json!({"type": "finite", "quantity": 100})).await?;
                for j in 0..5 {
                    api.post("/posts", Some(&s.key), json!({"text": format!("Post {j} from shop {i} #bench")})).await?;
                }
                api.post(&format!("/accounts/feed{i}/follow"), Some(&reader), json!({})).await?;
            }
            let api2 = api.clone();
            let reader2 = reader.clone();
            let m = load(args.clients, duration, move |_, _| {
                let (api, t) = (api2.clone(), reader2.clone());
                async move { matches!(api.call(reqwest::Method::GET, "/timeline", Some(&t), None).await, Ok((200, _))) }
            })
            .await;
            let page = api.call(reqwest::Method::GET, "/timeline", Some(&reader), None).await?.1;
            let cards = page["data"].as_array().map(|a| a.iter().filter(|i| i["buy"].is_object()).count()).unwrap_or(0);
            counters.insert("items_per_page".into(), json!(page["data"].as_array().map(Vec::len).unwrap_or(0)));
            counters.insert("buy_cards_per_page".into(), json!(cards));
            if cards == 0 {
                failures.push("the timeline carries no buy cards".into());
            }
            m
        }
        Scenario::FlashSale => {
            flash_sale(&args, &servers, &mut counters, &mut failures, pg_cleanup.as_ref().map(|p| p.1.clone())).await?
        }
        Scenario::Webhooks => {
            let db_url = args
                .database_url
                .clone()
                .or_else(|| servers[0]._dir.as_ref().map(|d| crate::config::database_url(d.path(), None)));
            webhooks(&api, &args, duration, db_url, &mut counters, &mut failures).await?
        }
        Scenario::HashtagCart => hashtag_cart(&api, &args, duration, &mut counters, &mut failures).await?,
    };
    let rss = servers.iter().map(Server::peak_rss_mib).fold(0.0, f64::max);
    let load_rss = LOAD_RSS_KIB.load(Ordering::Relaxed) as f64 / 1024.0;
    drop(servers);
    if let Some((base, db)) = pg_cleanup {
        drop_pg(&base, &db).await;
    }

    let name = args.scenario.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
    let ratio = measured.per_s() / base.per_s().max(1e-9);
    println!("scenario          {name}");
    println!("clients           {}", args.clients);
    println!("duration_s        {:.1}", measured.elapsed.as_secs_f64());
    println!("throughput_per_s  {:.0}", measured.per_s());
    println!("baseline_per_s    {:.0}  (ratio {:.3})", base.per_s(), ratio);
    println!("p50_ms            {:.2}", measured.pct(0.50));
    println!("p95_ms            {:.2}", measured.pct(0.95));
    println!("p99_ms            {:.2}", measured.pct(0.99));
    println!("errors            {}", measured.errors);
    println!("server_rss_under_load_mib {:.1}", load_rss);
    println!("server_peak_rss_mib {:.1}  (whole run, set-up included)", rss);
    for (k, v) in &counters {
        println!("{k:<17} {v}");
    }
    for f in &failures {
        println!("FAILED: {f}");
    }
    if args.json {
        let mut out = json!({
            "scenario": name,
            "clients": args.clients,
            "throughput_per_s": (measured.per_s() * 10.0).round() / 10.0,
            "p50_ms": measured.pct(0.50),
            "p95_ms": measured.pct(0.95),
            "p99_ms": measured.pct(0.99),
            "errors": measured.errors,
            "baseline_per_s": (base.per_s() * 10.0).round() / 10.0,
            "ratio_to_baseline": (ratio * 1000.0).round() / 1000.0,
            "server_peak_rss_mib": (rss * 10.0).round() / 10.0,
            "server_rss_under_load_mib": (load_rss * 10.0).round() / 10.0,
            "ok": failures.is_empty(),
        });
        for (k, v) in counters {
            out[k] = v;
        }
        println!("{out}");
    }
    if !failures.is_empty() {
        bail!("correctness counters failed: {}", failures.join("; "));
    }
    Ok(())
}

async fn flash_sale(
    args: &BenchArgs,
    servers: &[Server],
    counters: &mut BTreeMap<String, Value>,
    failures: &mut Vec<String>,
    db: Option<String>,
) -> anyhow::Result<Measured> {
    let apis: Vec<Api> = servers.iter().map(|s| Api::new(&s.url)).collect();
    let rx = Receiver::default();
    let hook = rx.start().await?;
    let owner = signup(&apis[0], "flash_owner").await?;
    let m = apis[0]
        .post(
            "/merchants",
            Some(&owner),
            json!({"name": "Flash", "handle": "flash", "kind": "retailer", "country": "US", "webhook_url": hook}),
        )
        .await?;
    *rx.secret.lock().unwrap() = m["webhook_secret"].as_str().unwrap_or("").to_string();
    let key = m["api_key"].as_str().unwrap_or("").to_string();
    let p = apis[0]
        .post(
            "/products",
            Some(&key),
            json!({"name": "Limited drop", "kind": "physical", "price": 5000,
            "inventory": {"type": "finite", "quantity": args.stock},
            "shipping_rates": [{"name": "Standard", "price": 0, "countries": ["US"]}]}),
        )
        .await?;
    let variant = p["variants"][0]["id"].as_str().unwrap_or("").to_string();
    // Buyers: a pool of shoppers with saved cards; each of the `buyers` requests is one tap.
    let ws = Arc::new(wallets(&apis[0], 100.min(args.buyers), "flash").await?);
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let gate = Arc::new(tokio::sync::Barrier::new(args.buyers + 1));
    // All buyers are released at once; at most this many connections are open at a time, as
    // a load balancer in front would admit them (one process opening 5,000 sockets at once
    // overflows the listen backlog and measures the kernel, not the server).
    let open = Arc::new(tokio::sync::Semaphore::new(1000));
    for i in 0..args.buyers {
        let (api, ws, variant, gate, open) =
            (apis[i % apis.len()].clone(), ws.clone(), variant.clone(), gate.clone(), open.clone());
        set.spawn(async move {
            let (t, pm, addr) = &ws[i % ws.len()];
            let body =
                json!({"lines": [{"variant_id": variant}], "address_id": addr, "payment": {"payment_method_id": pm}});
            gate.wait().await;
            let t0 = Instant::now();
            let _slot = open.acquire().await;
            let r = api.call(reqwest::Method::POST, "/orders", Some(t), Some(&body)).await;
            (
                r.map(|x| (x.0, x.1["code"].as_str().unwrap_or("").to_string())).unwrap_or((0, "transport".into())),
                t0.elapsed(),
            )
        });
    }
    MEASURING.store(true, Ordering::Relaxed);
    gate.wait().await;
    let (mut sold, mut sold_out, mut other) = (0i64, 0i64, 0u64);
    let mut other_kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut lat = Vec::new();
    while let Some(r) = set.join_next().await {
        let ((status, code), el) = r?;
        lat.push(el.as_micros() as u64);
        match (status, code.as_str()) {
            (201, _) => sold += 1,
            (409, "out_of_stock") => sold_out += 1,
            (s, c) => {
                other += 1;
                *other_kinds.entry(format!("{s} {c}")).or_default() += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    MEASURING.store(false, Ordering::Relaxed);
    lat.sort_unstable();
    let delivered = rx.wait_for(sold as usize, Duration::from_secs(120)).await as i64;
    let (left, paid_orders, captured, double) = match &db {
        Some(url) => (
            pg_count(url, &format!("select coalesce(quantity, 0) from variants where id = '{variant}'")).await?,
            pg_count(url, "select count(*) from orders where status = 'paid'").await?,
            pg_count(url, "select count(*) from processor_payments where status = 'captured'").await?,
            pg_count(
                url,
                "select count(*) from (select checkout_id from orders group by checkout_id having count(*) > 1) d",
            )
            .await?,
        ),
        None => (-1, sold, sold, 0),
    };
    let oversold = (paid_orders - args.stock).max(0) + if left < 0 { -left } else { 0 };
    let double_charges = (captured - paid_orders).max(0) + double;
    counters.insert("stock".into(), json!(args.stock));
    counters.insert("sold".into(), json!(sold));
    counters.insert("sold_out_answers".into(), json!(sold_out));
    counters.insert("oversold".into(), json!(oversold));
    counters.insert("double_charges".into(), json!(double_charges));
    counters.insert("webhooks_delivered".into(), json!(delivered));
    counters.insert("bad_signatures".into(), json!(rx.bad.load(Ordering::Relaxed)));
    counters.insert("stock_left".into(), json!(left));
    counters.insert("other_answers".into(), json!(other_kinds));
    if sold != args.stock.min(args.buyers as i64) || paid_orders != sold {
        failures.push(format!("sold {sold} (orders {paid_orders}) of {} units", args.stock));
    }
    if oversold != 0 {
        failures.push(format!("oversold {oversold}"));
    }
    if double_charges != 0 {
        failures.push(format!("{double_charges} double charges"));
    }
    if delivered != sold {
        failures.push(format!("{delivered} of {sold} order.created webhooks delivered"));
    }
    if other > 0 {
        failures.push(format!("{other} answers were neither paid nor sold out"));
    }
    Ok(Measured { ok: sold as u64 + sold_out as u64, errors: other, latencies_us: lat, elapsed })
}

async fn webhooks(
    api: &Api,
    args: &BenchArgs,
    duration: Duration,
    db_url: Option<String>,
    counters: &mut BTreeMap<String, Value>,
    failures: &mut Vec<String>,
) -> anyhow::Result<Measured> {
    let rx = Receiver::default();
    let hook = rx.start().await?;
    let owner = signup(api, "hook_owner").await?;
    let m = api
        .post(
            "/merchants",
            Some(&owner),
            json!({"name": "Hooks", "handle": "hooks", "kind": "retailer", "country": "US", "webhook_url": hook}),
        )
        .await?;
    *rx.secret.lock().unwrap() = m["webhook_secret"].as_str().unwrap_or("").to_string();
    let key = m["api_key"].as_str().unwrap_or("").to_string();
    let p = api
        .post(
            "/products",
            Some(&key),
            json!({"name": "Hooked", "kind": "physical", "price": 1000, "inventory": {"type": "infinite"},
            "shipping_rates": [{"name": "Standard", "price": 0, "countries": ["US"]}]}),
        )
        .await?;
    let variant = p["variants"][0]["id"].as_str().unwrap_or("").to_string();
    // Phase 0: the pure delivery rate. `--backlog` events go into the outbox at once, as the
    // request path's transactions would write them, and the clock runs until the receiver
    // has verified every one.
    let mut burst_rate = 0.0;
    if args.backlog > 0 {
        let url = db_url.context("the webhooks scenario needs the server's database")?;
        let merchant_id = m["merchant"]["id"].as_str().unwrap_or("").to_string();
        let t0 = enqueue_events(&url, &merchant_id, args.backlog).await?;
        let got = rx.wait_for(args.backlog, Duration::from_secs(300)).await;
        let took = t0.elapsed();
        burst_rate = got as f64 / took.as_secs_f64().max(1e-9);
        counters.insert("burst_events".into(), json!(args.backlog));
        counters.insert("burst_delivered".into(), json!(got));
        counters.insert("burst_delivered_per_s".into(), json!(burst_rate.round()));
        if got < args.backlog {
            failures.push(format!("{} of {} enqueued events never delivered", args.backlog - got, args.backlog));
        }
        rx.seen.lock().unwrap().clear();
        rx.delivered_at.lock().unwrap().clear();
    }
    let ws = Arc::new(wallets(api, args.clients.min(64), "hook").await?);
    let orders = Arc::new(AtomicU64::new(0));
    let place = |d: Duration| {
        let (api, ws, variant, orders) = (api.clone(), ws.clone(), variant.clone(), orders.clone());
        load(args.clients, d, move |c, _| {
            let (api, ws, variant, orders) = (api.clone(), ws.clone(), variant.clone(), orders.clone());
            async move {
                let (t, pm, addr) = &ws[c % ws.len()];
                let body = json!({"lines": [{"variant_id": variant}], "address_id": addr, "payment": {"payment_method_id": pm}});
                let ok = matches!(api.call(reqwest::Method::POST, "/orders", Some(t), Some(&body)).await, Ok((201, _)));
                if ok {
                    orders.fetch_add(1, Ordering::Relaxed);
                }
                ok
            }
        })
    };
    // Phase 1: deliveries while orders flow; the rate is events delivered per second.
    let t0 = Instant::now();
    place(duration).await;
    let made = orders.load(Ordering::Relaxed) as usize;
    let got = rx.wait_for(made, Duration::from_secs(60)).await;
    let phase1 = t0.elapsed();
    let lat: Vec<u64> = vec![];
    // Phase 2: the receiver is down while orders keep coming, then recovers and drains.
    rx.down.store(true, Ordering::Relaxed);
    let outage = Duration::from_secs(args.outage);
    place(outage.min(duration)).await;
    tokio::time::sleep(outage.saturating_sub(duration)).await;
    rx.down.store(false, Ordering::Relaxed);
    let recovered = Instant::now();
    let made_all = orders.load(Ordering::Relaxed) as usize;
    // Retries after an outage come on the backoff schedule (5 s, 30 s, 2 min, 10 min …).
    let drain_limit = Duration::from_secs(if args.outage <= 30 { 240 } else { 1500 });
    let delivered = rx.wait_for(made_all, drain_limit).await;
    let drained_in = recovered.elapsed();
    // The backlog's own pace: deliveries after recovery over the span they arrived in.
    let after: Vec<Instant> = rx.delivered_at.lock().unwrap().iter().copied().filter(|t| *t >= recovered).collect();
    let backlog_rate = match (after.first(), after.last()) {
        (Some(a), Some(b)) if after.len() > 1 && *b > *a => after.len() as f64 / (*b - *a).as_secs_f64(),
        _ => 0.0,
    };
    counters.insert("backlog_delivered".into(), json!(after.len()));
    counters.insert("backlog_drain_per_s".into(), json!(backlog_rate.round()));
    counters.insert("orders".into(), json!(made_all));
    counters.insert("webhooks_delivered".into(), json!(delivered));
    counters.insert("lost".into(), json!(made_all.saturating_sub(delivered)));
    counters.insert("outage_s".into(), json!(args.outage));
    counters.insert("drained_after_recovery_s".into(), json!((drained_in.as_secs_f64() * 10.0).round() / 10.0));
    counters.insert("bad_signatures".into(), json!(rx.bad.load(Ordering::Relaxed)));
    if delivered < made_all {
        failures.push(format!("{} webhooks lost", made_all - delivered));
    }
    if rx.bad.load(Ordering::Relaxed) > 0 {
        failures.push("bad signatures".into());
    }
    // The scenario's throughput is the pure delivery rate when it was measured.
    if burst_rate > 0.0 {
        let secs = args.backlog as f64 / burst_rate;
        return Ok(Measured {
            ok: args.backlog as u64,
            errors: 0,
            latencies_us: lat,
            elapsed: Duration::from_secs_f64(secs),
        });
    }
    Ok(Measured { ok: got as u64, errors: 0, latencies_us: lat, elapsed: phase1 })
}

/// Writes `n` events and their pending deliveries for the merchant in one transaction;
/// returns when they were committed.
async fn enqueue_events(url: &str, merchant_id: &str, n: usize) -> anyhow::Result<Instant> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(url).await?;
    let now = chrono::Utc::now();
    let micros = now.timestamp_micros();
    let mut tx = pool.begin().await?;
    let ids: Vec<usize> = (0..n).collect();
    for chunk in ids.chunks(500) {
        let values = |cols: usize| {
            (0..chunk.len())
                .map(|r| {
                    format!("({})", (1..=cols).map(|c| format!("${}", r * cols + c)).collect::<Vec<_>>().join(", "))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let sql = format!("insert into events (id, merchant_id, type, payload, created_at) values {}", values(5));
        let mut q = sqlx::query(&sql);
        for i in chunk {
            let payload = json!({"type": "bench.ping", "timestamp": now.to_rfc3339(), "data": {"n": i}}).to_string();
            q = q.bind(format!("evt_bench{i}")).bind(merchant_id).bind("bench.ping").bind(payload).bind(micros);
        }
        q.execute(&mut *tx).await?;
        let sql = format!(
            "insert into webhook_deliveries (id, event_id, merchant_id, status, attempts, next_attempt_at, \
             locked_until, created_at) values {}",
            values(8)
        );
        let mut q = sqlx::query(&sql);
        for i in chunk {
            q = q
                .bind(format!("dlv_bench{i}"))
                .bind(format!("evt_bench{i}"))
                .bind(merchant_id)
                .bind("pending")
                .bind(0i64)
                .bind(micros)
                .bind(0i64)
                .bind(micros);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    let at = Instant::now();
    pool.close().await;
    Ok(at)
}

/// Replies with a cart hashtag at `--rate` per second from `--clients` linked shoppers, each
/// to one of 50 posts linking a different variant (so most replies add an item, and the
/// rest find it already there). The latency is the server's own: the confirmation reply's
/// timestamp less the shopper's reply's. Every reply must be answered exactly once.
async fn hashtag_cart(
    api: &Api,
    args: &BenchArgs,
    duration: Duration,
    counters: &mut BTreeMap<String, Value>,
    failures: &mut Vec<String>,
) -> anyhow::Result<Measured> {
    const POSTS: usize = 50;
    let owner = signup(api, "cart_owner").await?;
    let m = api
        .post(
            "/merchants",
            Some(&owner),
            json!({"name": "Cart Shop", "handle": "cartshop", "kind": "retailer", "country": "US",
                   "cart_hashtags": {"US": "#BenchCart"}}),
        )
        .await?;
    let key = m["api_key"].as_str().unwrap_or("").to_string();
    let merchant_id = m["merchant"]["id"].as_str().unwrap_or("").to_string();
    // 10 × 5 options: 50 variants.
    let styles: Vec<String> = (0..POSTS / 5).map(|i| format!("s{i}")).collect();
    let colours: Vec<String> = (0..5).map(|i| format!("c{i}")).collect();
    let p = api
        .post(
            "/products",
            Some(&key),
            json!({"name": "Bench Tee", "kind": "physical", "price": 2500, "inventory": {"type": "infinite"},
                   "options": [{"name": "style", "values": styles}, {"name": "colour", "values": colours}],
                   "shipping_rates": [{"name": "Standard", "price": 500, "countries": ["US"]}]}),
        )
        .await?;
    let pid = p["id"].as_str().unwrap_or("").to_string();
    let mut posts = Vec::new();
    for v in p["variants"].as_array().cloned().unwrap_or_default() {
        let text = format!("Reply #BenchCart: {}/p/{pid}?variant={}", api.base, v["id"].as_str().unwrap_or(""));
        posts.push(
            api.post("/posts", Some(&key), json!({"text": text})).await?["id"].as_str().unwrap_or("").to_string(),
        );
    }
    let shoppers = args.clients.clamp(1, 64);
    let mut tokens = Vec::new();
    for i in 0..shoppers {
        let t = signup(api, &format!("replier{i}")).await?;
        api.post(&format!("/merchants/{merchant_id}/link"), Some(&t), json!({})).await?;
        tokens.push(t);
    }
    let (tokens, posts) = (Arc::new(tokens), Arc::new(posts));
    let sent: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let rejected = Arc::new(AtomicU64::new(0));
    // Each client paces itself to rate/clients per second; one that falls behind catches up
    // without sleeping, so the offered load holds while the server keeps up.
    let clients = args.clients.max(1);
    let period = Duration::from_secs_f64(clients as f64 / args.rate.max(1) as f64);
    let started = Instant::now();
    let request = {
        let (api, tokens, posts, sent, rejected) =
            (api.clone(), tokens.clone(), posts.clone(), sent.clone(), rejected.clone());
        load(clients, duration, move |c, i| {
            let (api, tokens, posts, sent, rejected) =
                (api.clone(), tokens.clone(), posts.clone(), sent.clone(), rejected.clone());
            async move {
                let due = started + period.mul_f64(i as f64) + period.mul_f64(c as f64 / clients as f64);
                tokio::time::sleep_until(due.into()).await;
                let t = &tokens[c % tokens.len()];
                let parent = &posts[(c + i as usize) % posts.len()];
                let body = json!({"text": format!("#BenchCart please {c}.{i}"), "reply_to": parent});
                match api.call(reqwest::Method::POST, "/posts", Some(t), Some(&body)).await {
                    Ok((201, b)) => {
                        let at = b["created_at"].as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
                        let id = b["id"].as_str().unwrap_or("").to_string();
                        sent.lock().unwrap().push((id, at.map(|a| a.timestamp_micros()).unwrap_or(0)));
                        true
                    }
                    _ => {
                        rejected.fetch_add(1, Ordering::Relaxed);
                        false
                    }
                }
            }
        })
        .await
    };
    // Wait for the answers, then read each thread once.
    let replies = std::mem::take(&mut *sent.lock().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut latencies, mut unanswered, mut twice) = (Vec::new(), 0u64, 0u64);
    let mut pending: Vec<(String, i64)> = replies.clone();
    while !pending.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        let mut set = tokio::task::JoinSet::new();
        for chunk in pending.chunks(pending.len().div_ceil(16).max(1)) {
            let (api, chunk) = (api.clone(), chunk.to_vec());
            set.spawn(async move {
                let mut out = Vec::new();
                for (id, at) in chunk {
                    let thread = api.call(reqwest::Method::GET, &format!("/posts/{id}"), None, None).await;
                    let answers = thread.ok().and_then(|(_, b)| b["replies"].as_array().cloned()).unwrap_or_default();
                    out.push((id, at, answers));
                }
                out
            });
        }
        while let Some(done) = set.join_next().await {
            for (id, at, answers) in done? {
                match answers.as_slice() {
                    [] => still.push((id, at)),
                    [one, rest @ ..] => {
                        twice += rest.len() as u64;
                        let answered = one["created_at"]
                            .as_str()
                            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                            .map(|a| a.timestamp_micros())
                            .unwrap_or(at);
                        latencies.push((answered - at).max(0) as u64);
                    }
                }
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    unanswered += pending.len() as u64;
    latencies.sort_unstable();
    let post_p99 = request.pct(0.99);
    counters.insert("offered_per_s".into(), json!(args.rate));
    counters.insert("replies".into(), json!(replies.len()));
    counters.insert("rejected".into(), json!(rejected.load(Ordering::Relaxed)));
    counters.insert("answered".into(), json!(latencies.len()));
    counters.insert("unanswered".into(), json!(unanswered));
    counters.insert("answered_twice".into(), json!(twice));
    counters.insert("post_p99_ms".into(), json!(post_p99));
    if unanswered > 0 {
        failures.push(format!("{unanswered} replies never answered"));
    }
    if twice > 0 {
        failures.push(format!("{twice} replies answered more than once"));
    }
    Ok(Measured { ok: request.ok, errors: request.errors, latencies_us: latencies, elapsed: request.elapsed })
}
