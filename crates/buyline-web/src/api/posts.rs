//! Posts, threads and the home timeline.

use super::accounts::PageQuery;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiQuery, Auth, MaybeAuth};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use buyline_core::model::{BuyCard, Page, Post, TimelineItem};
use buyline_core::service::PostInput;
use serde::Serialize;

/// A post with its direct replies (oldest first) and, for a merchant post the viewer may
/// buy from, its buy card.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PostThread {
    #[serde(flatten)]
    pub post: Post,
    pub buy: Option<BuyCard>,
    pub product_url: Option<String>,
    pub replies: Vec<Post>,
}

/// Publish a post or a reply. A merchant (secret key) may attach one of its products.
#[utoipa::path(post, path = "/posts", tag = "posts", request_body = PostInput, security(("bearer" = [])),
    responses((status = 201, body = Post), (status = 429, body = Problem)))]
pub async fn create_post(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiJson(input): ApiJson<PostInput>,
) -> ApiResult<(StatusCode, Json<Post>)> {
    Ok((StatusCode::CREATED, Json(st.services.create_post(&who, input).await?)))
}

/// A post, its buy card and its replies.
#[utoipa::path(get, path = "/posts/{id}", tag = "posts", security((), ("bearer" = [])),
    responses((status = 200, body = PostThread), (status = 404, body = Problem)))]
pub async fn get_post(
    State(st): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<PostThread>> {
    let viewer = who.as_ref().and_then(|w| w.account().ok());
    let (item, replies) = st.services.post_thread(&id, viewer).await?;
    Ok(Json(PostThread {
        post: std::sync::Arc::unwrap_or_clone(item.post),
        buy: item.buy,
        product_url: item.product_url,
        replies,
    }))
}

/// Delete one of your posts. Replies to it stay, no longer under it.
#[utoipa::path(delete, path = "/posts/{id}", tag = "posts", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_post(State(st): State<AppState>, Auth(who): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    st.services.delete_post(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The home timeline: own posts and those of followed accounts, newest first.
#[utoipa::path(get, path = "/timeline", tag = "posts", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<TimelineItem>), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn get_timeline(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<TimelineItem>>> {
    let me = who.account()?;
    Ok(Json(st.services.home_timeline(me, q.cursor.as_deref(), q.limit).await?))
}
