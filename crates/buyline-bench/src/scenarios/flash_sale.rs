//! `flash-sale`: `--stock` units, `--buyers` one-tap buyers released at once against two
//! server processes on one PostgreSQL database. Nothing may be oversold or charged twice, and
//! every sale's `order.created` webhook must arrive, verified.
//!
//! The counters come from the API after the sale: the product's stock (`GET /products/{id}`),
//! every order of every buyer (`GET /orders`, each status) and the merchant's paid orders
//! (`GET /merchant/orders`), and what the ledger recorded as captured (the trial balance's
//! `processor_receivable`: every capture posts the order's total there, once).

use crate::api::{signup, wallets, Api};
use crate::args::BenchArgs;
use crate::load::Measured;
use crate::receiver::Receiver;
use crate::run::Outcome;
use crate::server::{Server, MEASURING};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn run(args: &BenchArgs, servers: &[Server], out: &mut Outcome) -> anyhow::Result<Measured> {
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
    let product = p["id"].as_str().unwrap_or("").to_string();
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
            let answer = match r {
                Ok((s, b)) => (s, b["code"].as_str().unwrap_or("").to_string(), b["id"].as_str().map(str::to_string)),
                Err(_) => (0, "transport".to_string(), None),
            };
            (answer, t0.elapsed(), t0)
        });
    }
    MEASURING.store(true, Ordering::Relaxed);
    gate.wait().await;
    let (mut sold, mut sold_out, mut other) = (0i64, 0i64, 0u64);
    let mut other_kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut answered_ids: HashSet<String> = HashSet::new();
    let mut lat = Vec::new();
    // When (from the release) the last sale and the last sold-out answer came: which of the
    // two the sale's length is made of.
    let (mut last_sale, mut last_sold_out) = (Duration::ZERO, Duration::ZERO);
    while let Some(r) = set.join_next().await {
        let ((status, code, id), el, t0) = r?;
        lat.push(el.as_micros() as u64);
        let at = (t0 + el).saturating_duration_since(started);
        match status {
            201 => last_sale = last_sale.max(at),
            _ => last_sold_out = last_sold_out.max(at),
        }
        match (status, code.as_str()) {
            (201, _) => {
                sold += 1;
                answered_ids.insert(id.unwrap_or_default());
            }
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
    let reported = rx.wait_for_orders(&answered_ids, Duration::from_secs(10)).await as i64;

    // Stock left, as the product shows it.
    let prod = apis[0].get(&format!("/products/{product}"), None).await?;
    let left = prod["variants"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["id"].as_str() == Some(variant.as_str())))
        .and_then(|v| v["inventory"]["quantity"].as_i64())
        .unwrap_or(-1);
    // Every order any buyer has, in any status (a buyer's list includes orders still waiting
    // on 3-D Secure, which the merchant's list leaves out).
    let mut all_orders: HashSet<String> = HashSet::new();
    let mut listed = 0usize;
    for (t, _, _) in ws.iter() {
        for o in apis[0].list_all("/orders", Some(t)).await? {
            listed += 1;
            all_orders.insert(o["id"].as_str().unwrap_or("").to_string());
        }
    }
    // The merchant's paid orders, their totals, and whether each was captured. A purchase is
    // answered before its capture, which follows within milliseconds: a paid order still
    // uncaptured is looked at again for up to ten seconds before it counts as a failure.
    let give_up = Instant::now() + Duration::from_secs(10);
    let (paid, uncaptured) = loop {
        let paid = apis[0].list_all("/merchant/orders?status=paid", Some(&key)).await?;
        let uncaptured = paid.iter().filter(|o| o["captured"].as_bool() != Some(true)).count() as i64;
        if uncaptured == 0 || Instant::now() >= give_up {
            break (paid, uncaptured);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let paid_orders = paid.len() as i64;
    let paid_amount: i64 = paid.iter().map(|o| o["totals"]["total"].as_i64().unwrap_or(0)).sum();
    let unit = paid.iter().filter_map(|o| o["totals"]["total"].as_i64()).max().unwrap_or(5000).max(1);
    // What the ledger recorded as captured: this database holds only this sale.
    let (balanced, accounts) = super::trial_balance(&apis[0]).await?;
    let captured_amount: i64 = accounts.iter().filter(|(a, _)| a == "processor_receivable").map(|(_, b)| *b).sum();
    // Captures beyond the paid orders (in orders' worth), and orders no 201 answered (a second
    // order for one purchase) or listed twice.
    let extra_captures = ((captured_amount - paid_amount).max(0) + unit - 1) / unit;
    let extra_orders = all_orders.difference(&answered_ids).count() as i64 + (listed - all_orders.len()) as i64;
    let oversold = (paid_orders - args.stock).max(0) + if left < 0 { -left } else { 0 };
    let double_charges = extra_captures + extra_orders;
    out.set("stock", json!(args.stock));
    out.set("sold", json!(sold));
    out.set("sold_out_answers", json!(sold_out));
    out.set("oversold", json!(oversold));
    out.set("double_charges", json!(double_charges));
    out.set("webhooks_delivered", json!(delivered));
    out.set("bad_signatures", json!(rx.bad.load(Ordering::Relaxed)));
    out.set("stock_left", json!(left));
    out.set("paid_orders", json!(paid_orders));
    out.set("captured_amount", json!(captured_amount));
    out.set("paid_amount", json!(paid_amount));
    out.set("ledger_balanced", json!(balanced));
    out.set("other_answers", json!(other_kinds));
    out.set("last_sale_ms", json!(last_sale.as_millis() as u64));
    out.set("last_sold_out_ms", json!(last_sold_out.as_millis() as u64));
    if sold != args.stock.min(args.buyers as i64) || paid_orders != sold {
        out.fail(format!("sold {sold} (orders {paid_orders}) of {} units", args.stock));
    }
    if left != args.stock - sold {
        out.fail(format!("{left} units left after selling {sold} of {}", args.stock));
    }
    if oversold != 0 {
        out.fail(format!("oversold {oversold}"));
    }
    if double_charges != 0 {
        out.fail(format!("{double_charges} double charges"));
    }
    if uncaptured != 0 || captured_amount != paid_amount {
        out.fail(format!(
            "the ledger captured {captured_amount} for paid orders worth {paid_amount} ({uncaptured} paid orders not captured)"
        ));
    }
    if !balanced {
        out.fail("the ledger does not balance".into());
    }
    if delivered != sold || reported != sold {
        out.fail(format!("{delivered} of {sold} order.created webhooks delivered ({reported} of the sold orders)"));
    }
    if other > 0 {
        out.fail(format!("{other} answers were neither paid nor sold out"));
    }
    Ok(Measured { ok: sold as u64 + sold_out as u64, errors: other, latencies_us: lat, elapsed })
}
