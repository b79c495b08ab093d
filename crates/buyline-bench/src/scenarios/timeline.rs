//! `timeline`: `GET /timeline` for a shopper following 8 shops.

use crate::api::{shop, signup, Api};
use crate::args::BenchArgs;
use crate::load::{load, Measured};
use crate::run::Outcome;
use serde_json::json;
use std::time::Duration;

pub async fn run(api: &Api, args: &BenchArgs, duration: Duration, out: &mut Outcome) -> anyhow::Result<Measured> {
    let reader = signup(api, "reader").await?;
    for i in 0..8 {
        let s = shop(api, &format!("feed{i}"), json!({"type": "finite", "quantity": 100})).await?;
        for j in 0..5 {
            api.post("/posts", Some(&s.key), json!({"text": format!("Post {j} from shop {i} #bench")})).await?;
        }
        api.post(&format!("/accounts/feed{i}/follow"), Some(&reader), json!({})).await?;
    }
    let (api2, reader2) = (api.clone(), reader.clone());
    let m = load(args.clients, duration, move |_, _| {
        let (api, t) = (api2.clone(), reader2.clone());
        async move { matches!(api.call(reqwest::Method::GET, "/timeline", Some(&t), None).await, Ok((200, _))) }
    })
    .await;
    let page = api.get("/timeline", Some(&reader)).await?;
    let cards = page["data"].as_array().map(|a| a.iter().filter(|i| i["buy"].is_object()).count()).unwrap_or(0);
    out.set("items_per_page", json!(page["data"].as_array().map(Vec::len).unwrap_or(0)));
    out.set("buy_cards_per_page", json!(cards));
    if cards == 0 {
        out.fail("the timeline carries no buy cards".into());
    }
    Ok(m)
}
