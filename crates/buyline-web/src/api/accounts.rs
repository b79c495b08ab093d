//! Accounts, sessions and follows.

use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiQuery, Auth, MaybeAuth};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use buyline_core::model::{Account, Page, Profile, TimelineItem};
use buyline_core::service::{LoginInput, SignUpInput};
use buyline_core::Error;
use serde::{Deserialize, Serialize};

#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionCreated {
    pub account: Account,
    /// Bearer token for `Authorization: Bearer …`.
    pub token: String,
}

/// `?limit=&cursor=` of every list (SPEC §3).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page; 20 if omitted.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Sign up.
#[utoipa::path(post, path = "/accounts", tag = "accounts", request_body = SignUpInput,
    responses((status = 201, body = SessionCreated), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_account(
    State(st): State<AppState>,
    ApiJson(input): ApiJson<SignUpInput>,
) -> ApiResult<(StatusCode, Json<SessionCreated>)> {
    let (account, token) = st.services.sign_up(input).await?;
    Ok((StatusCode::CREATED, Json(SessionCreated { account, token })))
}

/// Log in with handle or e-mail and password.
#[utoipa::path(post, path = "/sessions", tag = "accounts", request_body = LoginInput,
    responses((status = 201, body = SessionCreated), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn create_session(
    State(st): State<AppState>,
    axum::extract::ConnectInfo(client): axum::extract::ConnectInfo<std::net::SocketAddr>,
    ApiJson(input): ApiJson<LoginInput>,
) -> ApiResult<(StatusCode, Json<SessionCreated>)> {
    let ip = Some(client.ip().to_string());
    let (account, token) = st.services.log_in_from(input, ip.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(SessionCreated { account, token })))
}

/// Log out: ends the session whose token authenticates this request.
#[utoipa::path(delete, path = "/sessions", tag = "accounts", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem)))]
pub async fn delete_session(State(st): State<AppState>, headers: HeaderMap) -> ApiResult<StatusCode> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(Error::Unauthorized)?;
    st.services.session_account(token).await?.ok_or(Error::Unauthorized)?;
    st.services.log_out(token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in account.
#[utoipa::path(get, path = "/me", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = Account), (status = 401, body = Problem)))]
pub async fn get_me(Auth(who): Auth) -> ApiResult<Json<Account>> {
    Ok(Json(who.account()?.clone()))
}

/// A profile.
#[utoipa::path(get, path = "/accounts/{handle}", tag = "accounts", security((), ("bearer" = [])),
    responses((status = 200, body = Profile), (status = 404, body = Problem)))]
pub async fn get_account(
    State(st): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path(handle): Path<String>,
) -> ApiResult<Json<Profile>> {
    let viewer = who.as_ref().and_then(|w| w.account().ok());
    let mut p = st.services.profile(&handle, viewer).await?;
    if viewer.map(|v| v.id != p.account.id).unwrap_or(true) {
        p.account.email = None;
    }
    Ok(Json(p))
}

/// An account's posts, newest first.
#[utoipa::path(get, path = "/accounts/{handle}/posts", tag = "posts", params(PageQuery), security((), ("bearer" = [])),
    responses((status = 200, body = Page<TimelineItem>), (status = 404, body = Problem)))]
pub async fn list_account_posts(
    State(st): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path(handle): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<TimelineItem>>> {
    let viewer = who.as_ref().and_then(|w| w.account().ok());
    let profile = st.services.profile(&handle, viewer).await?;
    Ok(Json(st.services.profile_posts(&profile.account, viewer, q.cursor.as_deref(), q.limit).await?))
}

/// Follow an account.
#[utoipa::path(post, path = "/accounts/{handle}/follow", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = Profile), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn follow_account(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(handle): Path<String>,
) -> ApiResult<Json<Profile>> {
    let mut p = st.services.follow(&who, &handle).await?;
    p.account.email = None;
    Ok(Json(p))
}

/// Unfollow an account.
#[utoipa::path(delete, path = "/accounts/{handle}/follow", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = Profile), (status = 404, body = Problem)))]
pub async fn unfollow_account(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(handle): Path<String>,
) -> ApiResult<Json<Profile>> {
    let mut p = st.services.unfollow(&who, &handle).await?;
    p.account.email = None;
    Ok(Json(p))
}
