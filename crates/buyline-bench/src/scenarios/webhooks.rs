//! `webhooks`: the pure delivery rate of a backlog, deliveries while orders flow, and an
//! outage of the merchant's endpoint and its recovery. Nothing may be lost or badly signed.
//!
//! The backlog is made through the API: while the receiver holds every delivery unanswered
//! (so the worker waits on its first batch), `--backlog` one-tap orders each write their
//! `order.created` event and its delivery in the order's own transaction, as any order does.
//! `GET /merchant/webhook_deliveries` confirms they are all pending; then the receiver is
//! released and the clock runs until it has verified every one.

use crate::api::{one_tap, signup, wallets, Api, Wallet};
use crate::args::BenchArgs;
use crate::load::{load, Measured};
use crate::receiver::Receiver;
use crate::run::Outcome;
use serde_json::json;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The server's webhook timeout for this scenario (`BUYLINE_WEBHOOK_TIMEOUT_SECS`): the held
/// first batch must not time out (and go to the retry schedule) while the backlog is built.
pub const HOLD_TIMEOUT_SECS: &str = "3600";

pub async fn run(api: &Api, args: &BenchArgs, duration: Duration, out: &mut Outcome) -> anyhow::Result<Measured> {
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
    let ws = Arc::new(wallets(api, args.clients.min(64), "hook").await?);

    // Phase 0: the pure delivery rate of a backlog already in the outbox.
    let mut burst_rate = 0.0;
    if args.backlog > 0 {
        rx.hold.send_replace(true);
        let ids = backlog(api, &ws, &variant, args.clients, args.backlog).await?;
        let pending = api
            .list_all("/merchant/webhook_deliveries", Some(&key))
            .await?
            .iter()
            .filter(|d| d["status"] == "pending")
            .count();
        out.set("burst_pending_before_release", json!(pending));
        if pending < args.backlog {
            out.fail(format!("{pending} of {} backlog deliveries were pending in the outbox", args.backlog));
        }
        let t0 = Instant::now();
        rx.hold.send_replace(false);
        let got = rx.wait_for(args.backlog, Duration::from_secs(300)).await;
        let took = t0.elapsed();
        let reported = rx.wait_for_orders(&ids, Duration::from_secs(1)).await;
        burst_rate = got as f64 / took.as_secs_f64().max(1e-9);
        out.set("burst_events", json!(args.backlog));
        out.set("burst_delivered", json!(got));
        out.set("burst_delivered_per_s", json!(burst_rate.round()));
        if got < args.backlog || reported < ids.len() {
            out.fail(format!(
                "{} of {} backlog events never delivered",
                args.backlog - got.min(reported).min(args.backlog),
                args.backlog
            ));
        }
        rx.clear();
    }

    let orders: Arc<Mutex<HashSet<String>>> = Arc::default();
    let place = |d: Duration| {
        let (api, ws, variant, orders) = (api.clone(), ws.clone(), variant.clone(), orders.clone());
        load(args.clients, d, move |c, _| {
            let (api, ws, variant, orders) = (api.clone(), ws.clone(), variant.clone(), orders.clone());
            async move {
                match one_tap(&api, &ws[c % ws.len()], &variant, None).await {
                    Some(id) => orders.lock().unwrap().insert(id),
                    None => false,
                }
            }
        })
    };
    // Phase 1: deliveries while orders flow; the rate is events delivered per second.
    let t0 = Instant::now();
    place(duration).await;
    let made = orders.lock().unwrap().len();
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
    let all: HashSet<String> = orders.lock().unwrap().clone();
    let made_all = all.len();
    // Retries after an outage come on the backoff schedule (5 s, 30 s, 2 min, 10 min …).
    let drain_limit = Duration::from_secs(if args.outage <= 30 { 240 } else { 1500 });
    let delivered = rx.wait_for(made_all, drain_limit).await;
    let drained_in = recovered.elapsed();
    // Every order's own event, by the order id in its body.
    let reported = rx.wait_for_orders(&all, Duration::from_secs(1)).await;
    // The backlog's own pace: deliveries after recovery over the span they arrived in.
    let after: Vec<Instant> = rx.delivered_at.lock().unwrap().iter().copied().filter(|t| *t >= recovered).collect();
    let backlog_rate = match (after.first(), after.last()) {
        (Some(a), Some(b)) if after.len() > 1 && *b > *a => after.len() as f64 / (*b - *a).as_secs_f64(),
        _ => 0.0,
    };
    let lost = made_all.saturating_sub(delivered.min(reported));
    let bad = rx.bad.load(Ordering::Relaxed);
    out.set("backlog_delivered", json!(after.len()));
    out.set("backlog_drain_per_s", json!(backlog_rate.round()));
    out.set("orders", json!(made_all));
    out.set("webhooks_delivered", json!(delivered));
    out.set("lost", json!(lost));
    out.set("outage_s", json!(args.outage));
    out.set("drained_after_recovery_s", json!((drained_in.as_secs_f64() * 10.0).round() / 10.0));
    out.set("bad_signatures", json!(bad));
    if lost > 0 {
        out.fail(format!("{lost} webhooks lost"));
    }
    if bad > 0 {
        out.fail("bad signatures".into());
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

/// Places exactly `n` one-tap orders from `clients` loops; returns their ids.
async fn backlog(
    api: &Api,
    ws: &Arc<Vec<Wallet>>,
    variant: &str,
    clients: usize,
    n: usize,
) -> anyhow::Result<HashSet<String>> {
    let issued = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let ids: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut set = tokio::task::JoinSet::new();
    for c in 0..clients.max(1) {
        let (api, ws, variant, issued, failed, ids) =
            (api.clone(), ws.clone(), variant.to_string(), issued.clone(), failed.clone(), ids.clone());
        set.spawn(async move {
            while issued.fetch_add(1, Ordering::Relaxed) < n {
                // Each ticket is one order: a failed attempt is tried again (giving up only
                // if failures outnumber the backlog).
                loop {
                    if let Some(id) = one_tap(&api, &ws[c % ws.len()], &variant, None).await {
                        ids.lock().unwrap().insert(id);
                        break;
                    }
                    if failed.fetch_add(1, Ordering::Relaxed) as usize > n {
                        return;
                    }
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
    let ids = std::mem::take(&mut *ids.lock().unwrap());
    if ids.len() < n {
        anyhow::bail!(
            "placed {} of {n} orders for the webhook backlog ({} failed)",
            ids.len(),
            failed.load(Ordering::Relaxed)
        );
    }
    Ok(ids)
}
