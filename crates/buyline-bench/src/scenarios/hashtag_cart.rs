//! `hashtag-cart`: linked shoppers reply with the merchant's cart hashtag at a fixed rate;
//! every reply must be answered exactly once, and the latency is the server's own.

use crate::api::{signup, Api};
use crate::args::BenchArgs;
use crate::load::{load, Measured};
use crate::run::Outcome;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Replies with a cart hashtag at `--rate` per second from `--clients` linked shoppers, each
/// to one of 50 posts linking a different variant (so most replies add an item, and the
/// rest find it already there). The latency is the server's own: the confirmation reply's
/// timestamp less the shopper's reply's. Every reply must be answered exactly once.
pub async fn run(api: &Api, args: &BenchArgs, duration: Duration, out: &mut Outcome) -> anyhow::Result<Measured> {
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
    out.set("offered_per_s", json!(args.rate));
    out.set("replies", json!(replies.len()));
    out.set("rejected", json!(rejected.load(Ordering::Relaxed)));
    out.set("answered", json!(latencies.len()));
    out.set("unanswered", json!(unanswered));
    out.set("answered_twice", json!(twice));
    out.set("post_p99_ms", json!(post_p99));
    if unanswered > 0 {
        out.fail(format!("{unanswered} replies never answered"));
    }
    if twice > 0 {
        out.fail(format!("{twice} replies answered more than once"));
    }
    Ok(Measured { ok: request.ok, errors: request.errors, latencies_us: latencies, elapsed: request.elapsed })
}
