//! Campaigns (promoted posts), search, hashtags, who to follow and notifications.

use super::accounts::PageQuery;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiQuery, Auth, MaybeAuth};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use buyline_core::discovery::{AccountSummary, Campaign};
use buyline_core::model::{Page, TimelineItem};
use buyline_core::order::Notification;
use buyline_core::service::{CampaignInput, CampaignUpdate};
use serde::Deserialize;

/// `?q=&limit=&cursor=` of a search.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// 1 to 100 characters. Posts: every word must occur (hashtags count as words); any
    /// punctuation only separates words. Accounts: a prefix of the handle (`@` optional) or
    /// of a word of the display name.
    #[param(min_length = 1, max_length = 100)]
    pub q: Option<String>,
    /// Items per page; 20 if omitted.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Promote one of your own top-level posts that carries a product to shoppers in these
/// countries. Starts `active`.
#[utoipa::path(post, path = "/campaigns", tag = "campaigns", request_body = CampaignInput, security(("bearer" = [])),
    responses((status = 201, body = Campaign), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn create_campaign(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiJson(input): ApiJson<CampaignInput>,
) -> ApiResult<(StatusCode, Json<Campaign>)> {
    Ok((StatusCode::CREATED, Json(st.services.create_campaign(&who, input).await?)))
}

/// Your campaigns, newest first.
#[utoipa::path(get, path = "/campaigns", tag = "campaigns", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Campaign>), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_campaigns(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<Campaign>>> {
    Ok(Json(st.services.campaigns(&who, q.cursor.as_deref(), q.limit).await?))
}

/// Pause (`paused`), resume (`active`) or end (`ended`, final: changing an ended campaign is 409).
#[utoipa::path(patch, path = "/campaigns/{id}", tag = "campaigns", request_body = CampaignUpdate, security(("bearer" = [])),
    responses((status = 200, body = Campaign), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_campaign(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<CampaignUpdate>,
) -> ApiResult<Json<Campaign>> {
    Ok(Json(st.services.update_campaign(&who, &id, input).await?))
}

/// Posts by words and hashtags, newest first, with buy cards as in the timeline.
#[utoipa::path(get, path = "/search", tag = "discovery", params(SearchQuery), security((), ("bearer" = [])),
    responses((status = 200, body = Page<TimelineItem>), (status = 422, body = Problem)))]
pub async fn search_posts(
    State(st): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<Json<Page<TimelineItem>>> {
    let viewer = who.as_ref().and_then(|w| w.account().ok());
    Ok(Json(st.services.search_posts(viewer, q.q.as_deref(), q.cursor.as_deref(), q.limit).await?))
}

/// Accounts by handle or display name (prefix match).
#[utoipa::path(get, path = "/search/accounts", tag = "discovery", params(SearchQuery), security((), ("bearer" = [])),
    responses((status = 200, body = Page<AccountSummary>), (status = 422, body = Problem)))]
pub async fn search_accounts(
    State(st): State<AppState>,
    MaybeAuth(_who): MaybeAuth,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<Json<Page<AccountSummary>>> {
    Ok(Json(st.services.search_accounts(q.q.as_deref(), q.cursor.as_deref(), q.limit).await?))
}

/// A hashtag's posts (case-insensitive, `#` optional), newest first, with buy cards.
#[utoipa::path(get, path = "/hashtags/{tag}", tag = "discovery", params(PageQuery), security((), ("bearer" = [])),
    responses((status = 200, body = Page<TimelineItem>), (status = 422, body = Problem)))]
pub async fn list_hashtag_posts(
    State(st): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path(tag): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<TimelineItem>>> {
    let viewer = who.as_ref().and_then(|w| w.account().ok());
    Ok(Json(st.services.hashtag_posts(viewer, &tag, q.cursor.as_deref(), q.limit).await?))
}

/// Who to follow: merchants and active accounts in your country you do not follow yet.
#[utoipa::path(get, path = "/suggestions", tag = "discovery", security(("bearer" = [])),
    responses((status = 200, body = Page<AccountSummary>), (status = 403, body = Problem)))]
pub async fn list_suggestions(State(st): State<AppState>, Auth(who): Auth) -> ApiResult<Json<Page<AccountSummary>>> {
    Ok(Json(Page { data: st.services.suggestions(&who).await?, next_cursor: None }))
}

/// In-app notifications (receipts, cart answers), newest first.
#[utoipa::path(get, path = "/notifications", tag = "accounts", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Notification>), (status = 422, body = Problem)))]
pub async fn list_notifications(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<Notification>>> {
    Ok(Json(st.services.notifications_page(&who, q.cursor.as_deref(), q.limit).await?))
}
