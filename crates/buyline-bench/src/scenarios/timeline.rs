//! `timeline`: `GET /timeline` for a shopper following 8 shops, with the experiment's
//! impressions counted. When the bench starts its own servers it also starts one with
//! `--no-funnel-counting` and alternates the load between the two (counted, uncounted,
//! counted, uncounted, each a quarter of `--duration` after the first): `counting_cost_pct`
//! is what counting costs in throughput in the same run. The main figures are the counted
//! server's.

use crate::api::{shop, signup, Api};
use crate::args::BenchArgs;
use crate::load::{load, Measured};
use crate::run::Outcome;
use serde_json::json;
use std::time::Duration;

/// A reader following 8 shops of 5 plain posts and a post with a product each; returns the
/// reader's token and one product post.
async fn set_up(api: &Api) -> anyhow::Result<(String, String)> {
    let reader = signup(api, "reader").await?;
    let mut post = String::new();
    for i in 0..8 {
        let s = shop(api, &format!("feed{i}"), json!({"type": "finite", "quantity": 100})).await?;
        for j in 0..5 {
            api.post("/posts", Some(&s.key), json!({"text": format!("Post {j} from shop {i} #bench")})).await?;
        }
        api.post(&format!("/accounts/feed{i}/follow"), Some(&reader), json!({})).await?;
        post = s.post;
    }
    Ok((reader, post))
}

async fn measure(api: &Api, reader: &str, clients: usize, duration: Duration) -> Measured {
    let (api, reader) = (api.clone(), reader.to_string());
    load(clients, duration, move |_, _| {
        let (api, t) = (api.clone(), reader.clone());
        // Judged by status (a page is checked whole after the load, below): the body is read
        // to its end, not parsed.
        async move { matches!(api.status_of(reqwest::Method::GET, "/timeline", Some(&t)).await, Ok(200)) }
    })
    .await
}

fn add(total: &mut Measured, m: Measured) {
    total.ok += m.ok;
    total.errors += m.errors;
    total.latencies_us.extend(m.latencies_us);
    total.elapsed += m.elapsed;
}

pub async fn run(
    api: &Api,
    uncounted: Option<&Api>,
    args: &BenchArgs,
    duration: Duration,
    out: &mut Outcome,
) -> anyhow::Result<Measured> {
    let (reader, post) = set_up(api).await?;
    let m = match uncounted {
        None => measure(api, &reader, args.clients, duration).await,
        Some(off) => {
            let (off_reader, _) = set_up(off).await?;
            let quarter = (duration / 4).max(Duration::from_secs(1));
            let mut on = Measured { ok: 0, errors: 0, latencies_us: vec![], elapsed: Duration::ZERO };
            let mut offm = Measured { ok: 0, errors: 0, latencies_us: vec![], elapsed: Duration::ZERO };
            for _ in 0..2 {
                add(&mut on, measure(api, &reader, args.clients, quarter).await);
                add(&mut offm, measure(off, &off_reader, args.clients, quarter).await);
            }
            on.latencies_us.sort_unstable();
            offm.latencies_us.sort_unstable();
            out.set("uncounted_per_s", json!(offm.per_s().round()));
            out.set("uncounted_p99_ms", json!(offm.pct(0.99)));
            let cost = (1.0 - on.per_s() / offm.per_s().max(1e-9)) * 100.0;
            out.set("counting_cost_pct", json!((cost * 10.0).round() / 10.0));
            on
        }
    };
    let page = api.get("/timeline", Some(&reader)).await?;
    let cards = page["data"].as_array().map(|a| a.iter().filter(|i| i["buy"].is_object()).count()).unwrap_or(0);
    out.set("items_per_page", json!(page["data"].as_array().map(Vec::len).unwrap_or(0)));
    out.set("buy_cards_per_page", json!(cards));
    if cards == 0 {
        out.fail("the timeline carries no buy cards".into());
    }
    // The counter flushes every 500 ms: after a moment, the product post's funnel holds every
    // page served (each page carries it once), so counting really ran.
    if args.target.is_none() {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let f = api.get(&format!("/admin/funnel?post_id={post}"), Some(crate::server::ADMIN)).await?;
        let counted = f["arms"]["buy"]["impressions"].as_i64().unwrap_or(0);
        out.set("impressions_counted", json!(counted));
        if counted < m.ok as i64 {
            out.fail(format!("{counted} impressions counted for {} pages served", m.ok));
        }
    }
    Ok(m)
}
