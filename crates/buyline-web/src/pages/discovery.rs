//! Search, hashtag pages and notifications.

use super::view::{url_segment, PostView};
use super::{error_page, FormErrors, PageCtx};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use buyline_core::discovery::AccountSummary;
use buyline_core::model::AccountKind;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct SearchParams {
    q: Option<String>,
    cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "search.html")]
pub struct SearchPage<'a> {
    pub ctx: &'a PageCtx,
    pub q: String,
    pub q_url: String,
    pub searched: bool,
    pub accounts: Vec<AccountSummary>,
    pub follow_buttons: bool,
    pub follow_next: String,
    pub items: Vec<PostView>,
    pub next_cursor: Option<String>,
    pub errors: FormErrors,
}

#[derive(Template)]
#[template(path = "hashtag.html")]
pub struct HashtagPage<'a> {
    pub ctx: &'a PageCtx,
    pub tag: String,
    pub tag_url: String,
    pub items: Vec<PostView>,
    pub next_cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "notifications.html")]
pub struct NotificationsPage<'a> {
    pub ctx: &'a PageCtx,
    /// Text, link, age, unread.
    pub notes: Vec<(String, String, String, bool)>,
    pub next_cursor: Option<String>,
}

/// `/search?q=`: a form, then the accounts and posts that match.
pub async fn search_page(State(st): State<AppState>, ctx: PageCtx, Query(p): Query<SearchParams>) -> Response {
    let q = p.q.unwrap_or_default();
    let mut page = SearchPage {
        ctx: &ctx,
        q_url: url_segment(&q),
        q: q.clone(),
        searched: false,
        accounts: vec![],
        follow_buttons: false,
        follow_next: String::new(),
        items: vec![],
        next_cursor: None,
        errors: FormErrors::default(),
    };
    if q.trim().is_empty() {
        return ctx.render(StatusCode::OK, page);
    }
    let result = async {
        let posts = st.services.search_posts(ctx.viewer.as_ref(), Some(&q), p.cursor.as_deref(), None).await?;
        let accounts = match p.cursor {
            Some(_) => vec![],
            None => st.services.search_accounts(Some(&q), None, Some(10)).await?.data,
        };
        Ok::<_, buyline_core::Error>((posts, accounts))
    }
    .await;
    match result {
        Ok((posts, accounts)) => {
            page.searched = true;
            page.accounts = accounts;
            page.items = posts.data.iter().map(PostView::item).collect();
            page.next_cursor = posts.next_cursor;
            ctx.render(StatusCode::OK, page)
        }
        Err(e) => match FormErrors::from_error(&e) {
            Some(errors) => {
                page.errors = errors;
                ctx.render(StatusCode::UNPROCESSABLE_ENTITY, page)
            }
            None => error_page(&ctx, e),
        },
    }
}

/// `/hashtag/{tag}`: the tag's posts, newest first.
pub async fn hashtag_page(
    State(st): State<AppState>,
    ctx: PageCtx,
    Path(tag): Path<String>,
    Query(p): Query<SearchParams>,
) -> Response {
    match st.services.hashtag_posts(ctx.viewer.as_ref(), &tag, p.cursor.as_deref(), None).await {
        Ok(page) => {
            let tag = tag.trim_start_matches(['#', '＃']).to_string();
            ctx.render(
                StatusCode::OK,
                HashtagPage {
                    ctx: &ctx,
                    tag_url: url_segment(&tag),
                    tag,
                    items: page.data.iter().map(PostView::item).collect(),
                    next_cursor: page.next_cursor,
                },
            )
        }
        Err(e) => error_page(&ctx, e),
    }
}

/// `/notifications`: newest first; viewing the first page marks them all read.
pub async fn notifications_page(
    State(st): State<AppState>,
    mut ctx: PageCtx,
    Query(p): Query<SearchParams>,
) -> Response {
    let Some(who) = ctx.principal() else { return super::redirect::to_login("/notifications") };
    let unread = if p.cursor.is_none() { ctx.unread } else { 0 };
    if unread > 0 {
        // This page reads them: its own header counts none.
        ctx.unread = 0;
    }
    match st.services.notifications_page(&who, p.cursor.as_deref(), None).await {
        Ok(page) => {
            if unread > 0 {
                if let Some(v) = &ctx.viewer {
                    if let Err(e) = st.services.mark_notifications_read(v).await {
                        tracing::warn!(error = %e, "could not mark notifications read");
                    }
                }
            }
            // Notifications are marked read all at once, so the unread ones are the newest.
            let notes = page
                .data
                .into_iter()
                .enumerate()
                .map(|(i, n)| (n.text, n.link, super::view::ago(n.created_at), (i as i64) < unread))
                .collect();
            ctx.render(StatusCode::OK, NotificationsPage { ctx: &ctx, notes, next_cursor: page.next_cursor })
        }
        Err(e) => error_page(&ctx, e),
    }
}
