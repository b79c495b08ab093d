//! The merchant's orders and webhooks.

use super::accounts::PageQuery;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiQuery, Auth};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use buyline_core::model::Page;
use buyline_core::order::{Delivery, Event, Order};
use buyline_core::service::{FulfillInput, RefundInput};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// Only orders in this status.
    #[param(value_type = Option<buyline_core::order::OrderStatus>)]
    pub status: Option<String>,
    /// Items per page; 20 if omitted.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// The id of the last event seen; omit to start from the first.
    pub after: Option<String>,
    /// Events per page; 20 if omitted.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// The merchant's orders, newest first, optionally by status. Orders carry no card data.
#[utoipa::path(get, path = "/merchant/orders", tag = "merchant orders", params(OrderQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Order>), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_merchant_orders(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<OrderQuery>,
) -> ApiResult<Json<Page<Value>>> {
    Ok(Json(st.services.merchant_orders(&who, q.status.as_deref(), q.cursor.as_deref(), q.limit).await?))
}

/// One order (another merchant's is 404).
#[utoipa::path(get, path = "/merchant/orders/{id}", tag = "merchant orders", security(("bearer" = [])),
    responses((status = 200, body = Order), (status = 404, body = Problem)))]
pub async fn get_merchant_order(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(st.services.merchant_order_view(&who, &id).await?))
}

/// Mark the order as seen.
#[utoipa::path(post, path = "/merchant/orders/{id}/acknowledge", tag = "merchant orders", security(("bearer" = [])),
    responses((status = 200, body = Order), (status = 404, body = Problem)))]
pub async fn acknowledge_order(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(st.services.acknowledge_order(&who, &id).await?))
}

/// Ship it: carrier and tracking number; the shopper is told.
#[utoipa::path(post, path = "/merchant/orders/{id}/fulfill", tag = "merchant orders", request_body = FulfillInput,
    security(("bearer" = [])),
    responses((status = 200, body = Order), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn fulfill_order(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<FulfillInput>,
) -> ApiResult<Json<Value>> {
    Ok(Json(st.services.fulfill_order(&who, &id, input).await?))
}

/// Cancel a paid order: refunded in full, stock returned.
#[utoipa::path(post, path = "/merchant/orders/{id}/cancel", tag = "merchant orders", security(("bearer" = [])),
    responses((status = 200, body = Order), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn cancel_order(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(st.services.cancel_order(&who, &id).await?))
}

/// Refund all or part (`amount` in minor units; all that is left if omitted).
#[utoipa::path(post, path = "/merchant/orders/{id}/refund", tag = "merchant orders", request_body(content = Option<RefundInput>, description = "May be empty: refunds all that is left"),
    security(("bearer" = [])),
    responses((status = 200, body = Order), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn refund_order(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    // An empty body (or JSON `null`, as the document allows) refunds everything that is left.
    let input: RefundInput = if body.iter().all(u8::is_ascii_whitespace) {
        RefundInput::default()
    } else {
        crate::extract::parse_json::<Option<RefundInput>>(&body)?.unwrap_or_default()
    };
    Ok(Json(st.services.refund_order(&who, &id, input).await?))
}

/// Events after a given one, oldest first: the fallback when webhooks cannot reach you.
#[utoipa::path(get, path = "/merchant/events", tag = "webhooks", params(EventQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Event>), (status = 422, body = Problem)))]
pub async fn list_events(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> ApiResult<Json<Page<Event>>> {
    Ok(Json(st.services.events_after(&who, q.after.as_deref(), q.limit).await?))
}

/// Webhook deliveries with every attempt, newest first.
#[utoipa::path(get, path = "/merchant/webhook_deliveries", tag = "webhooks", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Delivery>)))]
pub async fn list_deliveries(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<Delivery>>> {
    Ok(Json(st.services.deliveries(&who, q.cursor.as_deref(), q.limit).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Scheduled {
    pub status: &'static str,
}

/// Send a delivery again now.
#[utoipa::path(post, path = "/merchant/webhook_deliveries/{id}/retry", tag = "webhooks", security(("bearer" = [])),
    responses((status = 202, body = Scheduled), (status = 404, body = Problem)))]
pub async fn retry_delivery(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Scheduled>)> {
    st.services.retry_delivery(&who, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(Scheduled { status: "scheduled" })))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NewSecret {
    /// Shown once. The previous secret keeps signing beside it for 24 hours.
    pub webhook_secret: String,
}

/// A new webhook signing secret.
#[utoipa::path(post, path = "/merchant/webhook_secret/rotate", tag = "webhooks", security(("bearer" = [])),
    responses((status = 201, body = NewSecret), (status = 403, body = Problem)))]
pub async fn rotate_webhook_secret(
    State(st): State<AppState>,
    Auth(who): Auth,
) -> ApiResult<(StatusCode, Json<NewSecret>)> {
    Ok((StatusCode::CREATED, Json(NewSecret { webhook_secret: st.services.rotate_webhook_secret(&who).await? })))
}
