//! `/merchant/products/{id}/uploads`: a product's image and, for a digital product, its file,
//! uploaded from a plain HTML form (`multipart/form-data`). The CSRF field comes first in the
//! form, so it is checked before any byte of the file is read; the file is then streamed into
//! the blob store with the same limits as the API.

use super::redirect::{see_other, to_login};
use super::{error_page, FormErrors, PageCtx};
use crate::blobs::Upload;
use crate::error::ApiError;
use crate::state::AppState;
use askama::Template;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use buyline_core::model::{Product, ProductFile};
use buyline_core::types::ProductKind;
use buyline_core::{Error, Principal};
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Deserialize, Default)]
pub struct ShopQuery {
    m: Option<String>,
    done: Option<String>,
}

#[derive(Template)]
#[template(path = "uploads.html")]
pub struct UploadsPage<'a> {
    pub ctx: &'a PageCtx,
    pub product: Product,
    pub merchant_id: String,
    pub digital: bool,
    pub max_image: String,
    pub max_file: String,
    pub notice: Option<String>,
    pub errors: FormErrors,
}

fn mib(n: u64) -> String {
    if n >= 1024 * 1024 {
        format!("{} MiB", n / (1024 * 1024))
    } else {
        format!("{} KiB", n.div_ceil(1024))
    }
}

fn render(
    st: &AppState,
    ctx: &PageCtx,
    who: &Principal,
    product: Product,
    notice: Option<String>,
    errors: FormErrors,
) -> Response {
    let status = if errors.0.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let merchant_id = who.merchant().map(|m| m.id.clone()).unwrap_or_default();
    ctx.render(
        status,
        UploadsPage {
            ctx,
            digital: product.kind == ProductKind::Digital,
            product,
            merchant_id,
            max_image: mib(st.blobs.max_image_bytes),
            max_file: mib(st.blobs.max_file_bytes),
            notice,
            errors,
        },
    )
}

pub async fn uploads_page(
    State(st): State<AppState>,
    ctx: PageCtx,
    Path(id): Path<String>,
    Query(q): Query<ShopQuery>,
) -> Response {
    let who = match super::merchant::principal(&st, &ctx, q.m.as_deref()).await {
        Ok(Some(w)) => w,
        Ok(None) => return to_login(&format!("/merchant/products/{id}/uploads")),
        Err(e) => return error_page(&ctx, e),
    };
    match st.services.product_for_upload(&who, &id, false).await {
        Ok(p) => {
            let notice = q.done.map(|d| if d == "file" { "File uploaded." } else { "Image uploaded." }.to_string());
            render(&st, &ctx, &who, p, notice, FormErrors::default())
        }
        Err(e) => error_page(&ctx, e),
    }
}

/// Why an upload failed, as the message beside its field.
fn message(e: &ApiError) -> Option<String> {
    match e {
        ApiError::UploadTooLarge(limit) => Some(format!("is larger than the limit of {}", mib(*limit))),
        ApiError::NotAnImage => Some("must be a PNG, JPEG, WebP or GIF image".into()),
        ApiError::Core(Error::Validation(list)) => list.first().map(|f| f.message.clone()),
        _ => None,
    }
}

async fn upload(
    st: AppState,
    ctx: PageCtx,
    id: String,
    q: ShopQuery,
    headers: HeaderMap,
    mut form: Multipart,
    kind: Upload,
) -> Response {
    let who = match super::merchant::principal(&st, &ctx, q.m.as_deref()).await {
        Ok(Some(w)) => w,
        Ok(None) => return to_login(&format!("/merchant/products/{id}/uploads")),
        Err(e) => return error_page(&ctx, e),
    };
    let field_name = if kind == Upload::Image { "image" } else { "file" };
    // The CSRF token first; nothing else is read without it.
    let token = match form.next_field().await {
        Ok(Some(f)) if f.name() == Some("csrf") => f.text().await.unwrap_or_default(),
        _ => String::new(),
    };
    if !st.csrf.verify(&headers, &token) {
        return (StatusCode::FORBIDDEN, "This form expired or came from another site. Reload the page and try again.")
            .into_response();
    }
    let product = match st.services.product_for_upload(&who, &id, kind == Upload::File).await {
        Ok(p) => p,
        Err(e) => return error_page(&ctx, e),
    };
    let field = match form.next_field().await {
        Ok(Some(f)) if f.name() == Some("upload") => f,
        _ => {
            let errors = FormErrors(HashMap::from([(field_name.to_string(), "choose a file to upload".to_string())]));
            return render(&st, &ctx, &who, product, None, errors);
        }
    };
    let name = field.file_name().map(str::to_string);
    let content_type = field.content_type().map(str::to_string);
    let stored = match st.blobs.upload_stream(kind, field, None).await {
        Ok(s) => s,
        Err(e) => {
            return match message(&e) {
                Some(m) => {
                    let errors = FormErrors(HashMap::from([(field_name.to_string(), m)]));
                    render(&st, &ctx, &who, product, None, errors)
                }
                None => e.into_response(),
            }
        }
    };
    let result = match kind {
        Upload::Image => {
            let path = format!("/api/v1/media/{}", stored.name.trim_start_matches("images/"));
            st.services.set_product_image(&who, &id, &path).await
        }
        Upload::File => {
            let file = ProductFile {
                name: name
                    .as_deref()
                    .and_then(|n| crate::api::safe_file_name(&format!("filename=\"{n}\"")))
                    .unwrap_or_else(|| "download".into()),
                content_type: content_type
                    .and_then(|c| c.parse::<mime::Mime>().ok())
                    .map(|m| m.essence_str().to_string())
                    .filter(|m| m.len() <= 100)
                    .unwrap_or_else(|| "application/octet-stream".into()),
                size: stored.size as i64,
                blob: stored.name,
            };
            st.services.set_product_file(&who, &id, &file).await
        }
    };
    match result {
        Ok(p) => see_other(&format!("/merchant/products/{}/uploads?m={}&done={field_name}", p.id, p.merchant_id)),
        Err(e) => error_page(&ctx, e),
    }
}

pub async fn upload_image(
    State(st): State<AppState>,
    ctx: PageCtx,
    Path(id): Path<String>,
    Query(q): Query<ShopQuery>,
    headers: HeaderMap,
    form: Multipart,
) -> Response {
    upload(st, ctx, id, q, headers, form, Upload::Image).await
}

pub async fn upload_file(
    State(st): State<AppState>,
    ctx: PageCtx,
    Path(id): Path<String>,
    Query(q): Query<ShopQuery>,
    headers: HeaderMap,
    form: Multipart,
) -> Response {
    upload(st, ctx, id, q, headers, form, Upload::File).await
}
