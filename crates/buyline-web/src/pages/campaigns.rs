//! `/merchant/campaigns`: a shop promotes its posts, and pauses, resumes or ends campaigns,
//! without the API.

use super::redirect::{see_other, to_login};
use super::{error_page, CsrfForm, FormErrors, PageCtx};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use buyline_core::discovery::{Campaign, CampaignStatus};
use buyline_core::model::Merchant;
use buyline_core::service::{CampaignInput, CampaignUpdate};
use buyline_core::{Error, Principal};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct ShopQuery {
    m: Option<String>,
}

#[derive(Template)]
#[template(path = "campaigns.html")]
pub struct CampaignsPage<'a> {
    pub ctx: &'a PageCtx,
    pub merchant: Merchant,
    /// The shop's top-level posts with a product: id, a short text.
    pub posts: Vec<(String, String)>,
    pub campaigns: Vec<Campaign>,
    pub post_id: String,
    pub countries: String,
    pub errors: FormErrors,
}

/// The shop the signed-in owner acts for (the merchant pages' rule), `None` when there is
/// none of theirs to act for.
async fn principal(st: &AppState, ctx: &PageCtx, m: Option<&str>) -> Option<Principal> {
    super::merchant::principal(st, ctx, m).await.ok().flatten()
}

fn no_shop(ctx: &PageCtx) -> Response {
    if ctx.viewer.is_none() {
        return to_login("/merchant/campaigns");
    }
    error_page(ctx, Error::NotFound("shop"))
}

async fn page(
    st: &AppState,
    ctx: &PageCtx,
    who: &Principal,
    post_id: String,
    countries: String,
    errors: FormErrors,
) -> Response {
    let result = async {
        let merchant = who.merchant()?.clone();
        let account = who.account()?;
        let posts = st.services.profile_posts(account, None, None, Some(100)).await?;
        let campaigns = st.services.campaigns(who, None, Some(100)).await?;
        Ok::<_, Error>((merchant, posts, campaigns))
    }
    .await;
    match result {
        Ok((merchant, posts, campaigns)) => {
            let posts = posts
                .data
                .into_iter()
                .filter(|i| i.post.reply_to.is_none() && i.post.product_id.is_some())
                .map(|i| {
                    let text: String = i.post.text.chars().take(60).collect();
                    (i.post.id.clone(), text)
                })
                .collect();
            let status = if errors.0.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
            ctx.render(
                status,
                CampaignsPage { ctx, merchant, posts, campaigns: campaigns.data, post_id, countries, errors },
            )
        }
        Err(e) => error_page(ctx, e),
    }
}

pub async fn campaigns_page(State(st): State<AppState>, ctx: PageCtx, Query(q): Query<ShopQuery>) -> Response {
    match principal(&st, &ctx, q.m.as_deref()).await {
        Some(who) => page(&st, &ctx, &who, String::new(), "US".into(), FormErrors::default()).await,
        None => no_shop(&ctx),
    }
}

pub async fn create_campaign(State(st): State<AppState>, ctx: PageCtx, form: CsrfForm) -> Response {
    let Some(who) = principal(&st, &ctx, form.opt("m").as_deref()).await else { return no_shop(&ctx) };
    let typed = form.get("countries");
    let countries: Vec<String> =
        typed.split([',', ' ']).map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect();
    let input = CampaignInput { post_id: form.get("post_id"), countries };
    match st.services.create_campaign(&who, input).await {
        Ok(_) => see_other(&format!("/merchant/campaigns?m={}", who.merchant().map(|m| m.id.as_str()).unwrap_or(""))),
        Err(e) => match FormErrors::from_error(&e) {
            Some(errors) => {
                // `countries[3]` is shown beside the one countries field.
                let errors = FormErrors(
                    errors
                        .0
                        .into_iter()
                        .map(|(k, v)| if k.starts_with("countries") { ("countries".to_string(), v) } else { (k, v) })
                        .collect(),
                );
                page(&st, &ctx, &who, form.get("post_id"), typed, errors).await
            }
            None => error_page(&ctx, e),
        },
    }
}

pub async fn set_status(State(st): State<AppState>, ctx: PageCtx, Path(id): Path<String>, form: CsrfForm) -> Response {
    let Some(who) = principal(&st, &ctx, form.opt("m").as_deref()).await else { return no_shop(&ctx) };
    let Some(status) = CampaignStatus::parse(&form.get("status")) else {
        return error_page(&ctx, Error::field("status", "must be active, paused or ended"));
    };
    match st.services.update_campaign(&who, &id, CampaignUpdate { status }).await {
        Ok(_) => see_other(&format!("/merchant/campaigns?m={}", who.merchant().map(|m| m.id.as_str()).unwrap_or(""))),
        Err(e) => error_page(&ctx, e),
    }
}
