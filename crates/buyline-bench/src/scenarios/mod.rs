//! The scenarios, one per file. Each sets up through the API, drives load, and reads its
//! correctness counters back through the API (or its own webhook receiver).

pub mod flash_sale;
pub mod hashtag_cart;
pub mod one_tap;
pub mod timeline;
pub mod webhooks;

use crate::api::Api;
use crate::server::ADMIN;
use serde_json::Value;

/// The ledger's trial balance (`GET /admin/ledger/trial_balance`, operator): whether every
/// currency's total is zero, and the balance of each account.
pub async fn trial_balance(api: &Api) -> anyhow::Result<(bool, Vec<(String, i64)>)> {
    let tb = api.get("/admin/ledger/trial_balance", Some(ADMIN)).await?;
    let balanced = tb["totals"].as_object().map(|o| o.values().all(|v| v.as_i64() == Some(0))).unwrap_or(false);
    let lines = tb["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l: &Value| (l["account"].as_str().unwrap_or("").to_string(), l["balance"].as_i64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    Ok((balanced, lines))
}
