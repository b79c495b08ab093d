//! Buyline over HTTP: the JSON API (`/api/v1`), the server-rendered pages, health and
//! metrics. Handlers call core services only; errors become RFC 9457 problem details.

pub mod api;
pub mod blobs;
pub mod cache;
pub mod csrf;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod pages;
pub mod state;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use buyline_core::Error;
use std::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use state::{AppParts, AppState};

/// Bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application: API, pages, health, metrics, with its middleware.
pub fn app(state: AppState) -> Router {
    let (api, mut openapi) = utoipa_axum::router::OpenApiRouter::new().nest("/api/v1", api::router()).split_for_parts();
    // After every route is in: the pass derives each operation's error responses.
    utoipa::Modify::modify(&api::ProblemResponses, &mut openapi);
    let needs_credentials = std::sync::Arc::new(api::posts_requiring_credentials(&openapi));
    let keys = idempotency::IdempotencyState { app: state.clone(), needs_credentials };
    let api = api.layer(middleware::from_fn_with_state(keys, idempotency::idempotency));
    let openapi_json = serde_json::to_value(&openapi).unwrap_or_default();
    Router::new()
        .merge(api)
        .route("/api/v1/openapi.json", get(move || async move { Json(openapi_json.clone()) }))
        .route("/api/v1/{*rest}", axum::routing::any(api_not_found))
        .route("/healthz", get(|| async { "ok" }))
        // A constant JSON answer through the whole stack: the benchmark's baseline.
        .route("/api/v1/ping", get(|| async { Json(serde_json::json!({"ok": true})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(pages::router())
        .with_state(state)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(cache::set_no_store))
        // Pages load only their own scripts, styles and forms, and are never framed.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' https: data:; script-src 'self'; style-src 'self'; \
                 form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
            ),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        .layer(middleware::from_fn(track_metrics))
        .layer(CatchPanicLayer::custom(|_| {
            error::ApiError::Core(Error::Internal("handler panicked".into())).into_response()
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
            let path = loggable_path(req.uri().path());
            tracing::info_span!("request", method = %req.method(), path = %path, request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
}

/// The path as logs may show it: a download link's token is a secret, so it is cut.
fn loggable_path(path: &str) -> &str {
    const DOWNLOADS: &str = "/api/v1/downloads/";
    if path.starts_with(DOWNLOADS) {
        DOWNLOADS
    } else {
        path
    }
}

async fn api_not_found() -> error::ApiError {
    Error::NotFound("route").into()
}

async fn readyz(State(st): State<AppState>) -> Response {
    match st.services.ready().await {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    match &st.metrics {
        Some(h) => ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], h.render()).into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are off").into_response(),
    }
}

async fn track_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(start.elapsed().as_secs_f64());
    resp
}
