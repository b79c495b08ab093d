//! The buy sheet: `/buy/{post_id}` as a page without JavaScript, and the same form in a
//! dialog over the timeline with it. Also the order pages and the test processor's 3-D
//! Secure challenge page.
//!
//! A double-tapped Confirm makes one order: each rendering of the sheet carries a one-time
//! `attempt` key, recorded through the same idempotency store the API uses; a second
//! submission with that key waits for the first and lands on the same order.

use super::redirect::{see_other, see_other_processor, to_login};
use super::view::{escape, price_range};
use super::{error_page, CsrfForm, FormErrors, PageCtx};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use buyline_core::model::{Merchant, Product};
use buyline_core::order::{Order, OrderStatus};
use buyline_core::payment::CardInput;
use buyline_core::rollout::Arm;
use buyline_core::service::{CompleteInput, Idempotency, LineInput, OrderInput, PaymentInput};
use buyline_core::types::{Money, ProductKind};
use buyline_core::{Error, Principal};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

pub struct OptionView {
    pub name: String,
    pub values: Vec<(String, bool, bool)>,
}

#[derive(Template)]
#[template(path = "buy.html")]
pub struct BuyPage<'a> {
    pub ctx: &'a PageCtx,
    /// The post the purchase is attributed to ("" for none).
    pub post_id: String,
    /// Where the form posts: `/buy/{post_id}` from the feed, `/p/{id}/buy` from the product page.
    pub action: String,
    pub product: Product,
    pub merchant: Merchant,
    pub options: Vec<OptionView>,
    pub price: String,
    pub physical: bool,
    pub donation: bool,
    pub rates: Vec<(String, String, String, bool)>,
    pub form: HashMap<String, String>,
    pub errors: FormErrors,
    pub attempt: String,
    pub subtotal: String,
    pub shipping: String,
    pub tax: String,
    pub total: String,
    pub data_json: String,
    /// Saved cards and addresses: (id, label).
    pub cards: Vec<(String, String)>,
    pub addresses: Vec<(String, String)>,
}

impl BuyPage<'_> {
    pub fn v(&self, k: &str) -> &str {
        self.form.get(k).map(String::as_str).unwrap_or("")
    }
}

async fn load(st: &AppState, post_id: &str) -> Result<(Product, Merchant), Error> {
    let (item, _) = st.services.post_thread(post_id, None).await?;
    let pid = item.post.product_id.clone().ok_or(Error::NotFound("product on this post"))?;
    let product = st.services.product(&pid).await?;
    let merchant = st.services.merchant(&product.merchant_id).await?;
    Ok((product, merchant))
}

pub(super) fn default_form(p: &Product, viewer_country: &str) -> HashMap<String, String> {
    let mut f = HashMap::new();
    if let Some(v) = p.variants.iter().find(|v| v.available) {
        for (k, val) in &v.options {
            f.insert(format!("opt_{k}"), val.clone());
        }
    }
    f.insert("quantity".into(), "1".into());
    f.insert("country".into(), viewer_country.to_string());
    if let Some(r) = p.shipping_rates.iter().find(|r| r.countries.iter().any(|c| c == viewer_country)) {
        f.insert("shipping_rate_id".into(), r.id.clone());
    }
    if let Some(d) = &p.donation {
        f.insert("amount".into(), format!("{}.{:02}", d.min / 100, d.min % 100));
    }
    f
}

pub(super) fn parse_amount(s: &str) -> Option<i64> {
    let s = s.trim().trim_start_matches(['$', '£']).replace(',', "");
    let (whole, frac) = s.split_once('.').unwrap_or((&s, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let frac = format!("{frac:0<2}");
    Some(whole.parse::<i64>().ok()? * 100 + frac.parse::<i64>().ok()?)
}

/// The viewer's saved cards and addresses as choices for the sheet.
pub struct Saved {
    pub(super) cards: Vec<(String, String)>,
    pub(super) addresses: Vec<(String, String)>,
}

pub(super) async fn saved(st: &AppState, viewer: &buyline_core::model::Account) -> Saved {
    let who = Principal::Shopper(viewer.clone());
    let cards = st
        .services
        .payment_methods(&who)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|pm| (pm.id, format!("{} •••• {} (expires {}/{})", pm.brand.label(), pm.last4, pm.exp_month, pm.exp_year)))
        .collect();
    let addresses = st
        .services
        .addresses(&who, "show the buy sheet")
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|a| {
            (
                a.id,
                format!(
                    "{}, {}, {} {} {}",
                    a.address.name, a.address.line1, a.address.city, a.address.postal_code, a.address.country
                ),
            )
        })
        .collect();
    Saved { cards, addresses }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn render(
    ctx: &PageCtx,
    status: StatusCode,
    (post_id, action): (&str, &str),
    product: Product,
    merchant: Merchant,
    mut form: HashMap<String, String>,
    errors: FormErrors,
    saved: Saved,
) -> Response {
    preselect(&mut form, &saved);
    let options = product
        .options
        .iter()
        .map(|o| OptionView {
            name: o.name.clone(),
            values: o
                .values
                .iter()
                .map(|val| {
                    let any = product.variants.iter().any(|v| v.available && v.options.get(&o.name) == Some(val));
                    let checked = form.get(&format!("opt_{}", o.name)) == Some(val);
                    (val.clone(), any, checked)
                })
                .collect(),
        })
        .collect();
    let country = form.get("country").cloned().unwrap_or_default().to_uppercase();
    let rates = product
        .shipping_rates
        .iter()
        .map(|r| {
            (
                r.id.clone(),
                format!("{} — {}", r.name, Money::new(r.price, product.currency).display()),
                r.countries.join(", "),
                form.get("shipping_rate_id") == Some(&r.id),
            )
        })
        .collect();
    // Totals for what the form holds now; the script keeps them current as choices change.
    let chosen = product
        .variants
        .iter()
        .find(|v| product.options.iter().all(|o| form.get(&format!("opt_{}", o.name)) == v.options.get(&o.name)));
    let qty: i64 = form.get("quantity").and_then(|q| q.parse().ok()).unwrap_or(1).clamp(1, 99);
    let unit = match &product.donation {
        Some(d) => form.get("amount").and_then(|a| parse_amount(a)).unwrap_or(d.min),
        None => chosen.map(|v| v.price).unwrap_or(0),
    };
    let ship = product
        .shipping_rates
        .iter()
        .find(|r| form.get("shipping_rate_id") == Some(&r.id))
        .map(|r| r.price)
        .unwrap_or(0);
    let totals = buyline_core::checkout::Totals::compute(
        unit * qty,
        ship,
        merchant.tax_rates.get(&country).copied().unwrap_or(0),
        product.currency,
    );
    let m = |a| Money::new(a, product.currency).display();
    let data = serde_json::json!({
        "currency": product.currency.code(),
        "variants": product.variants.iter().map(|v| serde_json::json!({"id": v.id, "options": v.options, "price": v.price, "available": v.available})).collect::<Vec<_>>(),
        "rates": product.shipping_rates.iter().map(|r| serde_json::json!({"id": r.id, "price": r.price, "countries": r.countries})).collect::<Vec<_>>(),
        "tax": merchant.tax_rates,
        "donation": product.donation,
    });
    let (lo, hi) = product.price_range();
    ctx.render(
        status,
        BuyPage {
            ctx,
            post_id: post_id.to_string(),
            action: action.to_string(),
            options,
            price: price_range(lo, hi, product.currency),
            physical: product.kind == ProductKind::Physical,
            donation: product.kind == ProductKind::Donation,
            rates,
            attempt: buyline_core::ids::new_secret("tap"),
            subtotal: m(totals.subtotal),
            shipping: m(totals.shipping),
            tax: m(totals.tax),
            total: m(totals.total),
            // Embedded in a <script type="application/json">: escape what could close it.
            data_json: data.to_string().replace('<', "\\u003c"),
            cards: saved.cards,
            addresses: saved.addresses,
            product,
            merchant,
            form,
            errors,
        },
    )
}

/// Whether this viewer may buy from this merchant (the rollout rule the API applies).
async fn arm(st: &AppState, viewer: &buyline_core::model::Account, merchant: &Merchant) -> Result<Arm, Error> {
    Ok(st.services.buy_button_flag().await?.arm(&viewer.id, &viewer.country, &merchant.id))
}

pub async fn buy_sheet(State(st): State<AppState>, ctx: PageCtx, Path(post_id): Path<String>) -> Response {
    let Some(viewer) = ctx.viewer.clone() else {
        return to_login(&format!("/buy/{post_id}"));
    };
    let (product, merchant) = match load(&st, &post_id).await {
        Ok(x) => x,
        Err(e) => return error_page(&ctx, e),
    };
    match arm(&st, &viewer, &merchant).await {
        // funnel (issue 15): the sheet opened, in the Buy arm.
        Ok(Arm::Buy) => st.services.count_open(&post_id, Arm::Buy, &viewer.id),
        // The control group buys the out-of-feed way: the product page, from this post.
        Ok(Arm::Holdout) => return see_other(&format!("/p/{}?via={}", product.id, post_id)),
        Ok(_) => {
            return error_page(
                &ctx,
                Error::NotAvailable(format!(
                    "Buying in the feed is not available in your market yet. See {} on its product page.",
                    product.name
                )),
            )
        }
        Err(e) => return error_page(&ctx, e),
    }
    let form = default_form(&product, &viewer.country);
    let saved = saved(&st, &viewer).await;
    let action = format!("/buy/{post_id}");
    render(&ctx, StatusCode::OK, (&post_id, &action), product, merchant, form, FormErrors::default(), saved)
}

/// A returning shopper gets their saved card and address preselected: Confirm is one tap.
pub(super) fn preselect(form: &mut HashMap<String, String>, saved: &Saved) {
    if !form.contains_key("payment_choice") {
        form.insert("payment_choice".into(), saved.cards.first().map(|c| c.0.clone()).unwrap_or_else(|| "new".into()));
    }
    if !form.contains_key("address_choice") {
        form.insert(
            "address_choice".into(),
            saved.addresses.first().map(|a| a.0.clone()).unwrap_or_else(|| "new".into()),
        );
    }
}

/// The sheet's shipping and payment fields, as the checkout services take them.
pub(super) fn sheet_choice(form: &CsrfForm, ships: bool) -> CompleteInput {
    let address_id = form.opt("address_choice").filter(|c| c.starts_with("addr_"));
    let saved_card = form.opt("payment_choice").filter(|c| c.starts_with("pm_"));
    CompleteInput {
        shipping_address: (ships && address_id.is_none()).then(|| form.address()),
        address_id,
        shipping_rate_id: form.opt("shipping_rate_id"),
        payment: Some(match saved_card {
            Some(pm) => PaymentInput { card: None, save: false, payment_method_id: Some(pm) },
            None => PaymentInput {
                card: Some(CardInput {
                    number: form.get("card_number"),
                    exp_month: form.get("card_exp_month").trim().parse().unwrap_or(0),
                    exp_year: form.get("card_exp_year").trim().parse().unwrap_or(0),
                    cvc: form.get("card_cvc"),
                    name: form.opt("card_name"),
                }),
                save: form.opt("save").is_some(),
                payment_method_id: None,
            },
        }),
    }
}

/// Field names of the form, for the field names services report.
pub(super) fn form_field(service_field: &str) -> String {
    match service_field {
        f if f.starts_with("shipping_address.") => f["shipping_address.".len()..].to_string(),
        "shipping_address" => "name".into(),
        f if f.starts_with("payment.card.") => format!("card_{}", &f["payment.card.".len()..]),
        "payment.card" | "payment" => "card_number".into(),
        "payment.payment_method_id" => "payment_choice".into(),
        "address_id" => "address_choice".into(),
        f if f.starts_with("lines[0].") => f["lines[0].".len()..].to_string(),
        "shipping_rate_id" => "shipping_rate_id".into(),
        f => f.to_string(),
    }
}

pub async fn place(State(st): State<AppState>, ctx: PageCtx, Path(post_id): Path<String>, form: CsrfForm) -> Response {
    let Some(viewer) = ctx.viewer.clone() else { return see_other("/login") };
    let (product, merchant) = match load(&st, &post_id).await {
        Ok(x) => x,
        Err(e) => return error_page(&ctx, e),
    };
    if let Ok(Arm::Holdout) = arm(&st, &viewer, &merchant).await {
        return see_other(&format!("/p/{}?via={}", product.id, post_id));
    }
    let action = format!("/buy/{post_id}");
    place_order_form(st, ctx, viewer, product, merchant, (Some(post_id), action), form).await
}

/// Places the sheet's order: from the feed (`/buy/{post_id}`) or from the product page
/// (`/p/{id}/buy`, with the post whose link led there, if any).
pub(super) async fn place_order_form(
    st: AppState,
    ctx: PageCtx,
    viewer: buyline_core::model::Account,
    product: Product,
    merchant: Merchant,
    (post_id, action): (Option<String>, String),
    form: CsrfForm,
) -> Response {
    // One order per rendering of the sheet, however often Confirm is pressed.
    let scope = format!("page:{}", viewer.id);
    let attempt = form.get("attempt");
    if !attempt.is_empty() {
        match st.services.idempotency_begin(&scope, Some(&viewer.id), &attempt, "buy").await {
            Ok(Idempotency::Replay { body, .. }) => return see_other_processor(&body),
            Ok(Idempotency::InProgress) => {
                for _ in 0..100 {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    if let Ok(Idempotency::Replay { body, .. }) =
                        st.services.idempotency_begin(&scope, Some(&viewer.id), &attempt, "buy").await
                    {
                        return see_other_processor(&body);
                    }
                }
                return error_page(
                    &ctx,
                    Error::Conflict {
                        message: "Your order is still being placed; check your orders in a moment.".into(),
                        errors: vec![],
                    },
                );
            }
            _ => {}
        }
    }
    let keep = form.kept();
    let fail = |errors: FormErrors| {
        let (st, ctx, product, merchant, keep) = (&st, &ctx, product.clone(), merchant.clone(), keep.clone());
        let scope = scope.clone();
        let attempt = attempt.clone();
        let post_id = post_id.clone().unwrap_or_default();
        let action = action.clone();
        let viewer = viewer.clone();
        async move {
            let _ = st.services.idempotency_abandon(&scope, &attempt).await;
            let saved = saved(st, &viewer).await;
            render(ctx, StatusCode::UNPROCESSABLE_ENTITY, (&post_id, &action), product, merchant, keep, errors, saved)
        }
    };

    let mut errors = FormErrors::default();
    let chosen: BTreeMap<String, String> =
        product.options.iter().map(|o| (o.name.clone(), form.get(&format!("opt_{}", o.name)))).collect();
    let variant = product.variants.iter().find(|v| v.options == chosen);
    let variant = match variant {
        Some(v) if v.available => v,
        Some(_) => {
            errors.0.insert("options".into(), "That combination is sold out; pick another.".into());
            return fail(errors).await;
        }
        None => {
            errors.0.insert("options".into(), "Choose one of each option.".into());
            return fail(errors).await;
        }
    };
    let amount = if product.donation.is_some() {
        match parse_amount(&form.get("amount")) {
            Some(a) => Some(a),
            None => {
                errors.0.insert("amount".into(), "Enter an amount such as 25 or 25.00.".into());
                return fail(errors).await;
            }
        }
    } else {
        None
    };
    let quantity = if product.donation.is_some() { 1 } else { form.get("quantity").trim().parse::<i64>().unwrap_or(0) };
    let choice = sheet_choice(&form, product.kind == ProductKind::Physical);
    let input = OrderInput {
        lines: vec![LineInput { variant_id: variant.id.clone(), quantity: Some(quantity), amount }],
        post_id: post_id.clone(),
        shipping_address: choice.shipping_address,
        address_id: choice.address_id,
        shipping_rate_id: choice.shipping_rate_id,
        payment: choice.payment,
    };
    let who = Principal::Shopper(viewer.clone());
    // The order is bound to this rendering's key, so a retry after a crash finds it.
    let bound = (!attempt.is_empty()).then(|| format!("{scope}:{attempt}"));
    match st.services.place_order(&who, input, bound.as_deref()).await {
        Ok(order) => {
            let to = match (&order.status, &order.challenge_url) {
                (OrderStatus::RequiresAction, Some(url)) => url.clone(),
                _ => format!("/orders/{}?placed=1", order.id),
            };
            let _ = st.services.idempotency_finish(&scope, &attempt, 303, "", &to, None).await;
            see_other_processor(&to)
        }
        Err(Error::Validation(list)) => {
            for fe in list {
                errors.0.entry(form_field(&fe.field)).or_insert(fe.message);
            }
            fail(errors).await
        }
        Err(Error::Payment { message, .. }) => {
            errors.0.insert("card_number".into(), format!("{message} Try another card."));
            fail(errors).await
        }
        Err(Error::OutOfStock(m)) => {
            errors.0.insert("options".into(), m);
            fail(errors).await
        }
        Err(e) => {
            let _ = st.services.idempotency_abandon(&scope, &attempt).await;
            error_page(&ctx, e)
        }
    }
}

pub struct OrderView {
    pub order: Order,
    pub brand: String,
    pub status: String,
    pub lines: Vec<(String, String, i64, String)>,
    pub subtotal: String,
    pub shipping: String,
    pub tax: String,
    pub total: String,
    pub created: String,
}

impl OrderView {
    fn of(order: Order) -> Self {
        let m = |a| Money::new(a, order.totals.currency).display();
        OrderView {
            brand: buyline_core::payment::Brand::parse(&order.payment.brand).label().to_string(),
            status: order.status.label().to_string(),
            lines: order
                .lines
                .iter()
                .map(|l| {
                    let opts = l.options.values().cloned().collect::<Vec<_>>().join(" / ");
                    (l.name.clone(), opts, l.quantity, m(l.unit_price * l.quantity))
                })
                .collect(),
            subtotal: m(order.totals.subtotal),
            shipping: m(order.totals.shipping),
            tax: m(order.totals.tax),
            total: m(order.totals.total),
            created: buyline_core::types::rfc3339(order.created_at)[..16].replace('T', " "),
            order,
        }
    }
}

#[derive(Template)]
#[template(path = "order.html")]
pub struct OrderPage<'a> {
    pub ctx: &'a PageCtx,
    pub o: OrderView,
    pub placed: bool,
}

#[derive(Template)]
#[template(path = "orders.html")]
pub struct OrdersPage<'a> {
    pub ctx: &'a PageCtx,
    pub notifications: Vec<(String, String, String)>,
    pub orders: Vec<OrderView>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize)]
pub struct Placed {
    placed: Option<String>,
    cursor: Option<String>,
}

pub async fn order_page(
    State(st): State<AppState>,
    ctx: PageCtx,
    Path(id): Path<String>,
    Query(q): Query<Placed>,
) -> Response {
    let Some(who) = ctx.principal() else { return to_login(&format!("/orders/{id}")) };
    let order = match st.services.order(&who, &id).await {
        Ok(o) if o.status == OrderStatus::RequiresAction => st.services.resume_order(&o.id).await,
        other => other,
    };
    let order = match order {
        Ok(mut o) => st.services.attach_downloads(&mut o).await.map(|()| o),
        e => e,
    };
    match order {
        Ok(o) => ctx.render(StatusCode::OK, OrderPage { ctx: &ctx, o: OrderView::of(o), placed: q.placed.is_some() }),
        Err(e) => error_page(&ctx, e),
    }
}

pub async fn orders_page(State(st): State<AppState>, ctx: PageCtx, Query(q): Query<Placed>) -> Response {
    let Some(who) = ctx.principal() else { return to_login("/orders") };
    let notifications = st.services.notifications(&who).await.unwrap_or_default();
    let notifications =
        notifications.into_iter().take(5).map(|n| (n.text, n.link, super::view::ago(n.created_at))).collect();
    match st.services.orders(&who, q.cursor.as_deref(), None).await {
        Ok(page) => ctx.render(
            StatusCode::OK,
            OrdersPage {
                ctx: &ctx,
                notifications,
                orders: page.data.into_iter().map(OrderView::of).collect(),
                next_cursor: page.next_cursor,
            },
        ),
        Err(e) => error_page(&ctx, e),
    }
}

/// Back from the processor's challenge page: settle the order, then show it. Only the
/// shopper's own order: another's, like an unknown id, is 404 and is not touched.
pub async fn order_return(State(st): State<AppState>, ctx: PageCtx, Path(id): Path<String>) -> Response {
    let Some(who) = ctx.principal() else { return to_login(&format!("/orders/{id}/return")) };
    let order = match st.services.order(&who, &id).await {
        Ok(o) => st.services.resume_order(&o.id).await,
        Err(e) => Err(e),
    };
    match order {
        Ok(o) => see_other(&format!("/orders/{}?placed=1", o.id)),
        Err(e) => error_page(&ctx, e),
    }
}

/// The processor's 3-D Secure page (the built-in test processor's), standing in for the
/// card issuer's.
pub async fn challenge_page(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(challenges) = &st.challenges else { return no_such_payment() };
    match challenges.challenge(&id).await {
        Ok(c) if c.pending => {
            let amount = c.amount.display();
            axum::response::Html(format!(
                "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content='width=device-width, initial-scale=1'>\
                 <title>Test bank · 3-D Secure</title><link rel=stylesheet href=/static/app.css><main>\
                 <h1>Test bank: confirm this payment</h1><p>Approve a payment of <strong>{amount}</strong> with your {} card ending {}?</p>\
                 <p class='muted small'>This is the built-in test processor's 3-D Secure challenge.</p>\
                 <form method=post><button type=submit name=result value=pass>Complete authentication</button> \
                 <button type=submit name=result value=fail class=secondary>Fail authentication</button></form></main></html>",
                escape(&c.brand),
                escape(&c.last4)
            ))
            .into_response()
        }
        Ok(c) => see_other_processor(&c.return_url),
        Err(_) => no_such_payment(),
    }
}

fn no_such_payment() -> Response {
    (StatusCode::NOT_FOUND, "No such payment.").into_response()
}

#[derive(Deserialize)]
pub struct ChallengeResult {
    result: String,
}

pub async fn challenge_submit(
    State(st): State<AppState>,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<ChallengeResult>,
) -> Response {
    let Some(challenges) = &st.challenges else { return no_such_payment() };
    match challenges.answer_challenge(&id, f.result == "pass").await {
        Ok(url) => see_other_processor(&url),
        Err(_) => no_such_payment(),
    }
}

/// The order page's "Get a fresh link": a new download link for that line, then the page.
pub async fn fresh_download(
    State(st): State<AppState>,
    ctx: PageCtx,
    Path((id, line)): Path<(String, usize)>,
    _f: super::CsrfForm,
) -> Response {
    let Some(who) = ctx.principal() else { return to_login(&format!("/orders/{id}")) };
    match st.services.fresh_download(&who, &id, line).await {
        Ok(o) => super::redirect::see_other(&format!("/orders/{}", o.id)),
        Err(e) => error_page(&ctx, e),
    }
}
