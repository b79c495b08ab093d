//! Money out: a merchant's balance and payouts; the operator's payouts and refund window.

use super::accounts::PageQuery;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiQuery, Auth};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use buyline_core::model::Page;
use buyline_core::service::{Balances, Payout, PayoutInput, PayoutSettings, Payouts};

/// What the ledger owes the merchant now, per currency, and what it has paid out.
#[utoipa::path(get, path = "/merchant/balance", tag = "merchants", security(("bearer" = [])),
    responses((status = 200, body = Balances), (status = 403, body = Problem)))]
pub async fn get_balance(State(st): State<AppState>, Auth(who): Auth) -> ApiResult<Json<Balances>> {
    Ok(Json(st.services.merchant_balance(&who).await?))
}

/// The merchant's payouts, newest first.
#[utoipa::path(get, path = "/merchant/payouts", tag = "merchants", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Payout>), (status = 403, body = Problem)))]
pub async fn list_merchant_payouts(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<Payout>>> {
    Ok(Json(st.services.merchant_payouts(&who, q.cursor.as_deref(), q.limit).await?))
}

/// Pay every merchant its positive balance per currency (or only `merchant_id`), keeping
/// money younger than the refund window. Nothing owed: `201` with an empty list.
#[utoipa::path(post, path = "/admin/payouts", tag = "admin", request_body = PayoutInput, security(("bearer" = [])),
    responses((status = 201, body = Payouts), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_payouts(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiJson(input): ApiJson<PayoutInput>,
) -> ApiResult<(StatusCode, Json<Payouts>)> {
    Ok((StatusCode::CREATED, Json(st.services.create_payouts(&who, input).await?)))
}

/// Every payout, newest first.
#[utoipa::path(get, path = "/admin/payouts", tag = "admin", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Payout>), (status = 403, body = Problem)))]
pub async fn list_payouts(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<Payout>>> {
    Ok(Json(st.services.all_payouts(&who, q.cursor.as_deref(), q.limit).await?))
}

/// Payout settings: the refund window in days.
#[utoipa::path(get, path = "/admin/payout_settings", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = PayoutSettings), (status = 403, body = Problem)))]
pub async fn get_payout_settings(State(st): State<AppState>, Auth(who): Auth) -> ApiResult<Json<PayoutSettings>> {
    Ok(Json(st.services.payout_settings(&who).await?))
}

/// Set the refund window: money from orders newer than this many days is not paid out.
#[utoipa::path(put, path = "/admin/payout_settings", tag = "admin", request_body = PayoutSettings,
    security(("bearer" = [])),
    responses((status = 200, body = PayoutSettings), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn put_payout_settings(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiJson(s): ApiJson<PayoutSettings>,
) -> ApiResult<Json<PayoutSettings>> {
    Ok(Json(st.services.set_payout_settings(&who, s).await?))
}
