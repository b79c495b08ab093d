//! The shop's own catalogue and voice, run from pages: open a shop (its API key and webhook
//! secret shown once), create a product (options → variants, price, stock, shipping, return
//! policy), edit it and its stock in place, and post with a product attached. Every form
//! calls the same services as `POST /merchants`, `POST /products`, `PATCH /products/…` and
//! `POST /posts`, so a page allows exactly what the API allows.

use super::buy::parse_amount;
use super::redirect::{see_other, to_login};
use super::{error_page, CsrfForm, FormErrors, PageCtx};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use buyline_core::limits::MAX_SHIPPING_RATES;
use buyline_core::model::{Inventory, InventoryType, Merchant, Product};
use buyline_core::service::{
    MerchantInput, NewMerchant, OptionInput, PostInput, ProductInput, ProductUpdate, ShippingRateInput, VariantUpdate,
};
use buyline_core::types::Money;
use buyline_core::{Error, FieldError, Principal};
use serde::Deserialize;
use std::collections::HashMap;

/// Option rows the product form offers (the catalogue allows at most three options).
const OPTION_ROWS: usize = 3;

#[derive(Deserialize, Default)]
pub struct ShopQuery {
    m: Option<String>,
}

#[derive(Template)]
#[template(path = "shop_open.html")]
pub struct OpenPage<'a> {
    pub ctx: &'a PageCtx,
    pub kept: HashMap<String, String>,
    pub errors: FormErrors,
}

#[derive(Template)]
#[template(path = "shop_opened.html")]
pub struct OpenedPage<'a> {
    pub ctx: &'a PageCtx,
    pub created: NewMerchant,
}

#[derive(Template)]
#[template(path = "shop_product.html")]
pub struct ProductForm<'a> {
    pub ctx: &'a PageCtx,
    pub merchant: Merchant,
    /// The product being edited; `None` on the new-product form.
    pub product: Option<Product>,
    pub kept: HashMap<String, String>,
    pub errors: FormErrors,
    /// `(variant id, its options in words, price, stock)` as shown in the stock table.
    pub variants: Vec<(String, String, String, String)>,
    pub notice: Option<String>,
}

impl ProductForm<'_> {
    pub fn val(&self, k: &str) -> String {
        self.kept.get(k).cloned().unwrap_or_default()
    }

    /// Whether the form has the shipping fields: a new product (it may be physical) or a
    /// physical one.
    pub fn ships(&self) -> bool {
        self.product.as_ref().is_none_or(|p| p.kind == buyline_core::types::ProductKind::Physical)
    }

    pub fn rows(&self) -> Vec<usize> {
        (1..=OPTION_ROWS).collect()
    }

    /// The shipping rate rows: every rate the product (or the form sent back) has, and one
    /// empty row for another, up to the most a product may have.
    pub fn ship_rows(&self) -> Vec<usize> {
        let filled = (1..=MAX_SHIPPING_RATES)
            .filter(|&row| {
                ["name", "price", "countries"].iter().any(|part| self.kept.contains_key(&ship_field(row, part)))
            })
            .max()
            .unwrap_or(0);
        (1..=(filled + 1).clamp(1, MAX_SHIPPING_RATES)).collect()
    }

    /// Errors for no field the form shows, for the summary at its top.
    pub fn other_errors(&self) -> Vec<String> {
        let mut shown: Vec<String> =
            ["name", "kind", "description", "return_policy", "price", "stock", "donation_min", "donation_max"]
                .map(String::from)
                .to_vec();
        for row in 1..=OPTION_ROWS {
            shown.extend([format!("option{row}_name"), format!("option{row}_values")]);
        }
        for row in self.ship_rows() {
            shown.extend(["name", "price", "countries"].map(|part| ship_field(row, part)));
        }
        self.errors.others(&shown.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// A shipping row's fields: `(name, label)`.
    pub fn ship_fields(&self, row: usize) -> Vec<(String, String)> {
        if row == 1 {
            return vec![
                (ship_field(row, "name"), "Rate name".into()),
                (ship_field(row, "price"), "Shipping price".into()),
                (ship_field(row, "countries"), "Ships to (country codes, comma separated)".into()),
            ];
        }
        vec![
            (ship_field(row, "name"), format!("Rate {row}: name")),
            (ship_field(row, "price"), format!("Rate {row}: price")),
            (ship_field(row, "countries"), format!("Rate {row}: countries (codes, comma separated)")),
        ]
    }
}

/// The form's name for a part of shipping rate `row` (from 1): `ship_price` for the first,
/// `ship2_price` for the second, and so on.
pub fn ship_field(row: usize, part: &str) -> String {
    if row == 1 {
        format!("ship_{part}")
    } else {
        format!("ship{row}_{part}")
    }
}

impl OpenPage<'_> {
    pub fn val(&self, k: &str) -> String {
        self.kept.get(k).cloned().unwrap_or_default()
    }
}

/// The shop the signed-in owner is running (`m` picks one of several).
async fn shop(st: &AppState, ctx: &PageCtx, m: Option<&str>) -> Result<(Principal, Merchant), Response> {
    let Some(viewer) = &ctx.viewer else { return Err(to_login("/merchant")) };
    match st.services.act_as_merchant(viewer, m).await {
        Ok(Some(who)) => match who.merchant().cloned() {
            Ok(merchant) => Ok((who, merchant)),
            Err(_) => Err(see_other("/merchant")),
        },
        Ok(None) => Err(see_other("/merchant")),
        Err(e) => Err(error_page(ctx, e)),
    }
}

/// Field errors keyed as the form names its fields: `options[1].values` beside
/// `option2_values`, `shipping_rates[0].price` beside `ship_price`.
fn form_errors(list: Vec<FieldError>) -> FormErrors {
    let mut map = HashMap::new();
    for fe in list {
        let f = fe.field.as_str();
        let key = if let Some(rest) = f.strip_prefix("options[") {
            let (i, tail) = rest.split_once(']').unwrap_or(("0", ""));
            let n = i.parse::<usize>().unwrap_or(0) + 1;
            let part = if tail.contains("name") { "name" } else { "values" };
            format!("option{n}_{part}")
        } else if let Some(rest) = f.strip_prefix("shipping_rates") {
            let row = rest
                .strip_prefix('[')
                .and_then(|r| r.split_once(']'))
                .and_then(|(i, _)| i.parse::<usize>().ok())
                .map_or(1, |i| i + 1);
            let part = if rest.contains("countries") {
                "countries"
            } else if rest.contains("price") {
                "price"
            } else {
                "name"
            };
            ship_field(row, part)
        } else if f == "options" {
            "option1_values".into()
        } else if f.starts_with("variants") || f == "inventory" {
            "stock".into()
        } else if f.starts_with("donation") {
            "donation_min".into()
        } else {
            f.to_string()
        };
        map.entry(key).or_insert(fe.message);
    }
    FormErrors(map)
}

fn stock_input(s: &str, field: &str, errors: &mut Vec<FieldError>) -> Option<Inventory> {
    let s = s.trim();
    if s.is_empty() {
        return Some(Inventory { kind: InventoryType::Infinite, quantity: None });
    }
    match s.parse::<i64>() {
        Ok(q) if q >= 0 => Some(Inventory { kind: InventoryType::Finite, quantity: Some(q) }),
        _ => {
            errors.push(FieldError::new(field, "must be a whole number of units, or empty for unlimited"));
            None
        }
    }
}

fn amount_input(s: &str, field: &str, required: bool, errors: &mut Vec<FieldError>) -> Option<i64> {
    if s.trim().is_empty() {
        if required {
            errors.push(FieldError::new(field, "is required"));
        }
        return None;
    }
    let a = parse_amount(s);
    if a.is_none() {
        errors.push(FieldError::new(field, "must be an amount like 25.00"));
    }
    a
}

fn list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|v| !v.is_empty()).map(str::to_string).collect()
}

fn shown(p: &Product) -> Vec<(String, String, String, String)> {
    p.variants
        .iter()
        .map(|v| {
            let opts = v.options.iter().map(|(k, val)| format!("{k}: {val}")).collect::<Vec<_>>().join(", ");
            let price = Money::new(v.price, p.currency).display();
            let price = price.trim_start_matches(['$', '£']).to_string();
            let stock = v.inventory.quantity.map(|q| q.to_string()).unwrap_or_default();
            (v.id.clone(), if opts.is_empty() { "Default".into() } else { opts }, price, stock)
        })
        .collect()
}

/// The open-a-shop form, for a signed-in person without a shop.
pub fn open_form(ctx: &PageCtx, status: StatusCode, kept: HashMap<String, String>, errors: FormErrors) -> Response {
    ctx.render(status, OpenPage { ctx, kept, errors })
}

pub async fn open_shop(State(st): State<AppState>, ctx: PageCtx, form: CsrfForm) -> Response {
    let Some(viewer) = ctx.viewer.clone() else { return to_login("/merchant") };
    let input = MerchantInput {
        name: form.get("name"),
        handle: form.get("handle").trim().trim_start_matches('@').to_string(),
        kind: form.get("kind"),
        country: form.get("country").trim().to_uppercase(),
        return_policy: form.opt("return_policy"),
        ..Default::default()
    };
    match st.services.create_merchant(&Principal::Shopper(viewer), input).await {
        Ok(created) => ctx.render(StatusCode::CREATED, OpenedPage { ctx: &ctx, created }),
        Err(e) => match FormErrors::from_error(&e) {
            Some(errors) => open_form(&ctx, StatusCode::UNPROCESSABLE_ENTITY, form.kept(), errors),
            None => error_page(&ctx, e),
        },
    }
}

fn product_form(
    ctx: &PageCtx,
    merchant: Merchant,
    product: Option<Product>,
    kept: HashMap<String, String>,
    errors: FormErrors,
    notice: Option<String>,
) -> Response {
    let status = if errors.0.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let variants = product.as_ref().map(shown).unwrap_or_default();
    ctx.render(status, ProductForm { ctx, merchant, product, kept, errors, variants, notice })
}

pub async fn new_product(State(st): State<AppState>, ctx: PageCtx, Query(q): Query<ShopQuery>) -> Response {
    let (_, merchant) = match shop(&st, &ctx, q.m.as_deref()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let kept = HashMap::from([
        ("kind".to_string(), "physical".to_string()),
        ("ship_name".to_string(), "Standard".to_string()),
        ("ship_countries".to_string(), merchant.country.clone()),
        ("return_policy".to_string(), merchant.return_policy.clone()),
    ]);
    product_form(&ctx, merchant, None, kept, FormErrors::default(), None)
}

pub async fn create_product(State(st): State<AppState>, ctx: PageCtx, form: CsrfForm) -> Response {
    let (who, merchant) = match shop(&st, &ctx, form.opt("m").as_deref()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut errors = Vec::new();
    let kind = form.get("kind");
    let options: Vec<OptionInput> = (1..=OPTION_ROWS)
        .filter_map(|i| {
            let name = form.get(&format!("option{i}_name")).trim().to_string();
            let values = list(&form.get(&format!("option{i}_values")));
            (!name.is_empty() || !values.is_empty()).then_some(OptionInput { name, values })
        })
        .collect();
    let donation = kind == "donation";
    let price = if donation { None } else { amount_input(&form.get("price"), "price", true, &mut errors) };
    let inventory = stock_input(&form.get("stock"), "stock", &mut errors);
    let shipping_rates = if kind == "physical" { shipping_input(&form, &mut errors) } else { vec![] };
    let donation_range = if donation {
        let min = amount_input(&form.get("donation_min"), "donation_min", true, &mut errors);
        let max = amount_input(&form.get("donation_max"), "donation_max", true, &mut errors);
        match (min, max) {
            (Some(min), Some(max)) => Some(buyline_core::model::DonationRange { min, max }),
            _ => None,
        }
    } else {
        None
    };
    if !errors.is_empty() {
        return product_form(&ctx, merchant, None, form.kept(), form_errors(errors), None);
    }
    let input = ProductInput {
        name: form.get("name"),
        kind,
        description: form.opt("description"),
        return_policy: form.opt("return_policy"),
        options,
        price,
        inventory,
        shipping_rates,
        donation: donation_range,
        ..Default::default()
    };
    match st.services.create_product(&who, input).await {
        Ok(p) => see_other(&format!("/merchant/products/{}?m={}", p.id, merchant.id)),
        Err(Error::Validation(list)) => product_form(&ctx, merchant, None, form.kept(), form_errors(list), None),
        Err(e) => error_page(&ctx, e),
    }
}

/// The merchant's own product, or 404 as the API answers for another's.
async fn own_product(st: &AppState, merchant: &Merchant, id: &str) -> Result<Product, Error> {
    let p = st.services.product(id).await?;
    if p.merchant_id != merchant.id {
        return Err(Error::NotFound("product"));
    }
    Ok(p)
}

fn kept_of(p: &Product) -> HashMap<String, String> {
    let mut kept = HashMap::from([
        ("name".to_string(), p.name.clone()),
        ("description".to_string(), p.description.clone()),
        ("return_policy".to_string(), p.return_policy.clone()),
    ]);
    for (i, r) in p.shipping_rates.iter().enumerate() {
        kept.insert(ship_field(i + 1, "name"), r.name.clone());
        kept.insert(ship_field(i + 1, "price"), format!("{}.{:02}", r.price / 100, r.price % 100));
        kept.insert(ship_field(i + 1, "countries"), r.countries.join(", "));
    }
    kept
}

pub async fn edit_product(
    State(st): State<AppState>,
    ctx: PageCtx,
    Path(id): Path<String>,
    Query(q): Query<ShopQuery>,
) -> Response {
    let (_, merchant) = match shop(&st, &ctx, q.m.as_deref()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match own_product(&st, &merchant, &id).await {
        Ok(p) => {
            let kept = kept_of(&p);
            product_form(&ctx, merchant, Some(p), kept, FormErrors::default(), None)
        }
        Err(e) => error_page(&ctx, e),
    }
}

pub async fn update_product(
    State(st): State<AppState>,
    ctx: PageCtx,
    Path(id): Path<String>,
    form: CsrfForm,
) -> Response {
    let (who, merchant) = match shop(&st, &ctx, form.opt("m").as_deref()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let p = match own_product(&st, &merchant, &id).await {
        Ok(p) => p,
        Err(e) => return error_page(&ctx, e),
    };
    let mut errors = Vec::new();
    let shipping_rates =
        (p.kind == buyline_core::types::ProductKind::Physical).then(|| shipping_input(&form, &mut errors));
    let result = if errors.is_empty() {
        let update = ProductUpdate {
            name: Some(form.get("name")),
            description: Some(form.get("description")),
            return_policy: Some(form.get("return_policy")),
            shipping_rates,
            ..Default::default()
        };
        st.services.update_product(&who, &id, update).await
    } else {
        Err(Error::Validation(errors))
    };
    match result {
        Ok(p) => {
            let kept = kept_of(&p);
            product_form(&ctx, merchant, Some(p), kept, FormErrors::default(), Some("Saved.".into()))
        }
        Err(Error::Validation(list)) => product_form(&ctx, merchant, Some(p), form.kept(), form_errors(list), None),
        Err(e) => error_page(&ctx, e),
    }
}

/// One variant's price and stock, edited in place in the stock table.
pub async fn update_variant(
    State(st): State<AppState>,
    ctx: PageCtx,
    Path((id, vid)): Path<(String, String)>,
    form: CsrfForm,
) -> Response {
    let (who, merchant) = match shop(&st, &ctx, form.opt("m").as_deref()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let p = match own_product(&st, &merchant, &id).await {
        Ok(p) => p,
        Err(e) => return error_page(&ctx, e),
    };
    let mut errors = Vec::new();
    let price_field = format!("price_{vid}");
    let stock_field = format!("stock_{vid}");
    let price =
        if p.donation.is_some() { None } else { amount_input(&form.get("price"), &price_field, true, &mut errors) };
    let inventory = stock_input(&form.get("stock"), &stock_field, &mut errors);
    let result = if errors.is_empty() {
        st.services.update_variant(&who, &id, &vid, VariantUpdate { price, inventory, ..Default::default() }).await
    } else {
        Err(Error::Validation(errors))
    };
    match result {
        Ok(_) => see_other(&format!("/merchant/products/{id}?m={}#variant-{vid}", merchant.id)),
        Err(Error::Validation(list)) => {
            let mut kept = kept_of(&p);
            kept.insert(price_field.clone(), form.get("price"));
            kept.insert(stock_field.clone(), form.get("stock"));
            let errors = FormErrors(
                list.into_iter()
                    .map(|fe| {
                        let k = if fe.field.contains("stock") || fe.field.contains("inventory") {
                            stock_field.clone()
                        } else {
                            price_field.clone()
                        };
                        (k, fe.message)
                    })
                    .collect(),
            );
            product_form(&ctx, merchant, Some(p), kept, errors, None)
        }
        Err(e) => error_page(&ctx, e),
    }
}

/// The shop's composer: a post in the shop's voice, with one of its products attached.
pub async fn compose(State(st): State<AppState>, ctx: PageCtx, form: CsrfForm) -> Response {
    let (who, merchant) = match shop(&st, &ctx, form.opt("m").as_deref()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let input = PostInput { text: form.get("text"), reply_to: None, product_id: form.opt("product_id") };
    match st.services.create_post(&who, input).await {
        Ok(_) => see_other(&format!("/merchant?m={}#compose", merchant.id)),
        Err(e) => match FormErrors::from_error(&e) {
            Some(errors) => super::merchant::dashboard_with(&st, &ctx, who, form.kept(), errors).await,
            None => error_page(&ctx, e),
        },
    }
}

/// Archives the product from its page; with open orders, the page says why not.
pub async fn archive_product(
    State(st): State<AppState>,
    ctx: PageCtx,
    Path(id): Path<String>,
    form: CsrfForm,
) -> Response {
    let (who, merchant) = match shop(&st, &ctx, form.opt("m").as_deref()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match st.services.archive_product(&who, &id).await {
        Ok(()) => see_other(&format!("/merchant?m={}#products", merchant.id)),
        Err(Error::Conflict { message, .. }) => match own_product(&st, &merchant, &id).await {
            Ok(p) => {
                let kept = kept_of(&p);
                let errors = FormErrors(HashMap::from([("archive".to_string(), message)]));
                let mut page = product_form(&ctx, merchant, Some(p), kept, errors, None);
                *page.status_mut() = StatusCode::CONFLICT;
                page
            }
            Err(e) => error_page(&ctx, e),
        },
        Err(e) => error_page(&ctx, e),
    }
}

/// The form's shipping rates: the first row always (`ship_name`, `ship_price`,
/// `ship_countries`), the others (`ship2_name`, …) when any of their fields is filled in. A
/// product whose rates all show on the form keeps them all when it is saved.
fn shipping_input(form: &CsrfForm, errors: &mut Vec<FieldError>) -> Vec<ShippingRateInput> {
    let mut rates = Vec::new();
    for row in 1..=MAX_SHIPPING_RATES {
        let [name, price, countries] = ["name", "price", "countries"].map(|part| form.get(&ship_field(row, part)));
        if row > 1 && [&name, &price, &countries].iter().all(|v| v.trim().is_empty()) {
            continue;
        }
        let price = amount_input(&price, &ship_field(row, "price"), true, errors).unwrap_or(0);
        rates.push(ShippingRateInput {
            name,
            price,
            countries: list(&countries).into_iter().map(|c| c.to_uppercase()).collect(),
        });
    }
    rates
}
