//! The `Idempotency-Key` middleware for API POSTs (SPEC §3): the same key and body replay
//! the first response; the same key with another body is 422 `idempotency_mismatch`; a
//! retry while the first is still running is 409. Keys are scoped to the caller's
//! credentials, so one client's key never meets another's.

use crate::error::{problem, ApiError};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use buyline_core::service::Idempotency;
use buyline_core::Error;

fn sha256_hex(parts: &[&[u8]]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn idempotency(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string) else {
        return next.run(req).await;
    };
    if key.is_empty() || key.len() > 255 {
        return ApiError::Core(Error::field("Idempotency-Key", "must be 1 to 255 characters")).into_response();
    }
    let credentials = req
        .headers()
        .get(header::AUTHORIZATION)
        .or_else(|| req.headers().get(header::COOKIE))
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default();
    let scope = sha256_hex(&[&credentials]);
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, crate::BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return ApiError::PayloadTooLarge.into_response(),
    };
    let hash = sha256_hex(&[parts.method.as_str().as_bytes(), parts.uri.path().as_bytes(), &bytes]);
    match st.services.idempotency_begin(&scope, &key, &hash).await {
        Err(e) => ApiError::Core(e).into_response(),
        Ok(Idempotency::Mismatch) => ApiError::Core(Error::IdempotencyMismatch).into_response(),
        Ok(Idempotency::InProgress) => problem(
            StatusCode::CONFLICT,
            "conflict",
            "A request with this Idempotency-Key is still being processed; retry shortly.".into(),
            vec![],
        ),
        Ok(Idempotency::Replay { status, content_type, body }) => {
            let mut resp = (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body).into_response();
            if let Ok(ct) = HeaderValue::from_str(&content_type) {
                resp.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            resp
        }
        Ok(Idempotency::New) => {
            let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
            let status = resp.status();
            if status.is_server_error() {
                let _ = st.services.idempotency_abandon(&scope, &key).await;
                return resp;
            }
            let (parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();
            let ct = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let text = String::from_utf8_lossy(&bytes).to_string();
            if let Err(e) = st.services.idempotency_finish(&scope, &key, status.as_u16(), &ct, &text).await {
                tracing::warn!(error = %e, "could not record the idempotent response");
            }
            Response::from_parts(parts, Body::from(bytes))
        }
    }
}
