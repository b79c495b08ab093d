//! Uploads and what they serve: a product's image and digital file (raw bodies, streamed
//! into the blob store with a size limit), the images themselves (content-addressed, so
//! cached for good), and digital downloads by link.

use crate::blobs::{ImageType, Upload};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Auth;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use buyline_core::model::{Product, ProductFile};
use buyline_core::order::Order;
use buyline_core::service::DownloadOutcome;
use buyline_core::Error;

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// Upload the product's image (raw body: PNG, JPEG, WebP or GIF, judged by its bytes; at most
/// 5 MiB unless configured). It becomes the product's `image_url`, shown on buy cards.
#[utoipa::path(put, path = "/products/{id}/image", tag = "catalog", security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The image's bytes"),
    responses((status = 200, body = Product), (status = 404, body = Problem), (status = 413, body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem)))]
pub async fn put_product_image(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Product>> {
    // Ownership first: nothing of another merchant's product is read or stored.
    st.services.product_for_upload(&who, &id, false).await?;
    let stored = st.blobs.upload(Upload::Image, body, declared_length(&headers)).await?;
    let path = format!("/api/v1/media/{}", stored.name.trim_start_matches("images/"));
    Ok(Json(st.services.set_product_image(&who, &id, &path).await?))
}

/// Upload a digital product's file (raw body, any type; at most 200 MiB unless configured).
/// Its name comes from `Content-Disposition: …; filename="…"` if given.
#[utoipa::path(put, path = "/products/{id}/file", tag = "catalog", security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes"),
    responses((status = 200, body = Product), (status = 404, body = Problem), (status = 413, body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem)))]
pub async fn put_product_file(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Product>> {
    let product = st.services.product_for_upload(&who, &id, true).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .map(|m| m.essence_str().to_string())
        .filter(|m| m.len() <= 100)
        .unwrap_or_else(|| "application/octet-stream".into());
    let name = headers
        .get(header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .and_then(safe_file_name)
        .unwrap_or_else(|| default_name(&product.name));
    let stored = st.blobs.upload(Upload::File, body, declared_length(&headers)).await?;
    let file = ProductFile { name, content_type, size: stored.size as i64, blob: stored.name };
    Ok(Json(st.services.set_product_file(&who, &id, &file).await?))
}

/// `filename="…"` of a Content-Disposition, made safe: a base name of printable ASCII.
pub fn safe_file_name(v: &str) -> Option<String> {
    let raw = v.split(';').map(str::trim).find_map(|p| p.strip_prefix("filename="))?.trim_matches('"');
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let safe: String =
        base.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ')).take(100).collect();
    let safe = safe.trim().trim_start_matches('.').to_string();
    (!safe.is_empty()).then_some(safe)
}

fn default_name(product: &str) -> String {
    let s: String = product
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if s.is_empty() {
        "download".into()
    } else {
        s.chars().take(80).collect()
    }
}

/// An uploaded product image. Its name is its content's SHA-256, so it never changes:
/// cached for a year, `immutable`, with an `ETag`.
#[utoipa::path(get, path = "/media/{name}", tag = "catalog",
    params(("name" = String, Path, description = "`{sha256}.{png|jpg|webp|gif}`")),
    responses((status = 200, description = "The image", content_type = "image/*"),
        (status = 304, description = "Not modified"), (status = 404, body = Problem)))]
pub async fn get_media(
    State(st): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (hash, ext) = name.split_once('.').ok_or(Error::NotFound("image"))?;
    let kind = ImageType::from_ext(ext).ok_or(Error::NotFound("image"))?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(Error::NotFound("image").into());
    }
    let etag = format!("\"{hash}\"");
    let cache = HeaderValue::from_static("public, max-age=31536000, immutable");
    let etag_value = HeaderValue::from_str(&etag).map_err(|e| Error::Internal(e.to_string()))?;
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains(&etag)) {
        return Ok(
            (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value), (header::CACHE_CONTROL, cache)]).into_response()
        );
    }
    let (body, size) = st.blobs.open(&format!("images/{name}")).await?.ok_or(Error::NotFound("image"))?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind.mime())),
            (header::CACHE_CONTROL, cache),
            (header::ETAG, etag_value),
            (header::CONTENT_LENGTH, HeaderValue::from(size)),
        ],
        body,
    )
        .into_response())
}

/// A digital product's file, by the link on a paid order: each request counts one download.
/// `410` once the link has expired or is used up, or the order was refunded or canceled.
#[utoipa::path(get, path = "/downloads/{token}", tag = "checkout",
    params(("token" = String, Path, description = "The link's token")),
    responses((status = 200, description = "The file", content_type = "application/octet-stream"),
        (status = 404, body = Problem), (status = 410, body = Problem)))]
pub async fn get_download(
    State(st): State<AppState>,
    method: axum::http::Method,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    let now = buyline_core::types::now_micros();
    match st.services.download(&token, now, method != axum::http::Method::HEAD).await? {
        DownloadOutcome::Gone(why) => Err(ApiError::Gone(why)),
        DownloadOutcome::File { file, downloads_left } => {
            let (body, size) = st.blobs.open(&file.blob).await?.ok_or(Error::NotFound("download"))?;
            let ct = HeaderValue::from_str(&file.content_type)
                .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
            let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", file.name))
                .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
            let mut resp = (
                [
                    (header::CONTENT_TYPE, ct),
                    (header::CONTENT_DISPOSITION, disposition),
                    (header::CONTENT_LENGTH, HeaderValue::from(size)),
                    (header::CACHE_CONTROL, HeaderValue::from_static("private, no-store")),
                ],
                body,
            )
                .into_response();
            resp.headers_mut().insert("downloads-left", HeaderValue::from(downloads_left));
            Ok(resp)
        }
    }
}

/// A fresh download link for a digital line of the caller's order (`line` counts from 0);
/// answers the order with its links.
#[utoipa::path(post, path = "/orders/{id}/lines/{line}/download", tag = "checkout", security(("bearer" = [])),
    params(("id" = String, Path), ("line" = u32, Path, description = "The line's position, from 0")),
    responses((status = 201, body = Order), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub async fn create_download_link(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path((id, line)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Order>)> {
    let line: usize = line.parse().map_err(|_| Error::field("line", "must be a line number"))?;
    Ok((StatusCode::CREATED, Json(st.services.fresh_download(&who, &id, line).await?)))
}
