//! `/merchant/funnel/{post_id}`: one post's experiment as the merchant sees it — a chart drawn
//! here as SVG (the arms side by side: reach → opens → buyers, each arm's conversion, the
//! lift and the verdict in words) with the same numbers in a table beside it for screen
//! readers and for anyone who prefers them. Same service as `GET /api/v1/merchant/funnel`.

use super::merchant::principal;
use super::redirect::to_login;
use super::view::escape;
use super::{error_page, PageCtx};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use buyline_core::experiment::verdict;
use buyline_core::service::{ArmFunnel, Funnel};
use buyline_core::Error;
use serde::Deserialize;
use std::fmt::Write;

#[derive(Deserialize, Default)]
pub struct ShopQuery {
    m: Option<String>,
}

/// One row of the text table: metric, buy, holdout.
pub struct Row(pub &'static str, pub String, pub String);

#[derive(Template)]
#[template(path = "funnel.html")]
pub struct FunnelPage<'a> {
    pub ctx: &'a PageCtx,
    /// Where "back" leads (the shop, or the operator's merchant page) and what it says.
    pub back_url: String,
    pub back_label: String,
    pub post_id: String,
    pub product_id: String,
    pub svg: String,
    pub rows: Vec<Row>,
    pub lift: String,
    pub p_value: String,
    pub verdict: String,
    pub updated: String,
}

fn pct(v: Option<f64>) -> String {
    v.map(|c| format!("{:.1} %", c * 100.0)).unwrap_or_else(|| "—".into())
}

fn revenue(a: &ArmFunnel) -> String {
    if a.revenue.is_empty() {
        return "—".into();
    }
    a.revenue.iter().map(|(c, v)| super::view::money_of(*v, c)).collect::<Vec<_>>().join(", ")
}

/// The chart: for each arm three bars (reach, opens, buyers) on one scale, the conversion
/// under each arm, and the verdict as its caption. Only numbers and fixed words go in; the
/// verdict is escaped all the same.
pub fn chart(f: &Funnel, verdict: &str) -> String {
    const W: i64 = 360;
    const H: i64 = 240;
    const BASE: i64 = 180;
    const TOP: i64 = 40;
    let max = [f.arms.buy.reach, f.arms.holdout.reach, f.arms.buy.opens, f.arms.holdout.opens].into_iter().max();
    let max = max.unwrap_or(0).max(1);
    let bar = |v: i64| ((v.max(0) as f64 / max as f64) * (BASE - TOP) as f64).round() as i64;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"funnel-chart\" viewBox=\"0 0 {W} {H}\" width=\"100%\" \
         role=\"img\" aria-labelledby=\"chart-title chart-desc\">\
         <title id=\"chart-title\">Funnel: Buy button against the plain link</title>\
         <desc id=\"chart-desc\">Reach, opens and buyers per arm. {}</desc>",
        escape(verdict)
    );
    let arms = [
        ("Buy button", &f.arms.buy, f.conversion.buy, 20, "#1d6fe0"),
        ("Plain link", &f.arms.holdout, f.conversion.holdout, 190, "#7a7f87"),
    ];
    for (name, a, conv, x0, colour) in arms {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"20\" font-size=\"13\" font-weight=\"700\" text-anchor=\"middle\">{name}</text>",
            x0 + 75
        );
        for (i, (label, v)) in [("reach", a.reach), ("opens", a.opens), ("buyers", a.buyers)].into_iter().enumerate() {
            let x = x0 + i as i64 * 52;
            let h = bar(v);
            let opacity = [1.0, 0.75, 0.5][i];
            let _ = write!(
                s,
                "<rect x=\"{x}\" y=\"{}\" width=\"44\" height=\"{h}\" fill=\"{colour}\" fill-opacity=\"{opacity}\"/>\
                 <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{v}</text>\
                 <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{label}</text>",
                BASE - h,
                x + 22,
                BASE - h - 4,
                x + 22,
                BASE + 14
            );
        }
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">conversion {}</text>",
            x0 + 75,
            BASE + 34,
            escape(&pct(conv))
        );
    }
    let lift = f.lift.map(|l| format!("lift {:+.0} %", l * 100.0)).unwrap_or_else(|| "lift —".into());
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}</text></svg>",
        W / 2,
        H - 4,
        escape(&lift)
    );
    s
}

pub async fn funnel_page(
    State(st): State<AppState>,
    ctx: PageCtx,
    Path(post_id): Path<String>,
    Query(q): Query<ShopQuery>,
) -> Response {
    let who = match principal(&st, &ctx, q.m.as_deref()).await {
        Ok(Some(who)) => who,
        Ok(None) if ctx.viewer.is_none() => return to_login(&format!("/merchant/funnel/{post_id}")),
        Ok(None) => return error_page(&ctx, Error::NotFound("post")),
        Err(e) => return error_page(&ctx, e),
    };
    let back_url = format!("/merchant?m={}", who.merchant().map(|m| m.id.clone()).unwrap_or_default());
    render(&st, &ctx, &who, &post_id, back_url, "← Your shop").await
}

/// One post's funnel page for whoever may see it (its merchant, or the operator).
pub async fn render(
    st: &AppState,
    ctx: &PageCtx,
    who: &buyline_core::Principal,
    post_id: &str,
    back_url: String,
    back_label: &str,
) -> Response {
    let f = match st.services.funnel(who, Some(post_id)).await {
        Ok(f) => f,
        Err(e) => return error_page(ctx, e),
    };
    let c = f.comparison();
    let words = verdict(&c);
    let (b, h) = (&f.arms.buy, &f.arms.holdout);
    let n = |v: i64| v.to_string();
    let rows = vec![
        Row("Impressions", n(b.impressions), n(h.impressions)),
        Row("Shoppers reached", n(b.reach), n(h.reach)),
        Row("Opened (sheet or product page)", n(b.opens), n(h.opens)),
        Row("Orders", n(b.orders), n(h.orders)),
        Row("Buyers", n(b.buyers), n(h.buyers)),
        Row("Revenue", revenue(b), revenue(h)),
        Row("Conversion (buyers ÷ reach)", pct(f.conversion.buy), pct(f.conversion.holdout)),
    ];
    ctx.render(
        StatusCode::OK,
        FunnelPage {
            ctx,
            back_url,
            back_label: back_label.to_string(),
            svg: chart(&f, &words),
            rows,
            lift: f.lift.map(|l| format!("{:+.1} %", l * 100.0)).unwrap_or_else(|| "—".into()),
            p_value: f.p_value.map(|p| format!("{p:.4}")).unwrap_or_else(|| "—".into()),
            verdict: words,
            updated: buyline_core::types::rfc3339(f.updated_at).get(..19).unwrap_or("").replace('T', " "),
            post_id: f.post_id,
            product_id: f.product_id,
        },
    )
}
