//! Operator controls.

use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, Auth};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use buyline_core::rollout::BuyButtonFlag;
use buyline_core::service::{FeePolicy, TrialBalance};

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

/// The commission policy.
#[utoipa::path(get, path = "/admin/fees", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = FeePolicy), (status = 403, body = Problem)))]
pub async fn get_fees(State(st): State<AppState>, Auth(who): Auth) -> ApiResult<Json<FeePolicy>> {
    who.operator()?;
    Ok(Json(st.services.fee_policy().await?))
}

/// Set the commission in basis points per merchant kind, with per-merchant overrides.
/// Orders keep the fee in force when they were placed.
#[utoipa::path(put, path = "/admin/fees", tag = "admin", request_body = FeePolicy, security(("bearer" = [])),
    responses((status = 200, body = FeePolicy), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn put_fees(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiJson(policy): ApiJson<FeePolicy>,
) -> ApiResult<Json<FeePolicy>> {
    Ok(Json(st.services.set_fee_policy(&who, policy).await?))
}

/// Balance of every ledger account per currency; `totals` is zero per currency.
#[utoipa::path(get, path = "/admin/ledger/trial_balance", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = TrialBalance), (status = 403, body = Problem)))]
pub async fn get_trial_balance(State(st): State<AppState>, Auth(who): Auth) -> ApiResult<Json<TrialBalance>> {
    Ok(Json(st.services.trial_balance(&who).await?))
}
