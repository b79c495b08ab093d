//! The product page and its generated image, and buying from it: the out-of-feed path
//! (SPEC §2 Buy button). A shopper the rollout admits (Buy arm or holdout) gets a Buy
//! button here; a holdout shopper who followed a post's plain link arrives with
//! `?via={post_id}`, which counts as the holdout's open and attributes the purchase to that
//! post.

use super::view::{price_range, variants, VariantView};
use super::{error_page, PageCtx};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use buyline_core::model::{Account, Merchant, Product};
use buyline_core::rollout::Arm;
use buyline_core::types::Money;
use serde::Deserialize;

#[derive(Deserialize, Default)]
pub struct Via {
    /// The post whose link led here.
    via: Option<String>,
}

/// Whether the viewer may buy: what the checkout will say too.
pub enum BuyState {
    /// Signed out: sign in to buy.
    SignIn,
    /// Admitted (Buy arm or holdout): the Buy button, with the post to attribute to ("" none).
    Buy(String),
    /// Excluded by the rollout (market, share, merchant, kill switch).
    NotAvailable,
}

#[derive(Template)]
#[template(path = "product.html")]
pub struct ProductPage<'a> {
    pub ctx: &'a PageCtx,
    pub product: Product,
    pub merchant: Merchant,
    pub price: String,
    pub variants: Vec<VariantView>,
    pub rates: Vec<(String, String, String)>,
    pub available: bool,
    pub buy: BuyState,
}

impl ProductPage<'_> {
    /// The Buy button's target.
    pub fn buy_href(&self) -> String {
        match &self.buy {
            BuyState::Buy(via) if !via.is_empty() => format!("/p/{}/buy?via={via}", self.product.id),
            _ => format!("/p/{}/buy", self.product.id),
        }
    }
}

/// The viewer's arm for this product, and the post a `via` names if it carries the product.
/// A holdout shopper arriving by a post's link is that post's holdout open.
async fn buy_state(st: &AppState, viewer: Option<&Account>, product: &Product, via: Option<&str>) -> BuyState {
    let Some(viewer) = viewer else { return BuyState::SignIn };
    let arm = match st.services.buy_button_flag().await {
        Ok(flag) => flag.arm(&viewer.id, &viewer.country, &product.merchant_id),
        Err(_) => Arm::Excluded,
    };
    if arm == Arm::Excluded {
        return BuyState::NotAvailable;
    }
    let post = match via {
        // Only the control group's purchases come through a post's plain link.
        Some(via) if arm == Arm::Holdout => {
            st.services.count_product_page_open(viewer, product, via).await.ok().flatten().unwrap_or_default()
        }
        _ => String::new(),
    };
    BuyState::Buy(post)
}

pub async fn product_page(
    State(st): State<AppState>,
    ctx: PageCtx,
    Path(id): Path<String>,
    Query(q): Query<Via>,
) -> Response {
    let result = async {
        let product = st.services.product(&id).await?;
        let merchant = st.services.merchant(&product.merchant_id).await?;
        Ok::<_, buyline_core::Error>((product, merchant))
    }
    .await;
    match result {
        Ok((product, merchant)) => {
            let (lo, hi) = product.price_range();
            let rates = product
                .shipping_rates
                .iter()
                .map(|r| (r.name.clone(), Money::new(r.price, product.currency).display(), r.countries.join(", ")))
                .collect();
            let buy = buy_state(&st, ctx.viewer.as_ref(), &product, q.via.as_deref()).await;
            ctx.render(
                StatusCode::OK,
                ProductPage {
                    ctx: &ctx,
                    price: price_range(lo, hi, product.currency),
                    variants: variants(&product),
                    available: product.available(),
                    rates,
                    buy,
                    product,
                    merchant,
                },
            )
        }
        Err(e) => error_page(&ctx, e),
    }
}

/// A generated square image for products without one: initials on a colour derived from
/// the name. Self-contained, so the demo needs nothing from outside.
pub async fn product_image(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(p) = st.services.product(&id).await else {
        return (StatusCode::NOT_FOUND, "no such product").into_response();
    };
    let hue = p.name.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32)) % 360;
    let initials: String = p
        .name
        .split_whitespace()
        .filter_map(|w| w.chars().next())
        .filter(|c| c.is_alphanumeric())
        .take(2)
        .collect::<String>()
        .to_uppercase();
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 400 400\" width=\"400\" height=\"400\">\
         <rect width=\"400\" height=\"400\" fill=\"hsl({hue},55%,55%)\"/>\
         <circle cx=\"320\" cy=\"80\" r=\"120\" fill=\"hsl({},60%,70%)\" opacity=\"0.5\"/>\
         <text x=\"200\" y=\"235\" font-family=\"sans-serif\" font-size=\"120\" font-weight=\"700\" \
         text-anchor=\"middle\" fill=\"#fff\">{}</text></svg>",
        (hue + 40) % 360,
        super::view::escape(&initials)
    );
    ([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "public, max-age=3600")], svg).into_response()
}

async fn load_product(st: &AppState, id: &str) -> Result<(Product, Merchant), buyline_core::Error> {
    let product = st.services.product(id).await?;
    let merchant = st.services.merchant(&product.merchant_id).await?;
    Ok((product, merchant))
}

/// `/p/{id}/buy`: the buy sheet from the product page, for a shopper the rollout admits.
pub async fn product_buy_sheet(
    State(st): State<AppState>,
    ctx: PageCtx,
    Path(id): Path<String>,
    Query(q): Query<Via>,
) -> Response {
    let (product, merchant) = match load_product(&st, &id).await {
        Ok(x) => x,
        Err(e) => return error_page(&ctx, e),
    };
    let post = match buy_state(&st, ctx.viewer.as_ref(), &product, q.via.as_deref()).await {
        BuyState::SignIn => return super::redirect::to_login(&format!("/p/{}", product.id)),
        BuyState::NotAvailable => return error_page(&ctx, not_available()),
        BuyState::Buy(post) => post,
    };
    let viewer = ctx.viewer.clone().expect("signed in");
    let form = super::buy::default_form(&product, &viewer.country);
    let saved = super::buy::saved(&st, &viewer).await;
    let action = format!("/p/{}/buy", product.id);
    super::buy::render(
        &ctx,
        StatusCode::OK,
        (&post, &action),
        product,
        merchant,
        form,
        super::FormErrors::default(),
        saved,
    )
}

/// Confirm on the product page's sheet. The post it came from rides in the form's `via`;
/// the checkout checks that the post carries this product.
pub async fn product_buy(
    State(st): State<AppState>,
    ctx: PageCtx,
    Path(id): Path<String>,
    form: super::CsrfForm,
) -> Response {
    let Some(viewer) = ctx.viewer.clone() else { return super::redirect::see_other("/login") };
    let (product, merchant) = match load_product(&st, &id).await {
        Ok(x) => x,
        Err(e) => return error_page(&ctx, e),
    };
    let via = form.opt("via");
    let post = match buy_state(&st, Some(&viewer), &product, None).await {
        BuyState::Buy(_) => via,
        _ => return error_page(&ctx, not_available()),
    };
    let action = format!("/p/{}/buy", product.id);
    super::buy::place_order_form(st, ctx, viewer, product, merchant, (post, action), form).await
}

fn not_available() -> buyline_core::Error {
    buyline_core::Error::NotAvailable("Buying is not available for your account in this market yet.".into())
}
