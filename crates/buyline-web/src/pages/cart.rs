//! Hashtag carts in the browser: `/connect/{handle}` (consent), `/cart`, and the checkout
//! sheet of an open checkout (`/checkouts/{id}`) that a cart opens. Linked merchants are
//! listed and revoked in settings.

use super::buy::{form_field, preselect, saved, sheet_choice, Saved};
use super::redirect::{is_local_path, see_other, see_other_processor, to_login};
use super::{error_page, CsrfForm, FormErrors, PageCtx};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use buyline_core::cart::Cart;
use buyline_core::model::Merchant;
use buyline_core::order::{Checkout, OrderStatus};
use buyline_core::types::Money;
use buyline_core::Error;
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Template)]
#[template(path = "connect.html")]
pub struct ConnectPage<'a> {
    pub ctx: &'a PageCtx,
    pub merchant: Merchant,
    pub linked: bool,
    /// Country → hashtag, for the explanation.
    pub tags: Vec<(String, String)>,
}

#[derive(Deserialize)]
pub struct ConnectQuery {
    pub next: Option<String>,
}

pub async fn connect_page(State(st): State<AppState>, ctx: PageCtx, Path(handle): Path<String>) -> Response {
    let Some(who) = ctx.principal() else {
        return to_login(&format!("/connect/{handle}"));
    };
    let merchant = match st.services.merchant_by_handle(&handle).await {
        Ok(m) => m,
        Err(e) => return error_page(&ctx, e),
    };
    let linked = match st.services.merchant_links(&who).await {
        Ok(links) => links.iter().any(|l| l.merchant_id == merchant.id),
        Err(e) => return error_page(&ctx, e),
    };
    let tags = merchant.cart_hashtags.iter().map(|(c, t)| (c.clone(), t.clone())).collect();
    ctx.render(StatusCode::OK, ConnectPage { ctx: &ctx, merchant, linked, tags })
}

pub async fn connect(
    State(st): State<AppState>,
    ctx: PageCtx,
    Path(handle): Path<String>,
    Query(q): Query<ConnectQuery>,
    form: CsrfForm,
) -> Response {
    let Some(who) = ctx.principal() else { return see_other("/login") };
    let merchant = match st.services.merchant_by_handle(&handle).await {
        Ok(m) => m,
        Err(e) => return error_page(&ctx, e),
    };
    let result = if form.get("action") == "unlink" {
        st.services.unlink_merchant(&who, &merchant.id).await
    } else {
        st.services.link_merchant(&who, &merchant.id).await.map(|_| ())
    };
    match result {
        // Only a local path: never an open redirect.
        Ok(()) => match q.next.filter(|n| is_local_path(n)) {
            Some(next) => see_other(&next),
            None => see_other(&format!("/connect/{}", merchant.handle)),
        },
        Err(e) => error_page(&ctx, e),
    }
}

pub async fn unlink_from_settings(
    State(st): State<AppState>,
    ctx: PageCtx,
    Path(id): Path<String>,
    _f: CsrfForm,
) -> Response {
    let Some(who) = ctx.principal() else { return see_other("/login") };
    match st.services.unlink_merchant(&who, &id).await {
        Ok(()) | Err(Error::NotFound(_)) => see_other("/settings#links-h"),
        Err(e) => error_page(&ctx, e),
    }
}

pub struct CartView {
    pub cart: Cart,
    /// (item id, name, options, quantity, line total, available)
    pub items: Vec<(String, String, String, i64, String, bool)>,
    pub subtotal: String,
}

#[derive(Template)]
#[template(path = "cart.html")]
pub struct CartPage<'a> {
    pub ctx: &'a PageCtx,
    pub carts: Vec<CartView>,
}

pub async fn cart_page(State(st): State<AppState>, ctx: PageCtx) -> Response {
    let Some(who) = ctx.principal() else { return to_login("/cart") };
    let carts = match st.services.carts(&who).await {
        Ok(c) => c,
        Err(e) => return error_page(&ctx, e),
    };
    let carts = carts
        .into_iter()
        .map(|cart| {
            let m = |a| Money::new(a, cart.currency).display();
            CartView {
                items: cart
                    .items
                    .iter()
                    .map(|i| {
                        let opts = i.options.values().cloned().collect::<Vec<_>>().join(" / ");
                        (i.id.clone(), i.name.clone(), opts, i.quantity, m(i.unit_price * i.quantity), i.available)
                    })
                    .collect(),
                subtotal: m(cart.subtotal),
                cart,
            }
        })
        .collect();
    ctx.render(StatusCode::OK, CartPage { ctx: &ctx, carts })
}

pub async fn remove_item(
    State(st): State<AppState>,
    ctx: PageCtx,
    Path((merchant_id, item_id)): Path<(String, String)>,
    _f: CsrfForm,
) -> Response {
    let Some(who) = ctx.principal() else { return see_other("/login") };
    match st.services.remove_cart_item(&who, &merchant_id, &item_id).await {
        Ok(()) | Err(Error::NotFound(_)) => see_other("/cart"),
        Err(e) => error_page(&ctx, e),
    }
}

pub async fn checkout_cart(
    State(st): State<AppState>,
    ctx: PageCtx,
    Path(merchant_id): Path<String>,
    _f: CsrfForm,
) -> Response {
    let Some(who) = ctx.principal() else { return see_other("/login") };
    match st.services.checkout_cart(&who, &merchant_id).await {
        Ok(c) => see_other(&format!("/checkouts/{}", c.id)),
        Err(e) => error_page(&ctx, e),
    }
}

#[derive(Template)]
#[template(path = "checkout.html")]
pub struct CheckoutPage<'a> {
    pub ctx: &'a PageCtx,
    pub checkout: Checkout,
    pub merchant: Merchant,
    /// (name, options, quantity, line total)
    pub lines: Vec<(String, String, i64, String)>,
    pub physical: bool,
    pub rates: Vec<(String, String, String, bool)>,
    pub form: HashMap<String, String>,
    pub errors: FormErrors,
    pub subtotal: String,
    pub shipping: String,
    pub tax: String,
    pub total: String,
    pub data_json: String,
    pub cards: Vec<(String, String)>,
    pub addresses: Vec<(String, String)>,
}

impl CheckoutPage<'_> {
    pub fn v(&self, k: &str) -> &str {
        self.form.get(k).map(String::as_str).unwrap_or("")
    }
}

#[allow(clippy::too_many_arguments)]
fn render_sheet(
    ctx: &PageCtx,
    status: StatusCode,
    checkout: Checkout,
    merchant: Merchant,
    mut form: HashMap<String, String>,
    errors: FormErrors,
    saved: Saved,
) -> Response {
    preselect(&mut form, &saved);
    let currency = checkout.totals.currency;
    let m = |a| Money::new(a, currency).display();
    if !form.contains_key("shipping_rate_id") {
        if let Some(first) = checkout.shipping_options.first() {
            form.insert("shipping_rate_id".into(), first.id.clone());
        }
    }
    if !form.contains_key("country") {
        form.insert("country".into(), ctx.viewer.as_ref().map(|v| v.country.clone()).unwrap_or_default());
    }
    let rates = checkout
        .shipping_options
        .iter()
        .map(|r| {
            let checked = form.get("shipping_rate_id") == Some(&r.id);
            (r.id.clone(), format!("{} — {}", r.name, m(r.price)), String::new(), checked)
        })
        .collect();
    let lines = checkout
        .lines
        .iter()
        .map(|l| {
            let opts = l.options.values().cloned().collect::<Vec<_>>().join(" / ");
            (l.name.clone(), opts, l.quantity, m(l.unit_price * l.quantity))
        })
        .collect();
    // The buy sheet's script keeps totals current: one "variant" priced at the subtotal.
    let data = serde_json::json!({
        "currency": currency.code(),
        "variants": [{"id": "cart", "options": {}, "price": checkout.totals.subtotal, "available": true}],
        "rates": checkout.shipping_options.iter().map(|r| serde_json::json!({"id": r.id, "price": r.price})).collect::<Vec<_>>(),
        "tax": merchant.tax_rates,
        "donation": null,
    });
    let t = &checkout.totals;
    ctx.render(
        status,
        CheckoutPage {
            ctx,
            physical: checkout.requires_shipping,
            rates,
            lines,
            subtotal: m(t.subtotal),
            shipping: m(t.shipping),
            tax: m(t.tax),
            total: m(t.total),
            data_json: data.to_string().replace('<', "\\u003c"),
            cards: saved.cards,
            addresses: saved.addresses,
            checkout,
            merchant,
            form,
            errors,
        },
    )
}

async fn load_checkout(st: &AppState, who: &buyline_core::Principal, id: &str) -> Result<(Checkout, Merchant), Error> {
    let c = st.services.checkout(who, id).await?;
    let m = st.services.merchant(&c.merchant_id).await?;
    Ok((c, m))
}

pub async fn checkout_sheet(State(st): State<AppState>, ctx: PageCtx, Path(id): Path<String>) -> Response {
    let (Some(who), Some(viewer)) = (ctx.principal(), ctx.viewer.clone()) else {
        return to_login(&format!("/checkouts/{id}"));
    };
    let (checkout, merchant) = match load_checkout(&st, &who, &id).await {
        Ok(x) => x,
        Err(e) => return error_page(&ctx, e),
    };
    if let Some(order) = &checkout.order_id {
        return see_other(&format!("/orders/{order}"));
    }
    let saved = saved(&st, &viewer).await;
    render_sheet(&ctx, StatusCode::OK, checkout, merchant, HashMap::new(), FormErrors::default(), saved)
}

/// Completes the open checkout. Completing it twice (a double tap) lands on the same order:
/// the checkout itself is the idempotency key.
pub async fn complete(State(st): State<AppState>, ctx: PageCtx, Path(id): Path<String>, form: CsrfForm) -> Response {
    let (Some(who), Some(viewer)) = (ctx.principal(), ctx.viewer.clone()) else {
        return see_other("/login");
    };
    let (checkout, merchant) = match load_checkout(&st, &who, &id).await {
        Ok(x) => x,
        Err(e) => return error_page(&ctx, e),
    };
    let input = sheet_choice(&form, checkout.requires_shipping);
    let keep = form.kept();
    let mut errors = FormErrors::default();
    match st.services.complete_checkout(&who, &id, input).await {
        Ok(order) => {
            let to = match (&order.status, &order.challenge_url) {
                (OrderStatus::RequiresAction, Some(url)) => url.clone(),
                _ => format!("/orders/{}?placed=1", order.id),
            };
            return see_other_processor(&to);
        }
        Err(Error::Validation(list)) => {
            for fe in list {
                errors.0.entry(form_field(&fe.field)).or_insert(fe.message);
            }
        }
        Err(Error::Payment { message, .. }) => {
            errors.0.insert("card_number".into(), format!("{message} Try another card."));
        }
        Err(Error::OutOfStock(m)) => {
            errors.0.insert("lines".into(), format!("{m}. Remove it from your cart and try again."));
        }
        Err(e) => return error_page(&ctx, e),
    }
    let saved = saved(&st, &viewer).await;
    render_sheet(&ctx, StatusCode::UNPROCESSABLE_ENTITY, checkout, merchant, keep, errors, saved)
}
