//! `/admin`: the operator's console. The operator logs in with the operator token into a
//! short cookie session (`bl_operator`, shared by every node through the database); every
//! action goes through the same services as `/api/v1/admin/…` and lands in the audit log
//! shown on the page. Anyone without that session gets the log-in form and nothing else.

use super::redirect::see_other;
use super::{error_page, CsrfForm, FormErrors, PageCtx};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use buyline_core::fees::FeePolicy;
use buyline_core::model::Merchant;
use buyline_core::rollout::BuyButtonFlag;
use buyline_core::service::{TrialBalance, OPERATOR_SESSION_MICROS};
use buyline_core::store::AuditEntry;
use buyline_core::{Error, Principal};
use serde::Deserialize;
use std::collections::HashMap;

/// The console session's cookie.
pub const OPERATOR_COOKIE: &str = "bl_operator";

const KINDS: [&str; 4] = ["retailer", "brand", "artist", "nonprofit"];

#[derive(Deserialize, Default)]
pub struct AdminQuery {
    q: Option<String>,
}

/// The rollout form's fields as shown: what is stored, or what was typed.
pub struct FlagForm {
    pub enabled: bool,
    pub countries: String,
    pub percent: String,
    pub merchants: String,
    pub holdout_percent: String,
}

impl FlagForm {
    fn of(f: &BuyButtonFlag) -> FlagForm {
        FlagForm {
            enabled: f.enabled,
            countries: f.countries.join(", "),
            percent: f.percent.to_string(),
            merchants: f.merchants.as_ref().map(|m| m.join(", ")).unwrap_or_default(),
            holdout_percent: f.holdout_percent.to_string(),
        }
    }
}

pub struct AuditRow {
    pub at: String,
    pub action: String,
    pub detail: String,
}

fn time(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

fn audit_row(e: &AuditEntry) -> AuditRow {
    AuditRow { at: time(e.at), action: e.action.clone(), detail: e.detail.clone() }
}

fn amount(minor: i64, currency: &str) -> String {
    super::view::money_of(minor, currency)
}

#[derive(Template)]
#[template(path = "admin_login.html")]
pub struct LoginPage<'a> {
    pub ctx: &'a PageCtx,
    pub errors: FormErrors,
}

#[derive(Template)]
#[template(path = "admin.html")]
pub struct AdminPage<'a> {
    pub ctx: &'a PageCtx,
    pub flag: FlagForm,
    pub kinds: Vec<(String, String)>,
    pub overrides: Vec<(String, u32)>,
    pub override_merchant: String,
    pub override_bps: String,
    /// `(account, currency, balance)` lines and the total per currency.
    pub ledger: Vec<(String, String, String)>,
    pub totals: Vec<(String, String, bool)>,
    pub q: String,
    pub merchants: Vec<Merchant>,
    pub audit: Vec<AuditRow>,
    pub key_id: String,
    pub last_rotation: Option<AuditRow>,
    pub errors: FormErrors,
    pub notice: Option<String>,
    /// The newest payouts: (id, merchant, amount, when).
    pub payouts: Vec<(String, String, String, String)>,
    pub payout_merchant: String,
    pub post_id: String,
}

#[derive(Template)]
#[template(path = "admin_merchant.html")]
pub struct MerchantPage<'a> {
    pub ctx: &'a PageCtx,
    pub merchant: Merchant,
    pub fee_bps: u32,
    /// `(id, created, status, total)`.
    pub orders: Vec<(String, String, String, String)>,
    /// `(owed now, paid out so far)` per currency, and the newest payouts `(amount, when)`.
    pub balances: Vec<(String, String)>,
    pub payouts: Vec<(String, String)>,
    /// Its posts with a product, each with a funnel: `(post id, text)`.
    pub funnel_posts: Vec<(String, String)>,
}

/// The operator, if the browser holds an open console session.
async fn operator(st: &AppState, jar: &CookieJar) -> Option<Principal> {
    let token = jar.get(OPERATOR_COOKIE)?.value().to_string();
    st.services.operator_session(&token).await.ok().flatten()
}

fn login_page(ctx: &PageCtx, status: StatusCode, errors: FormErrors) -> Response {
    ctx.render(status, LoginPage { ctx, errors })
}

/// Field errors keyed by the form's field: `countries[2]` and `kinds.brand` show beside
/// `countries` and `kind_brand`.
fn form_errors(e: &Error) -> Option<FormErrors> {
    let FormErrors(map) = FormErrors::from_error(e)?;
    let mut out = HashMap::new();
    for (k, v) in map {
        let key = if let Some(kind) = k.strip_prefix("kinds.") {
            format!("kind_{kind}")
        } else if k.starts_with("merchants.") {
            "override_bps".to_string()
        } else {
            k.split(['[', '.']).next().unwrap_or(&k).to_string()
        };
        out.entry(key).or_insert(v);
    }
    Some(FormErrors(out))
}

struct Shown {
    flag: Option<FlagForm>,
    kinds: HashMap<String, String>,
    override_merchant: String,
    override_bps: String,
    notice: Option<String>,
    override_merchant_for_payout: String,
}

impl Shown {
    fn none() -> Shown {
        Shown {
            flag: None,
            kinds: HashMap::new(),
            override_merchant: String::new(),
            override_bps: String::new(),
            notice: None,
            override_merchant_for_payout: String::new(),
        }
    }
}

async fn dashboard(
    st: &AppState,
    ctx: &PageCtx,
    who: &Principal,
    q: &str,
    shown: Shown,
    errors: FormErrors,
) -> Response {
    let loaded = async {
        let flag = st.services.buy_button_flag().await?;
        let fees = st.services.fee_policy().await?;
        let TrialBalance { data, totals } = st.services.trial_balance(who).await?;
        let merchants = st.services.find_merchants(who, q, 25).await?;
        let audit = st.services.operator_audit_log(who, 30).await?;
        let rotation = st.services.last_key_rotation(who).await?;
        let payouts = st.services.all_payouts(who, None, Some(20)).await?.data;
        Ok::<_, Error>((flag, fees, data, totals, merchants, audit, (rotation, payouts)))
    }
    .await;
    let (flag, fees, data, totals, merchants, audit, (rotation, payouts)) = match loaded {
        Ok(v) => v,
        // A search too long is a field error; the rest of the page still shows.
        Err(e @ Error::Validation(_)) if !q.is_empty() => {
            return Box::pin(dashboard(st, ctx, who, "", shown, form_errors(&e).unwrap_or_default())).await;
        }
        Err(e) => return error_page(ctx, e),
    };
    let status = if errors.0.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let page = AdminPage {
        ctx,
        flag: shown.flag.unwrap_or_else(|| FlagForm::of(&flag)),
        kinds: KINDS
            .iter()
            .map(|k| {
                let typed = shown.kinds.get(*k).cloned();
                (k.to_string(), typed.unwrap_or_else(|| fees.kinds.get(*k).copied().unwrap_or(0).to_string()))
            })
            .collect(),
        overrides: fees.merchants.iter().map(|(m, b)| (m.clone(), *b)).collect(),
        override_merchant: shown.override_merchant,
        override_bps: shown.override_bps,
        ledger: data.iter().map(|l| (l.account.clone(), l.currency.clone(), amount(l.balance, &l.currency))).collect(),
        totals: totals.iter().map(|(c, t)| (c.clone(), amount(*t, c), *t == 0)).collect(),
        q: q.to_string(),
        merchants,
        audit: audit.iter().map(audit_row).collect(),
        key_id: st.services.vault_key_id(),
        last_rotation: rotation.as_ref().map(audit_row),
        errors,
        notice: shown.notice,
        payouts: payouts
            .iter()
            .map(|p| {
                (
                    p.id.clone(),
                    p.merchant_id.clone(),
                    amount(p.amount, &p.currency),
                    p.created_at.get(..16).unwrap_or("").replace('T', " "),
                )
            })
            .collect(),
        payout_merchant: shown.override_merchant_for_payout,
        post_id: String::new(),
    };
    ctx.render(status, page)
}

pub async fn admin_home(
    State(st): State<AppState>,
    ctx: PageCtx,
    jar: CookieJar,
    Query(q): Query<AdminQuery>,
) -> Response {
    match operator(&st, &jar).await {
        Some(who) => {
            let q = q.q.unwrap_or_default();
            dashboard(&st, &ctx, &who, q.trim(), Shown::none(), FormErrors::default()).await
        }
        None => login_page(&ctx, StatusCode::OK, FormErrors::default()),
    }
}

pub async fn log_in(
    State(st): State<AppState>,
    ctx: PageCtx,
    axum::extract::ConnectInfo(client): axum::extract::ConnectInfo<std::net::SocketAddr>,
    form: CsrfForm,
) -> Response {
    let ip = client.ip().to_string();
    match st.services.operator_log_in(&form.get("token"), st.operator_token.as_deref(), Some(&ip)).await {
        Ok(token) => {
            let c = Cookie::build((OPERATOR_COOKIE, token))
                .path("/admin")
                .http_only(true)
                .same_site(SameSite::Strict)
                .secure(st.secure_cookies)
                .max_age(cookie::time::Duration::seconds(OPERATOR_SESSION_MICROS / 1_000_000))
                .build();
            let mut resp = see_other("/admin");
            if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            resp
        }
        Err(Error::Unauthorized) => login_page(
            &ctx,
            StatusCode::UNAUTHORIZED,
            FormErrors(HashMap::from([("token".to_string(), "That is not the operator token.".to_string())])),
        ),
        Err(e @ Error::Validation(_)) => {
            login_page(&ctx, StatusCode::UNPROCESSABLE_ENTITY, FormErrors::from_error(&e).unwrap_or_default())
        }
        Err(e) => error_page(&ctx, e),
    }
}

pub async fn log_out(State(st): State<AppState>, jar: CookieJar, _form: CsrfForm) -> Response {
    if let Some(c) = jar.get(OPERATOR_COOKIE) {
        if let Err(e) = st.services.operator_log_out(c.value()).await {
            tracing::warn!(error = %e, "operator log-out");
        }
    }
    let gone = Cookie::build((OPERATOR_COOKIE, "")).path("/admin").max_age(cookie::time::Duration::ZERO).build();
    let mut resp = see_other("/admin");
    if let Ok(v) = HeaderValue::from_str(&gone.to_string()) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

fn list(s: &str) -> Vec<String> {
    s.split([',', ' ', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// A percent field: a number 0–100, or the field's error.
fn percent(form: &CsrfForm, field: &str, errors: &mut HashMap<String, String>) -> u8 {
    match form.get(field).trim().parse::<u8>() {
        Ok(p) if p <= 100 => p,
        _ => {
            errors.insert(field.to_string(), "must be a whole number between 0 and 100".into());
            0
        }
    }
}

/// Saves the rollout flag from its form.
pub async fn save_flag(State(st): State<AppState>, ctx: PageCtx, jar: CookieJar, form: CsrfForm) -> Response {
    let Some(who) = operator(&st, &jar).await else {
        return login_page(&ctx, StatusCode::UNAUTHORIZED, FormErrors::default());
    };
    let typed = FlagForm {
        enabled: form.opt("enabled").is_some(),
        countries: form.get("countries"),
        percent: form.get("percent"),
        merchants: form.get("merchants"),
        holdout_percent: form.get("holdout_percent"),
    };
    let mut errors = HashMap::new();
    let flag = BuyButtonFlag {
        enabled: typed.enabled,
        countries: list(&typed.countries).into_iter().map(|c| c.to_uppercase()).collect(),
        percent: percent(&form, "percent", &mut errors),
        merchants: Some(list(&typed.merchants)).filter(|m| !m.is_empty()),
        holdout_percent: percent(&form, "holdout_percent", &mut errors),
    };
    let result = if errors.is_empty() {
        st.services.set_buy_button_flag(&who, flag).await
    } else {
        Err(Error::Validation(errors.into_iter().map(|(f, m)| buyline_core::FieldError::new(&f, &m)).collect()))
    };
    match result {
        Ok(_) => see_other("/admin#rollout"),
        Err(e) => match form_errors(&e) {
            Some(errors) => dashboard(&st, &ctx, &who, "", Shown { flag: Some(typed), ..Shown::none() }, errors).await,
            None => error_page(&ctx, e),
        },
    }
}

/// The kill switch: Buy off everywhere, once the operator ticked the confirmation.
pub async fn kill_switch(State(st): State<AppState>, ctx: PageCtx, jar: CookieJar, form: CsrfForm) -> Response {
    let Some(who) = operator(&st, &jar).await else {
        return login_page(&ctx, StatusCode::UNAUTHORIZED, FormErrors::default());
    };
    if form.opt("confirm").as_deref() != Some("yes") {
        let errors = FormErrors(HashMap::from([(
            "confirm".to_string(),
            "Tick the box to confirm: this removes Buy for every shopper at once.".to_string(),
        )]));
        return dashboard(&st, &ctx, &who, "", Shown::none(), errors).await;
    }
    let result = async {
        let mut flag = st.services.buy_button_flag().await?;
        flag.enabled = false;
        st.services.set_buy_button_flag(&who, flag).await
    }
    .await;
    match result {
        Ok(_) => see_other("/admin#rollout"),
        Err(e) => error_page(&ctx, e),
    }
}

/// Saves the fee per merchant kind, and adds or changes one per-merchant override.
pub async fn save_fees(State(st): State<AppState>, ctx: PageCtx, jar: CookieJar, form: CsrfForm) -> Response {
    let Some(who) = operator(&st, &jar).await else {
        return login_page(&ctx, StatusCode::UNAUTHORIZED, FormErrors::default());
    };
    let mut errors = HashMap::new();
    let mut typed = HashMap::new();
    let current = match st.services.fee_policy().await {
        Ok(p) => p,
        Err(e) => return error_page(&ctx, e),
    };
    let mut policy = FeePolicy { kinds: Default::default(), merchants: current.merchants.clone() };
    for k in KINDS {
        let v = form.get(&format!("kind_{k}"));
        match v.trim().parse::<u32>() {
            Ok(bps) if bps <= 10_000 => {
                policy.kinds.insert(k.to_string(), bps);
            }
            _ => {
                errors.insert(format!("kind_{k}"), "must be a whole number of basis points, 0 to 10000".to_string());
            }
        }
        typed.insert(k.to_string(), v);
    }
    let (om, ob) = (form.get("override_merchant").trim().to_string(), form.get("override_bps").trim().to_string());
    if !om.is_empty() || !ob.is_empty() {
        match ob.parse::<u32>() {
            Ok(bps) if bps <= 10_000 && !om.is_empty() => {
                policy.merchants.insert(om.clone(), bps);
            }
            _ if om.is_empty() => {
                errors.insert("override_merchant".into(), "name the merchant (mer_…) the override is for".into());
            }
            _ => {
                errors.insert("override_bps".into(), "must be a whole number of basis points, 0 to 10000".into());
            }
        }
    }
    let result = if errors.is_empty() {
        st.services.set_fee_policy(&who, policy).await.map(|_| ())
    } else {
        Err(Error::Validation(errors.into_iter().map(|(f, m)| buyline_core::FieldError::new(&f, &m)).collect()))
    };
    match result {
        Ok(()) => see_other("/admin#fees"),
        Err(e) => match form_errors(&e) {
            Some(mut errors) => {
                // A merchant id that names no merchant belongs beside the merchant field.
                if let Some(m) = errors.0.remove("override_bps").filter(|m| m.contains("not a merchant")) {
                    errors.0.insert("override_merchant".into(), m);
                }
                let shown = Shown { kinds: typed, override_merchant: om, override_bps: ob, ..Shown::none() };
                dashboard(&st, &ctx, &who, "", shown, errors).await
            }
            None => error_page(&ctx, e),
        },
    }
}

/// Removes one per-merchant fee override.
pub async fn remove_override(
    State(st): State<AppState>,
    ctx: PageCtx,
    jar: CookieJar,
    Path(merchant_id): Path<String>,
    _form: CsrfForm,
) -> Response {
    let Some(who) = operator(&st, &jar).await else {
        return login_page(&ctx, StatusCode::UNAUTHORIZED, FormErrors::default());
    };
    let result = async {
        let mut policy = st.services.fee_policy().await?;
        if policy.merchants.remove(&merchant_id).is_none() {
            return Err(Error::NotFound("fee override"));
        }
        st.services.set_fee_policy(&who, policy).await
    }
    .await;
    match result {
        Ok(_) => see_other("/admin#fees"),
        Err(e) => error_page(&ctx, e),
    }
}

/// One merchant: its fee, its newest orders.
pub async fn merchant(State(st): State<AppState>, ctx: PageCtx, jar: CookieJar, Path(id): Path<String>) -> Response {
    let Some(who) = operator(&st, &jar).await else {
        return login_page(&ctx, StatusCode::UNAUTHORIZED, FormErrors::default());
    };
    let loaded = async {
        let o = st.services.merchant_overview(&who, &id).await?;
        let fees = st.services.fee_policy().await?;
        Ok::<_, Error>((o, fees))
    }
    .await;
    match loaded {
        Ok((o, fees)) => {
            let fee_bps = fees.bps_for(&o.merchant);
            let orders = o
                .orders
                .iter()
                .map(|v| {
                    (
                        v["id"].as_str().unwrap_or("").to_string(),
                        v["created_at"].as_str().unwrap_or("").get(..16).unwrap_or("").replace('T', " "),
                        v["status"].as_str().unwrap_or("").to_string(),
                        amount(
                            v["totals"]["total"].as_i64().unwrap_or(0),
                            v["totals"]["currency"].as_str().unwrap_or(""),
                        ),
                    )
                })
                .collect();
            let balances =
                o.balances.iter().map(|b| (amount(b.balance, &b.currency), amount(b.paid_out, &b.currency))).collect();
            let payouts = o
                .payouts
                .iter()
                .map(|p| (amount(p.amount, &p.currency), p.created_at.get(..16).unwrap_or("").replace('T', " ")))
                .collect();
            let funnel_posts = o.funnel_posts.iter().map(|p| (p.id.clone(), p.text.clone())).collect();
            ctx.render(
                StatusCode::OK,
                MerchantPage { ctx: &ctx, merchant: o.merchant, fee_bps, orders, balances, payouts, funnel_posts },
            )
        }
        Err(e) => error_page(&ctx, e),
    }
}

/// Pays every merchant's positive balance now (or the one named): `POST /admin/payouts`.
pub async fn run_payouts(State(st): State<AppState>, ctx: PageCtx, jar: CookieJar, form: CsrfForm) -> Response {
    let Some(who) = operator(&st, &jar).await else {
        return login_page(&ctx, StatusCode::UNAUTHORIZED, FormErrors::default());
    };
    let merchant_id = form.opt("merchant_id");
    let input = buyline_core::service::PayoutInput { merchant_id: merchant_id.clone() };
    match st.services.create_payouts(&who, input).await {
        Ok(paid) => {
            let notice = match paid.data.len() {
                0 => "Nothing to pay: no merchant has a positive balance outside the refund window.".to_string(),
                1 => "1 payout paid.".to_string(),
                n => format!("{n} payouts paid."),
            };
            let shown = Shown { notice: Some(notice), ..Shown::none() };
            dashboard(&st, &ctx, &who, "", shown, FormErrors::default()).await
        }
        Err(e) => match form_errors(&e) {
            Some(errors) => {
                let shown = Shown { override_merchant_for_payout: merchant_id.unwrap_or_default(), ..Shown::none() };
                dashboard(&st, &ctx, &who, "", shown, errors).await
            }
            None => error_page(&ctx, e),
        },
    }
}

#[derive(Deserialize, Default)]
pub struct FunnelQuery {
    post_id: Option<String>,
}

/// The form that opens any post's funnel by its id.
pub async fn find_funnel(
    State(st): State<AppState>,
    ctx: PageCtx,
    jar: CookieJar,
    Query(q): Query<FunnelQuery>,
) -> Response {
    if operator(&st, &jar).await.is_none() {
        return login_page(&ctx, StatusCode::UNAUTHORIZED, FormErrors::default());
    }
    let id = q.post_id.unwrap_or_default().trim().to_string();
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return error_page(&ctx, Error::NotFound("post"));
    }
    see_other(&format!("/admin/funnel/{id}"))
}

/// Any post's funnel, as the operator sees it.
pub async fn funnel(State(st): State<AppState>, ctx: PageCtx, jar: CookieJar, Path(post_id): Path<String>) -> Response {
    let Some(who) = operator(&st, &jar).await else {
        return login_page(&ctx, StatusCode::UNAUTHORIZED, FormErrors::default());
    };
    super::funnel::render(&st, &ctx, &who, &post_id, "/admin".into(), "← Operator console").await
}
