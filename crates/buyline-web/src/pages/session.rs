//! Sign-up, log-in and log-out pages.

use super::redirect::{safe_next, see_other};
use super::{cookie, error_page, CsrfForm, FormErrors, PageCtx};
use crate::extract::SESSION_COOKIE;
use crate::state::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use buyline_core::service::{LoginInput, SignUpInput};
use buyline_core::Error;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "signup.html")]
pub struct SignupPage<'a> {
    pub ctx: &'a PageCtx,
    pub handle: String,
    pub email: String,
    pub country: String,
    pub display_name: String,
    pub errors: FormErrors,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub ctx: &'a PageCtx,
    pub login: String,
    pub next: String,
    pub failed: bool,
    pub errors: FormErrors,
}

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

pub async fn signup_form(ctx: PageCtx) -> Response {
    if ctx.viewer.is_some() {
        return see_other("/");
    }
    ctx.render(
        StatusCode::OK,
        SignupPage {
            ctx: &ctx,
            handle: String::new(),
            email: String::new(),
            country: "US".into(),
            display_name: String::new(),
            errors: FormErrors::default(),
        },
    )
}

pub async fn signup(State(st): State<AppState>, ctx: PageCtx, jar: CookieJar, form: CsrfForm) -> Response {
    let input = SignUpInput {
        handle: form.get("handle"),
        email: form.get("email"),
        password: form.get("password"),
        country: form.get("country"),
        display_name: form.opt("display_name"),
    };
    match st.services.sign_up(input).await {
        Ok((_, token)) => (jar.add(cookie(SESSION_COOKIE, token, st.secure_cookies)), see_other("/")).into_response(),
        Err(e) => match FormErrors::from_error(&e) {
            Some(errors) => ctx.render(
                StatusCode::UNPROCESSABLE_ENTITY,
                SignupPage {
                    ctx: &ctx,
                    handle: form.get("handle"),
                    email: form.get("email"),
                    country: form.get("country"),
                    display_name: form.get("display_name"),
                    errors,
                },
            ),
            None => error_page(&ctx, e),
        },
    }
}

pub async fn login_form(ctx: PageCtx, Query(q): Query<Next>) -> Response {
    if ctx.viewer.is_some() {
        return see_other(&safe_next(q.next.as_deref()));
    }
    ctx.render(
        StatusCode::OK,
        LoginPage {
            ctx: &ctx,
            login: String::new(),
            next: safe_next(q.next.as_deref()),
            failed: false,
            errors: FormErrors::default(),
        },
    )
}

pub async fn login(
    State(st): State<AppState>,
    ctx: PageCtx,
    jar: CookieJar,
    axum::extract::ConnectInfo(client): axum::extract::ConnectInfo<std::net::SocketAddr>,
    form: CsrfForm,
) -> Response {
    let next = safe_next(form.opt("next").as_deref());
    let input = LoginInput { login: form.get("login"), password: form.get("password") };
    let ip = Some(client.ip().to_string());
    match st.services.log_in_from(input, ip.as_deref()).await {
        Ok((_, token)) => (jar.add(cookie(SESSION_COOKIE, token, st.secure_cookies)), see_other(&next)).into_response(),
        Err(e @ (Error::Unauthorized | Error::Validation(_))) => {
            let failed = matches!(e, Error::Unauthorized);
            ctx.render(
                if failed { StatusCode::UNAUTHORIZED } else { StatusCode::UNPROCESSABLE_ENTITY },
                LoginPage {
                    ctx: &ctx,
                    login: form.get("login"),
                    next,
                    failed,
                    errors: FormErrors::from_error(&e).unwrap_or_default(),
                },
            )
        }
        Err(e) => error_page(&ctx, e),
    }
}

pub async fn logout(State(st): State<AppState>, jar: CookieJar, _form: CsrfForm) -> Response {
    if let Some(c) = jar.get(SESSION_COOKIE) {
        let _ = st.services.log_out(c.value()).await;
    }
    (jar.remove(axum_extra::extract::cookie::Cookie::build(SESSION_COOKIE).path("/")), see_other("/")).into_response()
}
