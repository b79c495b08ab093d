//! Saved cards and addresses, and data rights. Only brand, last four and expiry of a card
//! ever leave the vault.

use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, Auth};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use buyline_core::checkout::Address;
use buyline_core::model::Page;
use buyline_core::payment::CardInput;
use buyline_core::saved::{PaymentMethod, SavedAddress};
use buyline_core::service::Export;
use serde::Deserialize;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewPaymentMethod {
    pub card: CardInput,
}

/// Save a card (sealed in the vault; the CVC is not kept).
#[utoipa::path(post, path = "/payment_methods", tag = "vault", request_body = NewPaymentMethod, security(("bearer" = [])),
    responses((status = 201, body = PaymentMethod), (status = 422, body = Problem)))]
pub async fn create_payment_method(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiJson(input): ApiJson<NewPaymentMethod>,
) -> ApiResult<(StatusCode, Json<PaymentMethod>)> {
    Ok((StatusCode::CREATED, Json(st.services.add_payment_method(&who, input.card.clone()).await?)))
}

/// Saved cards, masked.
#[utoipa::path(get, path = "/payment_methods", tag = "vault", security(("bearer" = [])),
    responses((status = 200, body = Page<PaymentMethod>)))]
pub async fn list_payment_methods(State(st): State<AppState>, Auth(who): Auth) -> ApiResult<Json<Page<PaymentMethod>>> {
    Ok(Json(Page { data: st.services.payment_methods(&who).await?, next_cursor: None }))
}

/// Delete a saved card: its data key is destroyed.
#[utoipa::path(delete, path = "/payment_methods/{id}", tag = "vault", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_payment_method(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    st.services.delete_payment_method(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Save a shipping address (sealed in the vault).
#[utoipa::path(post, path = "/addresses", tag = "vault", request_body = Address, security(("bearer" = [])),
    responses((status = 201, body = SavedAddress), (status = 422, body = Problem)))]
pub async fn create_address(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiJson(input): ApiJson<Address>,
) -> ApiResult<(StatusCode, Json<SavedAddress>)> {
    Ok((StatusCode::CREATED, Json(st.services.add_address(&who, input).await?)))
}

/// Saved addresses (each read is audited).
#[utoipa::path(get, path = "/addresses", tag = "vault", security(("bearer" = [])),
    responses((status = 200, body = Page<SavedAddress>)))]
pub async fn list_addresses(State(st): State<AppState>, Auth(who): Auth) -> ApiResult<Json<Page<SavedAddress>>> {
    Ok(Json(Page { data: st.services.addresses(&who, "list addresses").await?, next_cursor: None }))
}

/// Delete a saved address: its data key is destroyed.
#[utoipa::path(delete, path = "/addresses/{id}", tag = "vault", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_address(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    st.services.delete_address(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Everything Buyline holds about the caller, as JSON.
#[utoipa::path(get, path = "/me/export", tag = "vault", security(("bearer" = [])),
    responses((status = 200, body = Export), (status = 401, body = Problem)))]
pub async fn export_me(State(st): State<AppState>, Auth(who): Auth) -> ApiResult<Json<Export>> {
    Ok(Json(st.services.export(&who).await?))
}

/// Delete the caller's account: posts removed, saved cards and addresses crypto-shredded,
/// orders kept for merchants and the ledger with personal data erased.
#[utoipa::path(delete, path = "/me", tag = "vault", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem)))]
pub async fn delete_me(State(st): State<AppState>, Auth(who): Auth) -> ApiResult<StatusCode> {
    st.services.delete_account(&who).await?;
    Ok(StatusCode::NO_CONTENT)
}
