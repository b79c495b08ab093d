//! `one-tap`: `POST /orders` with a saved card and address, `--clients` shoppers at once.

use crate::api::{one_tap, shop, wallets, Api};
use crate::args::BenchArgs;
use crate::load::{load, Measured};
use crate::run::Outcome;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub async fn run(api: &Api, args: &BenchArgs, duration: Duration, out: &mut Outcome) -> anyhow::Result<Measured> {
    let shop = shop(api, "benchshop", json!({"type": "infinite"})).await?;
    let ws = Arc::new(wallets(api, args.clients, "tap").await?);
    let (api2, variant, post) = (api.clone(), shop.variant.clone(), shop.post.clone());
    let m = load(args.clients, duration, move |c, _| {
        let (api, ws, variant, post) = (api2.clone(), ws.clone(), variant.clone(), post.clone());
        async move { one_tap(&api, &ws[c % ws.len()], &variant, Some(&post)).await.is_some() }
    })
    .await;
    let (balanced, _) = super::trial_balance(api).await?;
    out.set("orders", json!(m.ok));
    out.set("ledger_balanced", json!(balanced));
    if !balanced {
        out.fail("the ledger does not balance".into());
    }
    Ok(m)
}
