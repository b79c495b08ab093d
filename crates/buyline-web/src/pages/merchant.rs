//! `/merchant`: the owner runs their shop — orders with fulfil, cancel and refund; webhook
//! settings with secret rotation; the delivery log with replay.

use super::redirect::{see_other, to_login};
use super::{error_page, CsrfForm, FormErrors, PageCtx};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use buyline_core::model::Merchant;
use buyline_core::order::Delivery;
use buyline_core::service::{FulfillInput, MerchantUpdate, RefundInput};
use buyline_core::types::{Currency, Money};
use buyline_core::{Error, Principal};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

#[derive(Deserialize, Default)]
pub struct MerchantQuery {
    m: Option<String>,
    status: Option<String>,
}

pub struct OrderRow {
    pub id: String,
    pub status: String,
    pub total: String,
    pub items: String,
    pub acknowledged: bool,
    pub created: String,
}

fn money(v: &Value, amount: &str) -> String {
    let cur = Currency::parse(v["totals"]["currency"].as_str().unwrap_or("USD")).unwrap_or(Currency::Usd);
    Money::new(v[amount].as_i64().or_else(|| v["totals"][amount].as_i64()).unwrap_or(0), cur).display()
}

fn row(v: &Value) -> OrderRow {
    OrderRow {
        id: v["id"].as_str().unwrap_or("").into(),
        status: v["status"].as_str().unwrap_or("").into(),
        total: money(v, "total"),
        items: v["lines"]
            .as_array()
            .map(|ls| {
                ls.iter()
                    .map(|l| format!("{} × {}", l["quantity"], l["name"].as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
        acknowledged: v["acknowledged"].as_bool().unwrap_or(false),
        created: v["created_at"].as_str().unwrap_or("").get(..16).unwrap_or("").replace('T', " "),
    }
}

/// A product in the shop's list and the composer's picker.
pub struct ProductRow {
    pub id: String,
    pub name: String,
    pub summary: String,
    pub digital: bool,
    /// A digital product whose file is not uploaded yet (it cannot be posted or sold).
    pub needs_file: bool,
}

impl ProductRow {
    fn of(p: &buyline_core::model::Product) -> ProductRow {
        let n = p.variants.len();
        let stock = if p.variants.iter().any(|v| v.available) { "in stock" } else { "sold out" };
        ProductRow {
            id: p.id.clone(),
            name: p.name.clone(),
            summary: format!("{} · {n} variant{} · {stock}", p.kind.as_str(), if n == 1 { "" } else { "s" }),
            digital: p.kind == buyline_core::types::ProductKind::Digital,
            needs_file: p.kind == buyline_core::types::ProductKind::Digital && p.file.is_none(),
        }
    }
}

#[derive(Template)]
#[template(path = "merchant.html")]
pub struct MerchantPage<'a> {
    pub ctx: &'a PageCtx,
    pub merchant: Merchant,
    pub others: Vec<Merchant>,
    pub orders: Vec<OrderRow>,
    pub status: String,
    pub deliveries: Vec<Delivery>,
    pub new_secret: Option<String>,
    pub webhook_url: String,
    /// (country, hashtag) for each market a shop can open in.
    pub cart_tags: Vec<(String, String)>,
    pub cart_digital: bool,
    /// (country, tax rate in percent) for each market, and the return policy, as shown.
    pub taxes: Vec<(String, String)>,
    pub return_policy: String,
    pub errors: FormErrors,
    /// The shop's products, for the list and the composer's picker.
    pub products: Vec<ProductRow>,
    /// What the composer shows: typed text and the product picked.
    pub compose_text: String,
    pub compose_product: String,
    /// (balance, paid out) per currency, displayed; the newest payouts (amount, date).
    pub money: Vec<(String, String)>,
    pub payouts: Vec<(String, String)>,
    /// Posts with a product, each linking to its funnel: (post id, text).
    pub funnel_posts: Vec<(String, String, super::view::PostView)>,
}

#[derive(Template)]
#[template(path = "merchant_order.html")]
pub struct MerchantOrderPage<'a> {
    pub ctx: &'a PageCtx,
    pub merchant: Merchant,
    pub o: Value,
    pub row: OrderRow,
    pub lines: Vec<(String, String, String, i64, String)>,
    pub address: String,
    pub refunded: String,
    pub left: i64,
    pub errors: FormErrors,
}

pub(super) async fn principal(st: &AppState, ctx: &PageCtx, m: Option<&str>) -> Result<Option<Principal>, Error> {
    match &ctx.viewer {
        Some(v) => st.services.act_as_merchant(v, m).await,
        None => Ok(None),
    }
}

#[allow(clippy::too_many_arguments)]
async fn dashboard(
    st: &AppState,
    ctx: &PageCtx,
    who: Principal,
    status: Option<String>,
    new_secret: Option<String>,
    kept: HashMap<String, String>,
    errors: FormErrors,
) -> Response {
    let result = async {
        let merchant = who.merchant()?.clone();
        let others = match &ctx.viewer {
            Some(v) => st.services.merchants_owned_by(v).await?,
            None => vec![],
        };
        let orders = st.services.merchant_orders(&who, status.as_deref(), None, Some(50)).await?;
        let deliveries = st.services.deliveries(&who, None, Some(20)).await?;
        let money = money_rows(st, &who).await?;
        let products = st.services.merchant_products(&merchant.id).await?;
        let funnel_posts = st.services.funnel_posts(&who, 50).await?;
        Ok::<_, Error>((merchant, others, orders, deliveries, (money, products, funnel_posts)))
    }
    .await;
    match result {
        Ok((merchant, others, orders, deliveries, ((money, payouts), products, funnel_posts))) => {
            let status_code = if errors.0.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
            ctx.render(
                status_code,
                MerchantPage {
                    ctx,
                    webhook_url: kept
                        .get("webhook_url")
                        .cloned()
                        .unwrap_or_else(|| merchant.webhook_url.clone().unwrap_or_default()),
                    cart_tags: ["US", "GB"]
                        .iter()
                        .map(|c| {
                            let typed = kept.get(&format!("tag_{c}")).cloned();
                            (
                                c.to_string(),
                                typed.or_else(|| merchant.cart_hashtags.get(*c).cloned()).unwrap_or_default(),
                            )
                        })
                        .collect(),
                    taxes: ["US", "GB"]
                        .iter()
                        .map(|c| {
                            let typed = kept.get(&format!("tax_{c}")).cloned();
                            let stored = merchant
                                .tax_rates
                                .get(*c)
                                .map(|bps| format!("{}.{:02}", bps / 100, bps % 100))
                                .unwrap_or_default();
                            (c.to_string(), typed.unwrap_or(stored))
                        })
                        .collect(),
                    return_policy: kept.get("return_policy").cloned().unwrap_or_else(|| merchant.return_policy.clone()),
                    cart_digital: if kept.contains_key("cart_form") {
                        kept.contains_key("digital")
                    } else {
                        merchant.cart_kinds.contains(&buyline_core::types::ProductKind::Digital)
                    },
                    merchant,
                    others,
                    orders: orders.data.iter().map(row).collect(),
                    status: status.unwrap_or_default(),
                    deliveries: deliveries.data,
                    new_secret,
                    compose_text: kept.get("text").cloned().unwrap_or_default(),
                    compose_product: kept.get("product_id").cloned().unwrap_or_default(),
                    products: products.iter().map(ProductRow::of).collect(),
                    errors,
                    money,
                    payouts,
                    // Each post as the feed shows it, with its buy card (an archived product's
                    // post keeps no card).
                    funnel_posts: funnel_posts
                        .into_iter()
                        .map(|post| {
                            let buy = post
                                .product_id
                                .as_ref()
                                .and_then(|id| products.iter().find(|p| &p.id == id))
                                .map(|p| p.buy_card());
                            let view = super::view::PostView::item(&buyline_core::model::TimelineItem {
                                post: post.clone().into(),
                                promoted: false,
                                buy,
                                product_url: None,
                                post_json: None,
                            });
                            (post.id, post.text, view)
                        })
                        .collect(),
                },
            )
        }
        Err(e) => error_page(ctx, e),
    }
}

type Rows = Vec<(String, String)>;

/// The balance per currency and the newest payouts, as the page shows them.
async fn money_rows(st: &AppState, who: &Principal) -> Result<(Rows, Rows), Error> {
    let show = super::view::money_of;
    let balances = st.services.merchant_balance(who).await?;
    let payouts = st.services.merchant_payouts(who, None, Some(10)).await?;
    Ok((
        balances.data.iter().map(|b| (show(b.balance, &b.currency), show(b.paid_out, &b.currency))).collect(),
        payouts
            .data
            .iter()
            .map(|p| (show(p.amount, &p.currency), p.created_at.get(..16).unwrap_or("").replace('T', " ")))
            .collect(),
    ))
}

/// The dashboard again with the composer's typed text and its errors.
pub(super) async fn dashboard_with(
    st: &AppState,
    ctx: &PageCtx,
    who: Principal,
    kept: HashMap<String, String>,
    errors: FormErrors,
) -> Response {
    dashboard(st, ctx, who, None, None, kept, errors).await
}

/// Someone without a shop asking for a shop's page or action: log in first; signed in,
/// 403, as the API answers a shopper on a merchant's endpoint.
fn no_shop_action(ctx: &PageCtx) -> Response {
    if ctx.viewer.is_none() {
        return to_login("/merchant");
    }
    error_page(ctx, Error::Forbidden("You do not run a shop. Open one from your shop page.".into()))
}

/// Someone without a shop: log in first, then the form that opens one.
fn no_shop(ctx: &PageCtx) -> Response {
    if ctx.viewer.is_none() {
        return to_login("/merchant");
    }
    super::shop::open_form(ctx, StatusCode::OK, HashMap::new(), FormErrors::default())
}

pub async fn merchant_home(State(st): State<AppState>, ctx: PageCtx, Query(q): Query<MerchantQuery>) -> Response {
    match principal(&st, &ctx, q.m.as_deref()).await {
        Ok(Some(who)) => {
            dashboard(&st, &ctx, who, q.status.filter(|s| !s.is_empty()), None, HashMap::new(), FormErrors::default())
                .await
        }
        Ok(None) => no_shop(&ctx),
        Err(e) => error_page(&ctx, e),
    }
}

fn back(m: &str) -> String {
    format!("/merchant?m={m}")
}

pub async fn save_webhook(State(st): State<AppState>, ctx: PageCtx, form: CsrfForm) -> Response {
    let who = match principal(&st, &ctx, form.opt("m").as_deref()).await {
        Ok(Some(who)) => who,
        Ok(None) => return no_shop_action(&ctx),
        Err(e) => return error_page(&ctx, e),
    };
    let url = form.get("webhook_url");
    match st
        .services
        .update_merchant(&who, MerchantUpdate { webhook_url: Some(url.clone()), ..Default::default() })
        .await
    {
        Ok(m) => see_other(&back(&m.id)),
        Err(Error::Validation(list)) => {
            let errors = FormErrors(list.into_iter().map(|e| (e.field, e.message)).collect());
            dashboard(&st, &ctx, who, None, None, HashMap::from([("webhook_url".to_string(), url)]), errors).await
        }
        Err(e) => error_page(&ctx, e),
    }
}

/// The shop's cart hashtags (one per market) and whether digital products may go in carts.
pub async fn save_cart_settings(State(st): State<AppState>, ctx: PageCtx, form: CsrfForm) -> Response {
    let who = match principal(&st, &ctx, form.opt("m").as_deref()).await {
        Ok(Some(who)) => who,
        Ok(None) => return no_shop_action(&ctx),
        Err(e) => return error_page(&ctx, e),
    };
    let tags: BTreeMap<String, String> =
        ["US", "GB"].iter().filter_map(|c| form.opt(&format!("tag_{c}")).map(|t| (c.to_string(), t))).collect();
    let mut kinds = vec!["physical".to_string()];
    if form.opt("digital").is_some() {
        kinds.push("digital".into());
    }
    let update = MerchantUpdate { cart_hashtags: Some(tags), cart_kinds: Some(kinds), ..Default::default() };
    match st.services.update_merchant(&who, update).await {
        Ok(m) => see_other(&back(&m.id)),
        Err(e) => match FormErrors::from_error(&e) {
            Some(errors) => {
                // `cart_hashtags.US` is the field `tag_US` here.
                let errors =
                    FormErrors(errors.0.into_iter().map(|(k, v)| (k.replace("cart_hashtags.", "tag_"), v)).collect());
                let mut kept: HashMap<String, String> = form
                    .0
                    .iter()
                    .filter(|(k, _)| k.starts_with("tag_") || *k == "digital")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                kept.insert("cart_form".into(), "1".into());
                dashboard(&st, &ctx, who, None, None, kept, errors).await
            }
            None => error_page(&ctx, e),
        },
    }
}

pub async fn rotate_secret(State(st): State<AppState>, ctx: PageCtx, form: CsrfForm) -> Response {
    let who = match principal(&st, &ctx, form.opt("m").as_deref()).await {
        Ok(Some(who)) => who,
        Ok(None) => return no_shop_action(&ctx),
        Err(e) => return error_page(&ctx, e),
    };
    match st.services.rotate_webhook_secret(&who).await {
        // Shown once, on this response only.
        Ok(secret) => dashboard(&st, &ctx, who, None, Some(secret), HashMap::new(), FormErrors::default()).await,
        Err(e) => error_page(&ctx, e),
    }
}

pub async fn replay(State(st): State<AppState>, ctx: PageCtx, Path(id): Path<String>, form: CsrfForm) -> Response {
    let who = match principal(&st, &ctx, form.opt("m").as_deref()).await {
        Ok(Some(who)) => who,
        Ok(None) => return no_shop_action(&ctx),
        Err(e) => return error_page(&ctx, e),
    };
    match st.services.retry_delivery(&who, &id).await {
        Ok(()) => see_other(&back(&who.merchant().map(|m| m.id.clone()).unwrap_or_default())),
        Err(e) => error_page(&ctx, e),
    }
}

async fn order_page(st: &AppState, ctx: &PageCtx, who: &Principal, id: &str, errors: FormErrors) -> Response {
    match st.services.merchant_order_view(who, id).await {
        Ok(o) => {
            let merchant = match who.merchant() {
                Ok(m) => m.clone(),
                Err(e) => return error_page(ctx, e),
            };
            let cur = Currency::parse(o["totals"]["currency"].as_str().unwrap_or("USD")).unwrap_or(Currency::Usd);
            let lines = o["lines"]
                .as_array()
                .map(|ls| {
                    ls.iter()
                        .map(|l| {
                            let opts = l["options"]
                                .as_object()
                                .map(|m| m.values().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(" / "))
                                .unwrap_or_default();
                            (
                                l["name"].as_str().unwrap_or("").to_string(),
                                opts,
                                l["sku"].as_str().unwrap_or("").to_string(),
                                l["quantity"].as_i64().unwrap_or(0),
                                Money::new(l["unit_price"].as_i64().unwrap_or(0), cur).display(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let a = &o["shipping_address"];
            let address = if a.is_object() {
                ["name", "line1", "line2", "city", "region", "postal_code", "country", "phone"]
                    .iter()
                    .filter_map(|k| a[*k].as_str())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                "No shipping (digital or donation)".into()
            };
            let total = o["totals"]["total"].as_i64().unwrap_or(0);
            let refunded_amount = o["refunded_amount"].as_i64().unwrap_or(0);
            ctx.render(
                if errors.0.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY },
                MerchantOrderPage {
                    ctx,
                    merchant,
                    row: row(&o),
                    lines,
                    address,
                    refunded: Money::new(refunded_amount, cur).display(),
                    left: total - refunded_amount,
                    o,
                    errors,
                },
            )
        }
        Err(e) => error_page(ctx, e),
    }
}

pub async fn merchant_order(
    State(st): State<AppState>,
    ctx: PageCtx,
    Path(id): Path<String>,
    Query(q): Query<MerchantQuery>,
) -> Response {
    let who = match principal(&st, &ctx, q.m.as_deref()).await {
        Ok(Some(who)) => who,
        Ok(None) => return no_shop_action(&ctx),
        Err(e) => return error_page(&ctx, e),
    };
    order_page(&st, &ctx, &who, &id, FormErrors::default()).await
}

pub async fn order_action(
    State(st): State<AppState>,
    ctx: PageCtx,
    Path((id, action)): Path<(String, String)>,
    form: CsrfForm,
) -> Response {
    let who = match principal(&st, &ctx, form.opt("m").as_deref()).await {
        Ok(Some(who)) => who,
        Ok(None) => return no_shop_action(&ctx),
        Err(e) => return error_page(&ctx, e),
    };
    let result = match action.as_str() {
        "acknowledge" => st.services.acknowledge_order(&who, &id).await,
        "fulfill" => {
            st.services
                .fulfill_order(
                    &who,
                    &id,
                    FulfillInput { carrier: form.get("carrier"), tracking_number: form.get("tracking_number") },
                )
                .await
        }
        "cancel" => st.services.cancel_order(&who, &id).await,
        "refund" => {
            let amount = match form.opt("amount") {
                None => None,
                Some(a) => match super::buy::parse_amount(&a) {
                    Some(v) => Some(v),
                    None => {
                        let errors = FormErrors(
                            [("amount".to_string(), "enter an amount such as 10 or 10.50".to_string())].into(),
                        );
                        return order_page(&st, &ctx, &who, &id, errors).await;
                    }
                },
            };
            st.services.refund_order(&who, &id, RefundInput { amount, reason: form.opt("reason") }).await
        }
        _ => Err(Error::NotFound("action")),
    };
    let m = who.merchant().map(|m| m.id.clone()).unwrap_or_default();
    match result {
        Ok(_) => see_other(&format!("/merchant/orders/{id}?m={m}")),
        Err(Error::Validation(list)) => {
            let errors = FormErrors(list.into_iter().map(|e| (e.field, e.message)).collect());
            order_page(&st, &ctx, &who, &id, errors).await
        }
        Err(Error::Conflict { message, .. }) => {
            let errors = FormErrors([("action".to_string(), message)].into());
            order_page(&st, &ctx, &who, &id, errors).await
        }
        Err(e) => error_page(&ctx, e),
    }
}

/// The shop's tax rate per market (in percent, e.g. 8.25) and its return policy.
pub async fn save_terms(State(st): State<AppState>, ctx: PageCtx, form: CsrfForm) -> Response {
    let who = match principal(&st, &ctx, form.opt("m").as_deref()).await {
        Ok(Some(who)) => who,
        Ok(None) => return no_shop_action(&ctx),
        Err(e) => return error_page(&ctx, e),
    };
    let mut errors = HashMap::new();
    let mut rates = BTreeMap::new();
    for c in ["US", "GB"] {
        let field = format!("tax_{c}");
        if let Some(v) = form.opt(&field) {
            // Percent with up to two decimals is basis points: 8.25 % = 825.
            match super::buy::parse_amount(&v).filter(|bps| *bps <= 10_000) {
                Some(bps) => {
                    rates.insert(c.to_string(), bps as u32);
                }
                None => {
                    errors.insert(field, "must be a percentage between 0 and 100, like 8.25".to_string());
                }
            }
        }
    }
    let kept: HashMap<String, String> = form
        .0
        .iter()
        .filter(|(k, _)| k.starts_with("tax_") || *k == "return_policy")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !errors.is_empty() {
        return dashboard(&st, &ctx, who, None, None, kept, FormErrors(errors)).await;
    }
    let update =
        MerchantUpdate { tax_rates: Some(rates), return_policy: Some(form.get("return_policy")), ..Default::default() };
    match st.services.update_merchant(&who, update).await {
        Ok(m) => see_other(&format!("{}#terms", back(&m.id))),
        Err(e) => match FormErrors::from_error(&e) {
            Some(errors) => {
                let errors =
                    FormErrors(errors.0.into_iter().map(|(k, v)| (k.replace("tax_rates.", "tax_"), v)).collect());
                dashboard(&st, &ctx, who, None, None, kept, errors).await
            }
            None => error_page(&ctx, e),
        },
    }
}
