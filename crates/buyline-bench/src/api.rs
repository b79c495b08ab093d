//! The public HTTP API (`/api/v1`), as a client sees it, and the set-up every scenario shares.

use anyhow::bail;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    pub base: String,
}

impl Api {
    pub fn new(base: &str) -> Api {
        let client = reqwest::Client::builder().pool_max_idle_per_host(1024).build().expect("http client");
        Api { client, base: base.trim_end_matches('/').to_string() }
    }

    pub async fn call(
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

    /// A request whose answer is read to its end but not parsed: its status. For load whose
    /// requests are judged by status alone, so the client (which shares the machine with
    /// the server) spends no time building a JSON tree nobody reads.
    pub async fn status_of(&self, method: reqwest::Method, path: &str, token: Option<&str>) -> anyhow::Result<u16> {
        let mut r = self.client.request(method, format!("{}/api/v1{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().await?;
        let status = resp.status().as_u16();
        resp.bytes().await?;
        Ok(status)
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> anyhow::Result<Value> {
        let (s, b) = self.call(reqwest::Method::POST, path, token, Some(&body)).await?;
        if !(200..300).contains(&s) {
            bail!("POST {path}: {s} {b}");
        }
        Ok(b)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> anyhow::Result<Value> {
        let (s, b) = self.call(reqwest::Method::GET, path, token, None).await?;
        if s != 200 {
            bail!("GET {path}: {s} {b}");
        }
        Ok(b)
    }

    /// Every item of a paged list (`?limit=&cursor=`, `next_cursor`).
    pub async fn list_all(&self, path: &str, token: Option<&str>) -> anyhow::Result<Vec<Value>> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = match &cursor {
                Some(c) => self.get(&format!("{path}{sep}limit=100&cursor={c}"), token).await?,
                None => self.get(&format!("{path}{sep}limit=100"), token).await?,
            };
            out.extend(page["data"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(c) if !c.is_empty() => cursor = Some(url_escape(c)),
                _ => return Ok(out),
            }
        }
    }
}

fn url_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub struct Shop {
    pub key: String,
    pub variant: String,
    pub post: String,
}

pub async fn shop(api: &Api, handle: &str, inventory: Value) -> anyhow::Result<Shop> {
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

pub async fn signup(api: &Api, handle: &str) -> anyhow::Result<String> {
    let b = api
        .post("/accounts", None, json!({"handle": handle, "email": format!("{handle}@bench.test"), "password": "bench password 1", "country": "US"}))
        .await?;
    Ok(b["token"].as_str().unwrap_or("").to_string())
}

/// A shopper with a saved card and address: what one tap needs (token, card, address).
pub type Wallet = (String, String, String);

pub async fn wallet(api: &Api, handle: &str) -> anyhow::Result<Wallet> {
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

pub async fn wallets(api: &Api, n: usize, prefix: &str) -> anyhow::Result<Vec<Wallet>> {
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

/// One tap: `POST /orders` with the wallet's saved card and address. The order's id if paid.
pub async fn one_tap(api: &Api, w: &Wallet, variant: &str, post: Option<&str>) -> Option<String> {
    let (t, pm, addr) = w;
    let mut body =
        json!({"lines": [{"variant_id": variant}], "address_id": addr, "payment": {"payment_method_id": pm}});
    if let Some(p) = post {
        body["post_id"] = json!(p);
    }
    match api.call(reqwest::Method::POST, "/orders", Some(t), Some(&body)).await {
        Ok((201, b)) => Some(b["id"].as_str().unwrap_or("").to_string()),
        _ => None,
    }
}
