//! Home timeline with composer, threads, profiles, follows.

use super::redirect::{see_other, to_login};
use super::view::PostView;
use super::{error_page, CsrfForm, FormErrors, PageCtx};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use buyline_core::discovery::AccountSummary;
use buyline_core::model::{AccountKind, Profile};
use buyline_core::service::PostInput;
use buyline_core::Error;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Cursor {
    cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage<'a> {
    pub ctx: &'a PageCtx,
    pub items: Vec<PostView>,
    pub next_cursor: Option<String>,
    pub text: String,
    pub errors: FormErrors,
    /// Who to follow, shown when the first page is empty or short.
    pub accounts: Vec<AccountSummary>,
    pub follow_buttons: bool,
    pub follow_next: String,
}

/// A first page with fewer organic posts than this also shows who to follow.
const SHORT_PAGE: usize = 5;

#[derive(Template)]
#[template(path = "thread.html")]
pub struct ThreadPage<'a> {
    pub ctx: &'a PageCtx,
    pub post: PostView,
    pub replies: Vec<PostView>,
    pub text: String,
    pub errors: FormErrors,
}

#[derive(Template)]
#[template(path = "profile.html")]
pub struct ProfilePage<'a> {
    pub ctx: &'a PageCtx,
    pub profile: Profile,
    pub is_self: bool,
    pub items: Vec<PostView>,
    pub next_cursor: Option<String>,
}

async fn home_page(st: &AppState, ctx: &PageCtx, cursor: Option<&str>, text: String, errors: FormErrors) -> Response {
    let page = match &ctx.viewer {
        Some(v) => st.services.home_timeline(v, cursor, None).await,
        None => st.services.public_timeline(cursor, None).await,
    };
    match page {
        Ok(page) => {
            let organic = page.data.iter().filter(|i| !i.promoted).count();
            let accounts = match (&ctx.principal(), cursor) {
                (Some(who), None) if organic < SHORT_PAGE => st.services.suggestions(who).await.unwrap_or_default(),
                _ => vec![],
            };
            let status = if errors.0.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
            ctx.render(
                status,
                HomePage {
                    ctx,
                    items: page.data.iter().map(PostView::item).collect(),
                    next_cursor: page.next_cursor,
                    text,
                    errors,
                    accounts,
                    follow_buttons: true,
                    follow_next: "/".into(),
                },
            )
        }
        Err(e) => error_page(ctx, e),
    }
}

pub async fn home(State(st): State<AppState>, ctx: PageCtx, Query(q): Query<Cursor>) -> Response {
    home_page(&st, &ctx, q.cursor.as_deref(), String::new(), FormErrors::default()).await
}

pub async fn compose(State(st): State<AppState>, ctx: PageCtx, form: CsrfForm) -> Response {
    let Some(who) = ctx.principal() else { return see_other("/login") };
    let reply_to = form.opt("reply_to");
    let input = PostInput { text: form.get("text"), reply_to: reply_to.clone(), product_id: None };
    match st.services.create_post(&who, input).await {
        Ok(post) => match reply_to {
            Some(parent) => see_other(&format!("/posts/{parent}#{}", post.id)),
            None => see_other("/"),
        },
        Err(e) => match (FormErrors::from_error(&e), reply_to) {
            (Some(errors), Some(parent)) => thread_page(&st, &ctx, &parent, form.get("text"), errors).await,
            (Some(errors), None) => home_page(&st, &ctx, None, form.get("text"), errors).await,
            (None, _) => error_page(&ctx, e),
        },
    }
}

async fn thread_page(st: &AppState, ctx: &PageCtx, id: &str, text: String, errors: FormErrors) -> Response {
    match st.services.post_thread(id, ctx.viewer.as_ref()).await {
        Ok((item, replies)) => {
            let status = if errors.0.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
            ctx.render(
                status,
                ThreadPage {
                    ctx,
                    post: PostView::item(&item),
                    replies: replies.iter().map(PostView::of).collect(),
                    text,
                    errors,
                },
            )
        }
        Err(e) => error_page(ctx, e),
    }
}

pub async fn thread(State(st): State<AppState>, ctx: PageCtx, Path(id): Path<String>) -> Response {
    thread_page(&st, &ctx, &id, String::new(), FormErrors::default()).await
}

pub async fn profile(
    State(st): State<AppState>,
    ctx: PageCtx,
    Path(handle): Path<String>,
    Query(q): Query<Cursor>,
) -> Response {
    let result = async {
        let profile = st.services.profile(&handle, ctx.viewer.as_ref()).await?;
        let page = st.services.profile_posts(&profile.account, ctx.viewer.as_ref(), q.cursor.as_deref(), None).await?;
        Ok::<_, Error>((profile, page))
    }
    .await;
    match result {
        Ok((profile, page)) => {
            let is_self = ctx.viewer.as_ref().is_some_and(|v| v.id == profile.account.id);
            ctx.render(
                StatusCode::OK,
                ProfilePage {
                    ctx: &ctx,
                    profile,
                    is_self,
                    items: page.data.iter().map(PostView::item).collect(),
                    next_cursor: page.next_cursor,
                },
            )
        }
        Err(e) => error_page(&ctx, e),
    }
}

pub async fn follow(State(st): State<AppState>, ctx: PageCtx, Path(handle): Path<String>, f: CsrfForm) -> Response {
    let Some(who) = ctx.principal() else { return to_login(&format!("/u/{handle}")) };
    match st.services.follow(&who, &handle).await {
        // "Who to follow" on the home page and search results come back where they were.
        Ok(_) if f.opt("next").is_some() => see_other(&f.get("next")),
        Ok(p) => see_other(&format!("/u/{}", p.account.handle)),
        Err(e) => error_page(&ctx, e),
    }
}

pub async fn unfollow(State(st): State<AppState>, ctx: PageCtx, Path(handle): Path<String>, _f: CsrfForm) -> Response {
    let Some(who) = ctx.principal() else { return see_other("/login") };
    match st.services.unfollow(&who, &handle).await {
        Ok(p) => see_other(&format!("/u/{}", p.account.handle)),
        Err(e) => error_page(&ctx, e),
    }
}
