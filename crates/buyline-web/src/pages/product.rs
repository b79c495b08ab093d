//! The product page and its generated image.

use super::view::{price_range, variants, VariantView};
use super::{error_page, PageCtx};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use buyline_core::model::{Merchant, Product};
use buyline_core::types::Money;

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
}

pub async fn product_page(State(st): State<AppState>, ctx: PageCtx, Path(id): Path<String>) -> Response {
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
            ctx.render(
                StatusCode::OK,
                ProductPage {
                    ctx: &ctx,
                    price: price_range(lo, hi, product.currency),
                    variants: variants(&product),
                    available: product.available(),
                    rates,
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
