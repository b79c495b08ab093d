//! Checkout, one-tap orders, the shopper's orders and notifications.

use super::accounts::PageQuery;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiQuery, Auth};
use crate::idempotency::BoundKey;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use buyline_core::model::Page;
use buyline_core::order::{Checkout, Order};
use buyline_core::service::{CheckoutInput, CompleteInput, OrderInput};

/// Open a checkout: lines are priced and checked; shipping options and totals come back.
#[utoipa::path(post, path = "/checkouts", tag = "checkout", request_body = CheckoutInput, security(("bearer" = [])),
    responses((status = 201, body = Checkout), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_checkout(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiJson(input): ApiJson<CheckoutInput>,
) -> ApiResult<(StatusCode, Json<Checkout>)> {
    Ok((StatusCode::CREATED, Json(st.services.open_checkout(&who, input).await?)))
}

/// A checkout of the caller's.
#[utoipa::path(get, path = "/checkouts/{id}", tag = "checkout", security(("bearer" = [])),
    responses((status = 200, body = Checkout), (status = 404, body = Problem)))]
pub async fn get_checkout(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Checkout>> {
    Ok(Json(st.services.checkout(&who, &id).await?))
}

/// Pay: reserve stock, authorise, commit the order, capture. Completing twice returns the
/// same order.
#[utoipa::path(post, path = "/checkouts/{id}/complete", tag = "checkout", request_body = CompleteInput, security(("bearer" = [])),
    responses((status = 201, body = Order), (status = 402, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn complete_checkout(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<CompleteInput>,
) -> ApiResult<(StatusCode, Json<Order>)> {
    let mut order = st.services.complete_checkout(&who, &id, input).await?;
    // A paid digital order carries its download links from the start (SPEC §2).
    st.services.attach_downloads(&mut order).await?;
    Ok((StatusCode::CREATED, Json(order)))
}

/// One tap: lines, shipping address and payment in one call.
#[utoipa::path(post, path = "/orders", tag = "checkout", request_body = OrderInput, security(("bearer" = [])),
    responses((status = 201, body = Order), (status = 402, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_order(
    State(st): State<AppState>,
    Auth(who): Auth,
    bound: Option<Extension<BoundKey>>,
    ApiJson(input): ApiJson<OrderInput>,
) -> ApiResult<(StatusCode, Json<Order>)> {
    let bound = bound.map(|Extension(BoundKey(k))| k);
    let mut order = st.services.place_order(&who, input, bound.as_deref()).await?;
    st.services.attach_downloads(&mut order).await?;
    Ok((StatusCode::CREATED, Json(order)))
}

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/orders", tag = "checkout", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Order>), (status = 401, body = Problem)))]
pub async fn list_orders(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<Order>>> {
    let mut page = st.services.orders(&who, q.cursor.as_deref(), q.limit).await?;
    for order in &mut page.data {
        st.services.attach_downloads(order).await?;
    }
    Ok(Json(page))
}

/// One of the caller's orders. An order waiting on a 3-D Secure check is settled first.
#[utoipa::path(get, path = "/orders/{id}", tag = "checkout", security(("bearer" = [])),
    responses((status = 200, body = Order), (status = 404, body = Problem)))]
pub async fn get_order(State(st): State<AppState>, Auth(who): Auth, Path(id): Path<String>) -> ApiResult<Json<Order>> {
    let mut order = st.services.order(&who, &id).await?;
    if order.status == buyline_core::order::OrderStatus::RequiresAction {
        order = st.services.resume_order(&order.id).await?;
    }
    st.services.attach_downloads(&mut order).await?;
    Ok(Json(order))
}
