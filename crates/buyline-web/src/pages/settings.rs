//! `/settings`: saved cards and addresses, linked merchants, export, account deletion.

use super::redirect::{see_other, to_login};
use super::{error_page, CsrfForm, FormErrors, PageCtx};
use crate::extract::SESSION_COOKIE;
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use buyline_core::payment::CardInput;
use buyline_core::saved::{PaymentMethod, SavedAddress};
use buyline_core::{Error, Principal};
use std::collections::HashMap;

#[derive(Template)]
#[template(path = "settings.html")]
pub struct SettingsPage<'a> {
    pub ctx: &'a PageCtx,
    pub cards: Vec<(PaymentMethod, String)>,
    pub addresses: Vec<SavedAddress>,
    pub links: Vec<buyline_core::cart::MerchantLink>,
    pub form: HashMap<String, String>,
    pub errors: FormErrors,
}

impl SettingsPage<'_> {
    pub fn v(&self, k: &str) -> &str {
        self.form.get(k).map(String::as_str).unwrap_or("")
    }
}

async fn page(
    st: &AppState,
    ctx: &PageCtx,
    who: &Principal,
    form: HashMap<String, String>,
    errors: FormErrors,
) -> Response {
    let cards = match st.services.payment_methods(who).await {
        Ok(c) => c
            .into_iter()
            .map(|pm| {
                let label = pm.brand.label().to_string();
                (pm, label)
            })
            .collect(),
        Err(e) => return error_page(ctx, e),
    };
    let addresses = match st.services.addresses(who, "show settings").await {
        Ok(a) => a,
        Err(e) => return error_page(ctx, e),
    };
    let links = match st.services.merchant_links(who).await {
        Ok(l) => l,
        Err(e) => return error_page(ctx, e),
    };
    let status = if errors.0.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    ctx.render(status, SettingsPage { ctx, cards, addresses, links, form, errors })
}

pub async fn settings(State(st): State<AppState>, ctx: PageCtx) -> Response {
    let Some(who) = ctx.principal() else { return to_login("/settings") };
    page(&st, &ctx, &who, HashMap::new(), FormErrors::default()).await
}

/// Field names the services use, as this form names them.
fn field(f: &str) -> String {
    f.replace("card.", "card_").replace("address.", "")
}

pub async fn add_card(State(st): State<AppState>, ctx: PageCtx, form: CsrfForm) -> Response {
    let Some(who) = ctx.principal() else { return see_other("/login") };
    let input = CardInput {
        number: form.get("card_number"),
        exp_month: form.get("card_exp_month").trim().parse().unwrap_or(0),
        exp_year: form.get("card_exp_year").trim().parse().unwrap_or(0),
        cvc: form.get("card_cvc"),
        name: None,
    };
    match st.services.add_payment_method(&who, input).await {
        Ok(_) => see_other("/settings"),
        Err(Error::Validation(list)) => {
            let errors = FormErrors(list.into_iter().map(|e| (field(&e.field), e.message)).collect());
            page(&st, &ctx, &who, form.kept(), errors).await
        }
        Err(e) => error_page(&ctx, e),
    }
}

pub async fn add_address(State(st): State<AppState>, ctx: PageCtx, form: CsrfForm) -> Response {
    let Some(who) = ctx.principal() else { return see_other("/login") };
    let input = form.address();
    match st.services.add_address(&who, input).await {
        Ok(_) => see_other("/settings"),
        Err(Error::Validation(list)) => {
            let errors = FormErrors(list.into_iter().map(|e| (field(&e.field), e.message)).collect());
            page(&st, &ctx, &who, form.kept(), errors).await
        }
        Err(e) => error_page(&ctx, e),
    }
}

pub async fn delete_card(State(st): State<AppState>, ctx: PageCtx, Path(id): Path<String>, _f: CsrfForm) -> Response {
    let Some(who) = ctx.principal() else { return see_other("/login") };
    match st.services.delete_payment_method(&who, &id).await {
        Ok(()) => see_other("/settings"),
        Err(e) => error_page(&ctx, e),
    }
}

pub async fn delete_address(
    State(st): State<AppState>,
    ctx: PageCtx,
    Path(id): Path<String>,
    _f: CsrfForm,
) -> Response {
    let Some(who) = ctx.principal() else { return see_other("/login") };
    match st.services.delete_address(&who, &id).await {
        Ok(()) => see_other("/settings"),
        Err(e) => error_page(&ctx, e),
    }
}

pub async fn export(State(st): State<AppState>, ctx: PageCtx) -> Response {
    let Some(who) = ctx.principal() else { return to_login("/settings") };
    // Handles are `[A-Za-z0-9_]` already; the filter keeps the header valid whatever a
    // stored handle holds.
    let name: String = who
        .account()
        .map(|a| a.handle.as_str())
        .unwrap_or("export")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    match st.services.export(&who).await {
        Ok(x) => (
            [
                (header::CONTENT_TYPE, "application/json".to_string()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"buyline-{name}.json\"")),
                (header::CACHE_CONTROL, "no-store".to_string()),
            ],
            serde_json::to_string_pretty(&x).unwrap_or_default(),
        )
            .into_response(),
        Err(e) => error_page(&ctx, e),
    }
}

pub async fn delete_account(State(st): State<AppState>, ctx: PageCtx, jar: CookieJar, form: CsrfForm) -> Response {
    let Some(who) = ctx.principal() else { return see_other("/login") };
    let handle = who.account().map(|a| a.handle.clone()).unwrap_or_default();
    if !form.get("confirm").trim().eq_ignore_ascii_case(&handle) {
        let errors = FormErrors([("confirm".to_string(), format!("type your handle, {handle}, to confirm"))].into());
        return page(&st, &ctx, &who, form.kept(), errors).await;
    }
    match st.services.delete_account(&who).await {
        Ok(()) => (jar.remove(axum_extra::extract::cookie::Cookie::build(SESSION_COOKIE).path("/")), see_other("/"))
            .into_response(),
        Err(e) => error_page(&ctx, e),
    }
}
