//! The experiment funnel of a post: the merchant's own posts and, for the operator, any.

use crate::error::{ApiResult, Problem};
use crate::extract::{ApiQuery, Auth};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use buyline_core::service::Funnel;
use serde::Deserialize;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FunnelQuery {
    /// The post (with a product) whose funnel to show. Required.
    #[param(required = true, pattern = "^post_[A-Za-z0-9]{1,60}$")]
    pub post_id: Option<String>,
}

/// A post's experiment: per arm (`buy`, `holdout`) impressions, reach, opens, orders,
/// buyers and revenue; each arm's conversion, the lift and a pooled two-proportion z-test.
/// Impressions and opens lag by about a second; orders are exact. Another merchant's post
/// is 404; a post without a product or a missing `post_id` is 422.
#[utoipa::path(get, path = "/merchant/funnel", tag = "merchants", params(FunnelQuery), security(("bearer" = [])),
    responses((status = 200, body = Funnel), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 422, body = Problem)))]
pub async fn get_merchant_funnel(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<FunnelQuery>,
) -> ApiResult<Json<Funnel>> {
    who.merchant()?;
    Ok(Json(st.services.funnel(&who, q.post_id.as_deref()).await?))
}

/// Any post's experiment, as the merchant sees its own (operator).
#[utoipa::path(get, path = "/admin/funnel", tag = "admin", params(FunnelQuery), security(("bearer" = [])),
    responses((status = 200, body = Funnel), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 422, body = Problem)))]
pub async fn get_admin_funnel(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<FunnelQuery>,
) -> ApiResult<Json<Funnel>> {
    who.operator()?;
    Ok(Json(st.services.funnel(&who, q.post_id.as_deref()).await?))
}
