//! Merchants, their keys and their catalog.

use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, Auth};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use buyline_core::model::{Merchant, Page, Product};
use buyline_core::service::{MerchantInput, MerchantUpdate, NewMerchant, ProductInput, ProductUpdate, VariantUpdate};
use serde::Serialize;

/// Open a merchant. The `api_key` and `webhook_secret` are shown only in this response.
#[utoipa::path(post, path = "/merchants", tag = "merchants", request_body = MerchantInput, security(("bearer" = [])),
    responses((status = 201, body = NewMerchant), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_merchant(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiJson(input): ApiJson<MerchantInput>,
) -> ApiResult<(StatusCode, Json<NewMerchant>)> {
    Ok((StatusCode::CREATED, Json(st.services.create_merchant(&who, input).await?)))
}

/// The merchant the secret key belongs to.
#[utoipa::path(get, path = "/merchant", tag = "merchants", security(("bearer" = [])),
    responses((status = 200, body = Merchant), (status = 403, body = Problem)))]
pub async fn get_merchant(Auth(who): Auth) -> ApiResult<Json<Merchant>> {
    Ok(Json(who.merchant()?.clone()))
}

/// Update webhook URL, cart hashtags, tax rates, return policy.
#[utoipa::path(patch, path = "/merchant", tag = "merchants", request_body = MerchantUpdate, security(("bearer" = [])),
    responses((status = 200, body = Merchant), (status = 422, body = Problem)))]
pub async fn update_merchant(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiJson(input): ApiJson<MerchantUpdate>,
) -> ApiResult<Json<Merchant>> {
    Ok(Json(st.services.update_merchant(&who, input).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub api_key: String,
}

/// Replace the secret key; the old one stops working at once.
#[utoipa::path(post, path = "/merchant/api_key/rotate", tag = "merchants", security(("bearer" = [])),
    responses((status = 201, body = ApiKey), (status = 403, body = Problem)))]
pub async fn rotate_api_key(State(st): State<AppState>, Auth(who): Auth) -> ApiResult<(StatusCode, Json<ApiKey>)> {
    Ok((StatusCode::CREATED, Json(ApiKey { api_key: st.services.rotate_api_key(&who).await? })))
}

/// The merchant's products, newest first.
#[utoipa::path(get, path = "/merchant/products", tag = "catalog", security(("bearer" = [])),
    responses((status = 200, body = Page<Product>), (status = 403, body = Problem)))]
pub async fn list_merchant_products(State(st): State<AppState>, Auth(who): Auth) -> ApiResult<Json<Page<Product>>> {
    let m = who.merchant()?;
    Ok(Json(Page { data: st.services.merchant_products(&m.id).await?, next_cursor: None }))
}

/// Create a product with options, variants, stock and shipping rates.
#[utoipa::path(post, path = "/products", tag = "catalog", request_body = ProductInput, security(("bearer" = [])),
    responses((status = 201, body = Product), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_product(
    State(st): State<AppState>,
    Auth(who): Auth,
    ApiJson(input): ApiJson<ProductInput>,
) -> ApiResult<(StatusCode, Json<Product>)> {
    Ok((StatusCode::CREATED, Json(st.services.create_product(&who, input).await?)))
}

/// A product (public).
#[utoipa::path(get, path = "/products/{id}", tag = "catalog",
    responses((status = 200, body = Product), (status = 404, body = Problem)))]
pub async fn get_product(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Product>> {
    Ok(Json(st.services.product(&id).await?))
}

/// Update a product's name, description, image, return policy or shipping rates.
#[utoipa::path(patch, path = "/products/{id}", tag = "catalog", request_body = ProductUpdate, security(("bearer" = [])),
    responses((status = 200, body = Product), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_product(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ProductUpdate>,
) -> ApiResult<Json<Product>> {
    Ok(Json(st.services.update_product(&who, &id, input).await?))
}

/// Archive a product (the catalogue's delete): it leaves the shop, its buy cards and
/// checkout; paid orders keep their lines and download links. 409 while an order holding it
/// is still open (awaiting its card check, paid and not shipped, or partly refunded).
#[utoipa::path(delete, path = "/products/{id}", tag = "catalog", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_product(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    st.services.archive_product(&who, &id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Update a variant's price, SKU or stock.
#[utoipa::path(patch, path = "/products/{id}/variants/{vid}", tag = "catalog", request_body = VariantUpdate,
    security(("bearer" = [])),
    responses((status = 200, body = Product), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_variant(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path((id, vid)): Path<(String, String)>,
    ApiJson(input): ApiJson<VariantUpdate>,
) -> ApiResult<Json<Product>> {
    Ok(Json(st.services.update_variant(&who, &id, &vid, input).await?))
}
