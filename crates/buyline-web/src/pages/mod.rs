//! Server-rendered pages. Mobile-first HTML that works without JavaScript. Every page calls
//! the same core services as the API. Forms carry a CSRF token bound to the browser's
//! session (or, before log-in, its pre-session cookie; see [`crate::csrf`]), show errors
//! beside their fields and keep what the user typed. Every redirect goes through
//! [`redirect`].

mod admin;
mod buy;
mod campaigns;
mod cart;
mod discovery;
mod feed;
mod funnel;
mod merchant;
mod product;
pub mod redirect;
mod session;
mod settings;
mod shop;
mod uploads;
pub mod view;

use crate::csrf::{Binding, PRE_SESSION_COOKIE};
use crate::extract::SESSION_COOKIE;
use crate::state::AppState;
use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use buyline_core::model::Account;
use buyline_core::{Error, FieldError, Principal};
use redirect::see_other;
use std::collections::HashMap;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(feed::home))
        .route("/compose", post(feed::compose))
        .route("/posts/{id}", get(feed::thread))
        .route("/u/{handle}", get(feed::profile))
        .route("/u/{handle}/follow", post(feed::follow))
        .route("/u/{handle}/unfollow", post(feed::unfollow))
        .route("/search", get(discovery::search_page))
        .route("/hashtag/{tag}", get(discovery::hashtag_page))
        .route("/notifications", get(discovery::notifications_page))
        .route("/p/{id}", get(product::product_page))
        .route("/p/{id}/image.svg", get(product::product_image))
        .route("/p/{id}/buy", get(product::product_buy_sheet).post(product::product_buy))
        .route("/buy/{post_id}", get(buy::buy_sheet).post(buy::place))
        .route("/orders", get(buy::orders_page))
        .route("/orders/{id}", get(buy::order_page))
        .route("/orders/{id}/return", get(buy::order_return))
        .route("/orders/{id}/downloads/{line}", post(buy::fresh_download))
        .route("/test-processor/challenge/{id}", get(buy::challenge_page).post(buy::challenge_submit))
        .route("/connect/{handle}", get(cart::connect_page).post(cart::connect))
        .route("/cart", get(cart::cart_page))
        .route("/cart/{merchant_id}/items/{item_id}/delete", post(cart::remove_item))
        .route("/cart/{merchant_id}/checkout", post(cart::checkout_cart))
        .route("/checkouts/{id}", get(cart::checkout_sheet).post(cart::complete))
        .route("/settings/links/{merchant_id}/delete", post(cart::unlink_from_settings))
        .route("/settings", get(settings::settings))
        .route("/settings/cards", post(settings::add_card))
        .route("/settings/cards/{id}/delete", post(settings::delete_card))
        .route("/settings/addresses", post(settings::add_address))
        .route("/settings/addresses/{id}/delete", post(settings::delete_address))
        .route("/settings/export", get(settings::export))
        .route("/settings/delete", post(settings::delete_account))
        .route("/merchant", get(merchant::merchant_home))
        .route("/merchant/open", post(shop::open_shop))
        .route("/merchant/products", post(shop::create_product))
        .route("/merchant/products/new", get(shop::new_product))
        .route("/merchant/products/{id}", get(shop::edit_product).post(shop::update_product))
        .route("/merchant/products/{id}/variants/{vid}", post(shop::update_variant))
        .route("/merchant/products/{id}/archive", post(shop::archive_product))
        .route("/merchant/posts", post(shop::compose))
        .route("/merchant/campaigns", get(campaigns::campaigns_page).post(campaigns::create_campaign))
        .route("/merchant/campaigns/{id}/status", post(campaigns::set_status))
        .route("/merchant/webhook", post(merchant::save_webhook))
        .route("/merchant/cart", post(merchant::save_cart_settings))
        .route("/merchant/terms", post(merchant::save_terms))
        .route("/merchant/webhook_secret/rotate", post(merchant::rotate_secret))
        .route("/merchant/webhook_deliveries/{id}/retry", post(merchant::replay))
        .route("/merchant/orders/{id}", get(merchant::merchant_order))
        .route("/merchant/funnel/{post_id}", get(funnel::funnel_page))
        .route("/merchant/orders/{id}/{action}", post(merchant::order_action))
        .route("/admin", get(admin::admin_home))
        .route("/admin/login", post(admin::log_in))
        .route("/admin/logout", post(admin::log_out))
        .route("/admin/flag", post(admin::save_flag))
        .route("/admin/kill", post(admin::kill_switch))
        .route("/admin/fees", post(admin::save_fees))
        .route("/admin/fees/overrides/{merchant_id}/delete", post(admin::remove_override))
        .route("/admin/merchants/{id}", get(admin::merchant))
        .route("/admin/payouts", post(admin::run_payouts))
        .route("/admin/funnel", get(admin::find_funnel))
        .route("/admin/funnel/{post_id}", get(admin::funnel))
        .route("/merchant/products/{id}/uploads", get(uploads::uploads_page))
        // Uploads are limited by the blob store's limits as they stream, not by the form limit.
        .route(
            "/merchant/products/{id}/image",
            post(uploads::upload_image).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(
            "/merchant/products/{id}/file",
            post(uploads::upload_file).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/signup", get(session::signup_form).post(session::signup))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/problems/{code}", get(problem_page))
        .route(
            "/static/app.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css")], include_str!("../../static/app.css")) }),
        )
        .route(
            "/static/app.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], include_str!("../../static/app.js")) }),
        )
        .fallback(not_found)
}

/// Who is looking at the page, and the CSRF token their forms carry.
pub struct PageCtx {
    pub viewer: Option<Account>,
    pub csrf: String,
    /// The viewer's unread notifications, for the header.
    pub unread: i64,
    /// A pre-session id for a browser that had neither a session nor one yet; sent with
    /// the response as its cookie.
    new_pre_session: Option<String>,
    secure: bool,
}

impl PageCtx {
    pub fn principal(&self) -> Option<Principal> {
        self.viewer.clone().map(Principal::Shopper)
    }

    /// The page, with the pre-session cookie set if this browser had none.
    pub fn render<T: Template>(&self, status: StatusCode, page: T) -> Response {
        match page.render() {
            Ok(html) => {
                let mut resp = (status, Html(html)).into_response();
                if let Some(pre) = &self.new_pre_session {
                    let c = cookie(PRE_SESSION_COOKIE, pre.clone(), self.secure);
                    if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
                        resp.headers_mut().append(header::SET_COOKIE, v);
                    }
                }
                resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                resp
            }
            Err(e) => {
                tracing::error!(error = %e, "template failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on our side.").into_response()
            }
        }
    }
}

pub fn cookie(name: &'static str, value: String, secure: bool) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(time_days(30))
        .build()
}

fn time_days(d: i64) -> cookie::time::Duration {
    cookie::time::Duration::days(d)
}

impl FromRequestParts<AppState> for PageCtx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        let viewer = match jar.get(SESSION_COOKIE) {
            Some(c) => state.services.session_account(c.value()).await.unwrap_or(None),
            None => None,
        };
        let unread = match &viewer {
            Some(v) => state.services.unread_notifications(v).await.unwrap_or(0),
            None => 0,
        };
        let (csrf, new_pre_session) = match Binding::of(&jar) {
            Some(b) => (state.csrf.token(b), None),
            None => {
                let pre = buyline_core::ids::new_secret("pre");
                (state.csrf.token(Binding::PreSession(&pre)), Some(pre))
            }
        };
        Ok(PageCtx { viewer, csrf, unread, new_pre_session, secure: state.secure_cookies })
    }
}

/// A submitted form whose CSRF field is the token of the cookies it came with. Fields arrive as strings so a form
/// with bad input can be shown again exactly as typed.
pub struct CsrfForm(pub HashMap<String, String>);

impl CsrfForm {
    pub fn get(&self, k: &str) -> String {
        self.0.get(k).cloned().unwrap_or_default()
    }

    pub fn opt(&self, k: &str) -> Option<String> {
        self.0.get(k).map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }

    /// What a form shows again after an error: everything typed but the card number, the
    /// CVC and the one-time tokens.
    pub fn kept(&self) -> HashMap<String, String> {
        self.0
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "card_number" | "card_cvc" | "csrf" | "attempt"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The address fields every address form names alike.
    pub fn address(&self) -> buyline_core::checkout::Address {
        buyline_core::checkout::Address {
            name: self.get("name"),
            line1: self.get("line1"),
            line2: self.opt("line2"),
            city: self.get("city"),
            region: self.get("region"),
            postal_code: self.get("postal_code"),
            country: self.get("country"),
            phone: self.opt("phone"),
        }
    }
}

impl FromRequest<AppState> for CsrfForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let axum::Form(fields) = axum::Form::<HashMap<String, String>>::from_request(req, state)
            .await
            .map_err(|e| (e.status(), "That form could not be read. Go back and try again.").into_response())?;
        let sent = fields.get("csrf").map(String::as_str).unwrap_or("");
        if !state.csrf.verify(&headers, sent) {
            return Err((
                StatusCode::FORBIDDEN,
                Html(
                    "<!doctype html><meta name=viewport content='width=device-width'><title>Form expired</title>\
                      <p>This form expired or came from another site. Go back, reload the page and try again.</p>",
                ),
            )
                .into_response());
        }
        Ok(CsrfForm(fields))
    }
}

/// Field errors by field name, for showing each beside its field.
#[derive(Default)]
pub struct FormErrors(pub HashMap<String, String>);

impl FormErrors {
    pub fn from_error(e: &Error) -> Option<Self> {
        let list: &[FieldError] = match e {
            Error::Validation(list) => list,
            Error::Conflict { errors, .. } if !errors.is_empty() => errors,
            _ => return None,
        };
        let mut map = HashMap::new();
        for fe in list {
            map.entry(fe.field.clone()).or_insert_with(|| fe.message.clone());
        }
        Some(FormErrors(map))
    }

    pub fn get(&self, field: &str) -> &str {
        self.0.get(field).map(String::as_str).unwrap_or("")
    }

    pub fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    /// Messages for fields the form has no place for.
    pub fn others(&self, shown: &[&str]) -> Vec<String> {
        let mut v: Vec<String> =
            self.0.iter().filter(|(k, _)| !shown.contains(&k.as_str())).map(|(k, m)| format!("{k}: {m}")).collect();
        v.sort();
        v
    }
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    pub ctx: &'a PageCtx,
    pub title: String,
    pub message: String,
}

/// A page for errors that are not about a form field.
pub fn error_page(ctx: &PageCtx, e: Error) -> Response {
    let (status, title, message) = match &e {
        Error::NotFound(what) => (StatusCode::NOT_FOUND, "Not found".to_string(), format!("There is no such {what}.")),
        Error::Unauthorized => return see_other("/login"),
        Error::Forbidden(m) | Error::NotAvailable(m) => (StatusCode::FORBIDDEN, "Not allowed".into(), m.clone()),
        Error::Conflict { message, .. } => (StatusCode::CONFLICT, "Conflict".into(), message.clone()),
        Error::Validation(list) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Please check your input".into(),
            list.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; "),
        ),
        Error::OutOfStock(m) => (StatusCode::CONFLICT, "Sold out".into(), m.clone()),
        Error::Payment { message, .. } => (StatusCode::PAYMENT_REQUIRED, "Payment failed".into(), message.clone()),
        Error::RateLimited { retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts".into(),
            match retry_after.div_ceil(60) {
                1 => "Too many attempts. Try again in a minute.".to_string(),
                m => format!("Too many attempts. Try again in {m} minutes."),
            },
        ),
        Error::IdempotencyMismatch => {
            (StatusCode::UNPROCESSABLE_ENTITY, "Already submitted".into(), "That form was already sent.".into())
        }
        Error::Internal(cause) => {
            tracing::error!(%cause, "internal error");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong".into(),
                "It has been logged. Please try again.".into(),
            )
        }
    };
    ctx.render(status, MessagePage { ctx, title, message })
}

async fn not_found(ctx: PageCtx) -> Response {
    error_page(&ctx, Error::NotFound("page"))
}

async fn problem_page(ctx: PageCtx, axum::extract::Path(code): axum::extract::Path<String>) -> Response {
    match crate::error::CODES.iter().find(|c| c.0 == code) {
        Some((code, status, title, text)) => ctx.render(
            StatusCode::OK,
            MessagePage { ctx: &ctx, title: format!("{title} ({status} {code})"), message: text.to_string() },
        ),
        None => error_page(&ctx, Error::NotFound("problem type")),
    }
}
