//! The one error type that becomes a response: RFC 9457 problem details. Internal causes
//! are logged (with the request id from the trace span) and never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use buyline_core::{Error, FieldError};
use serde::Serialize;

/// Problem documents' media type (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug)]
pub enum ApiError {
    Core(Error),
    /// The body is larger than the limit.
    PayloadTooLarge,
    /// The body is not JSON (wrong `Content-Type`).
    UnsupportedMediaType,
    /// An upload larger than its limit (bytes).
    UploadTooLarge(u64),
    /// An image upload whose bytes are not PNG, JPEG, WebP or GIF.
    NotAnImage,
    /// A download link that expired, was used up or whose order was given back.
    Gone(String),
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Core(e)
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type; `/problems/{code}` describes it.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// A stable machine-readable code, e.g. `validation_failed`.
    pub code: String,
    pub detail: String,
    /// For `validation_failed` (and some conflicts): each failing field with its message.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub errors: Vec<FieldError>,
    /// For `card_declined`: the processor's reason, e.g. `insufficient_funds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<String>,
}

/// Every problem code with its status and title; also rendered at `/problems/{code}`.
pub const CODES: &[(&str, u16, &str, &str)] = &[
    (
        "validation_failed",
        422,
        "Validation failed",
        "Some fields are missing or malformed; `errors` lists each with a message.",
    ),
    ("unauthorized", 401, "Unauthorized", "No credentials, or credentials that are wrong or expired."),
    ("forbidden", 403, "Forbidden", "These credentials may not do this."),
    ("not_available", 403, "Not available", "Buy is not offered to this account in this market."),
    ("not_found", 404, "Not found", "No such resource, or not one these credentials may see."),
    ("conflict", 409, "Conflict", "The request clashes with the current state, e.g. a handle already taken."),
    ("out_of_stock", 409, "Out of stock", "Not enough stock for the chosen variant and quantity."),
    (
        "idempotency_mismatch",
        422,
        "Idempotency key reused",
        "This Idempotency-Key was used with a different request body.",
    ),
    (
        "card_declined",
        402,
        "Card declined",
        "The card was declined; `decline_code` says why (`generic_decline`, `insufficient_funds`).",
    ),
    ("expired_card", 402, "Expired card", "The card has expired."),
    ("incorrect_cvc", 402, "Incorrect CVC", "The card's security code is incorrect."),
    ("processing_error", 402, "Processing error", "The payment could not be processed; retrying may succeed."),
    ("authentication_failed", 402, "Authentication failed", "The card's 3-D Secure check was not passed."),
    ("rate_limited", 429, "Rate limited", "Too many requests; wait for `Retry-After` seconds."),
    ("gone", 410, "Gone", "The download link expired, was used up, or its order was refunded or canceled."),
    ("payload_too_large", 413, "Payload too large", "The request body exceeds the size limit."),
    (
        "unsupported_media_type",
        415,
        "Unsupported media type",
        "Send JSON with `Content-Type: application/json`; an image must be PNG, JPEG, WebP or GIF.",
    ),
    ("internal", 500, "Internal error", "Something failed on our side; the request id in the logs identifies it."),
];

fn title(code: &str) -> &'static str {
    CODES.iter().find(|c| c.0 == code).map(|c| c.2).unwrap_or("Error")
}

pub fn problem(status: StatusCode, code: &str, detail: String, errors: Vec<FieldError>) -> Response {
    problem_with(status, code, detail, errors, None)
}

pub fn problem_with(
    status: StatusCode,
    code: &str,
    detail: String,
    errors: Vec<FieldError>,
    decline_code: Option<String>,
) -> Response {
    let body = Problem {
        decline_code,
        kind: format!("/problems/{code}"),
        title: title(code).to_string(),
        status: status.as_u16(),
        code: code.to_string(),
        detail,
        errors,
    };
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::PayloadTooLarge => problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "The request body is larger than the limit of 64 KiB.".into(),
                vec![],
            ),
            ApiError::UploadTooLarge(limit) => problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("The upload is larger than the limit of {limit} bytes; nothing was stored."),
                vec![],
            ),
            ApiError::NotAnImage => problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "An image must be PNG, JPEG, WebP or GIF (judged by its bytes, not its Content-Type).".into(),
                vec![],
            ),
            ApiError::Gone(detail) => problem(StatusCode::GONE, "gone", detail, vec![]),
            ApiError::UnsupportedMediaType => problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Expected a JSON body with Content-Type: application/json.".into(),
                vec![],
            ),
            ApiError::Core(e) => match e {
                Error::Validation(errors) => {
                    let detail =
                        errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
                    problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", detail, errors)
                }
                Error::NotFound(what) => {
                    problem(StatusCode::NOT_FOUND, "not_found", format!("No such {what}."), vec![])
                }
                Error::Unauthorized => {
                    let mut r = problem(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "Missing, wrong or expired credentials.".into(),
                        vec![],
                    );
                    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    r
                }
                Error::Forbidden(m) => problem(StatusCode::FORBIDDEN, "forbidden", capitalise(&m), vec![]),
                Error::NotAvailable(m) => problem(StatusCode::FORBIDDEN, "not_available", capitalise(&m), vec![]),
                Error::Conflict { message, errors } => {
                    problem(StatusCode::CONFLICT, "conflict", capitalise(&message), errors)
                }
                Error::OutOfStock(m) => problem(StatusCode::CONFLICT, "out_of_stock", capitalise(&m), vec![]),
                Error::Payment { code, decline_code, message } => {
                    problem_with(StatusCode::PAYMENT_REQUIRED, &code, message, vec![], decline_code)
                }
                Error::RateLimited { retry_after } => {
                    let mut r = problem(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limited",
                        format!("Too many attempts. Try again in {retry_after} seconds."),
                        vec![],
                    );
                    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                        r.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                    r
                }
                Error::IdempotencyMismatch => problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_mismatch",
                    "This Idempotency-Key was already used with a different request.".into(),
                    vec![],
                ),
                Error::Internal(cause) => {
                    tracing::error!(%cause, "internal error");
                    problem(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "Something went wrong on our side. It has been logged.".into(),
                        vec![],
                    )
                }
            },
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect::<String>() + if s.ends_with('.') { "" } else { "." },
        None => String::new(),
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
