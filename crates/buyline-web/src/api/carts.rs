//! Hashtag carts: linking a merchant (consent), the carts replies fill, and their checkout.

use crate::error::{ApiResult, Problem};
use crate::extract::Auth;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use buyline_core::cart::{Carts, MerchantLink};
use buyline_core::model::Page;
use buyline_core::order::Checkout;

/// Consent: let this merchant add products to your cart when you reply with its cart hashtag.
/// Linking again is harmless.
#[utoipa::path(post, path = "/merchants/{id}/link", tag = "carts", security(("bearer" = [])),
    responses((status = 201, body = MerchantLink), (status = 404, body = Problem)))]
pub async fn link_merchant(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<MerchantLink>)> {
    Ok((StatusCode::CREATED, Json(st.services.link_merchant(&who, &id).await?)))
}

/// Revoke the consent. Items already in the cart stay.
#[utoipa::path(delete, path = "/merchants/{id}/link", tag = "carts", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn unlink_merchant(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    st.services.unlink_merchant(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The merchants you have linked for hashtag carts.
#[utoipa::path(get, path = "/me/links", tag = "carts", security(("bearer" = [])),
    responses((status = 200, body = Page<MerchantLink>)))]
pub async fn list_links(State(st): State<AppState>, Auth(who): Auth) -> ApiResult<Json<Page<MerchantLink>>> {
    Ok(Json(Page { data: st.services.merchant_links(&who).await?, next_cursor: None }))
}

/// Your carts, one per merchant, at today's prices.
#[utoipa::path(get, path = "/carts", tag = "carts", security(("bearer" = [])),
    responses((status = 200, body = Carts), (status = 401, body = Problem)))]
pub async fn list_carts(State(st): State<AppState>, Auth(who): Auth) -> ApiResult<Json<Carts>> {
    Ok(Json(Carts { data: st.services.carts(&who).await? }))
}

/// Remove an item from a cart.
#[utoipa::path(delete, path = "/carts/{merchant_id}/items/{item_id}", tag = "carts", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_cart_item(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path((merchant_id, item_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    st.services.remove_cart_item(&who, &merchant_id, &item_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Open a checkout with every item of the cart with this merchant; complete it with
/// `POST /checkouts/{id}/complete`. The order removes the items from the cart.
#[utoipa::path(post, path = "/carts/{merchant_id}/checkout", tag = "carts", security(("bearer" = [])),
    responses((status = 201, body = Checkout), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn checkout_cart(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(merchant_id): Path<String>,
) -> ApiResult<(StatusCode, Json<Checkout>)> {
    Ok((StatusCode::CREATED, Json(st.services.checkout_cart(&who, &merchant_id).await?)))
}
