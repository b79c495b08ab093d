//! Extractors that turn every rejection into a problem document: JSON bodies, query
//! strings, and the caller's credentials.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, Method};
use axum_extra::extract::CookieJar;
use buyline_core::{Error, Principal};
use serde::de::DeserializeOwned;

/// A JSON body: 415 without a JSON content type, 413 over the limit, 422 naming the field
/// that does not parse.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .is_some_and(|m| {
                m.type_() == "application" && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"))
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = bytes::Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                Error::field("body", "could not be read").into()
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::from(Error::Validation(vec![buyline_core::FieldError::new(
            "body",
            format!("is not valid JSON: {e}"),
        )]))
    })?;
    serde_path_to_error::deserialize(whole_numbers(value)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        // serde reports a missing field at its parent's path; name the field itself.
        let (field, message) = if let Some(rest) = msg.strip_prefix("missing field `") {
            let name = rest.split('`').next().unwrap_or("");
            let field = if path == "." { name.to_string() } else { format!("{path}.{name}") };
            (field, "is required".to_string())
        } else {
            let field = if path == "." { "body".to_string() } else { path };
            // serde's message ends with " at line L column C"; the field name says where.
            let message = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            (field, message)
        };
        Error::Validation(vec![buyline_core::FieldError::new(field, message)]).into()
    })
}

/// JSON has one number type, and to JSON Schema (so to the OpenAPI document) `2.0` is the
/// integer 2; serde would refuse it for an integer field. A number with no fraction that fits
/// an `i64` becomes that integer before the body is read into its type.
fn whole_numbers(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(whole_numbers).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, whole_numbers(v))).collect()),
        other => other,
    }
}

/// A query string that answers 422 naming the bad parameter.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|e| {
            let field = e.path().to_string();
            Error::field(if field == "." { "query" } else { &field }, &e.into_inner().to_string()).into()
        })
    }
}

pub const SESSION_COOKIE: &str = "bl_session";

fn bearer(parts: &Parts) -> Option<&str> {
    bearer_token(&parts.headers)
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
}

/// Resolves the caller: a bearer token, or the browser's session cookie. A cookie alone
/// may read; to change anything it must come with `X-CSRF-Token`, the token the pages
/// render for this session (see [`crate::csrf`]).
async fn principal(parts: &mut Parts, state: &AppState) -> Result<Option<Principal>, ApiError> {
    if let Some(BearerPrincipal(p)) = parts.extensions.get::<BearerPrincipal>() {
        return Ok(Some(p.clone()));
    }
    if let Some(token) = bearer(parts) {
        return Ok(Some(state.services.authenticate(token, state.operator_token.as_deref()).await?));
    }
    let jar = CookieJar::from_headers(&parts.headers);
    let Some(session) = jar.get(SESSION_COOKIE) else { return Ok(None) };
    if !matches!(parts.method, Method::GET | Method::HEAD) {
        let header = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
        if !state.csrf.verify(&parts.headers, header) {
            return Err(Error::Forbidden("a cookie-authenticated change needs the X-CSRF-Token header".into()).into());
        }
    }
    Ok(state.services.session_account(session.value()).await?.map(Principal::Shopper))
}

/// The caller of a bearer-token request, once a middleware has resolved it (the
/// idempotency layer does, to scope keys), so the handler does not resolve it again.
/// Only bearer callers are kept: a cookie caller still goes through the CSRF check here.
#[derive(Clone)]
pub struct BearerPrincipal(pub Principal);

/// The authenticated caller; 401 without valid credentials.
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        principal(parts, state).await?.map(Auth).ok_or(ApiError::Core(Error::Unauthorized))
    }
}

/// The caller if credentials were sent; anonymous otherwise. Bad credentials are still 401.
pub struct MaybeAuth(pub Option<Principal>);

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(MaybeAuth(principal(parts, state).await?))
    }
}
