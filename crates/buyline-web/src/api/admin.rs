//! Operator controls.

use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, Auth};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use buyline_core::rollout::BuyButtonFlag;

/// The Buy button rollout.
#[utoipa::path(get, path = "/admin/flags/buy_button", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = BuyButtonFlag), (status = 403, body = Problem)))]
pub async fn get_buy_button_flag(State(st): State<AppState>, Auth(who): Auth) -> ApiResult<Json<BuyButtonFlag>> {
    who.operator()?;
    Ok(Json(st.services.buy_button_flag().await?))
}

/// Change the Buy button rollout (kill switch: `enabled: false`).
#[utoipa::path(put, path = "/admin/flags/buy_button", tag = "admin", request_body = BuyButtonFlag, security(("bearer" = [])),
    responses((status = 200, body = BuyButtonFlag), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn put_buy_button_flag(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiJson(flag): ApiJson<BuyButtonFlag>,
) -> ApiResult<Json<BuyButtonFlag>> {
    Ok(Json(st.services.set_buy_button_flag(&who, flag).await?))
}
