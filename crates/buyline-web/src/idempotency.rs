//! The `Idempotency-Key` middleware for API POSTs (SPEC §3): the same key and body replay
//! the first response; the same key with another body is 422 `idempotency_mismatch`.
//!
//! Keys are scoped to the caller (the account, the merchant, the operator, or anonymous), so
//! one client's key never meets another's, and a shopper's keys can be found (and erased)
//! by account. Replays never hold a secret: session tokens, API keys and signing secrets in
//! a response are blanked before it is stored (they are shown once). Replays expire after
//! 24 hours, as Stripe's do.
//!
//! A purchase is bound to its key ([`BoundKey`]): the checkout it pays is named after the
//! key, so a retry — while the first is still running, or after the server running it died —
//! finds that purchase and answers with its order instead of starting a second one. Other
//! requests still running when a duplicate arrives are waited for briefly and replayed; a
//! first attempt that died with its server is taken as abandoned after a minute.

use crate::error::{problem, ApiError};
use crate::extract::{bearer_token, BearerPrincipal, SESSION_COOKIE};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use buyline_core::service::{Idempotency, Principal};
use buyline_core::Error;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;

/// The key of the request being served, hashed with its caller and body: what a purchase is
/// bound to. Handed to handlers as a request extension.
#[derive(Debug, Clone)]
pub struct BoundKey(pub String);

/// Response fields that carry a secret shown once; a stored replay has them `null`.
const SECRET_FIELDS: &[&str] = &["token", "api_key", "webhook_secret", "secret", "password", "download"];

/// How long a duplicate waits for the first request's answer before it is told to retry.
const WAIT_FOR_FIRST_MS: u64 = 3_000;

fn sha256_hex(parts: &[&[u8]]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Routes whose handlers settle a retry through the purchase bound to the key, so they may
/// run again while (or after) the first attempt runs.
fn binds_purchase(path: &str) -> bool {
    path == "/api/v1/orders"
}

/// The idempotency layer's state: the app, and the POST routes that need credentials.
#[derive(Clone)]
pub struct IdempotencyState {
    pub app: AppState,
    /// Matched paths (`/api/v1/orders`, …) of POSTs that need a caller; from the document.
    pub needs_credentials: Arc<HashSet<String>>,
}

/// Who is calling, for scoping keys: `(scope, account to erase it with)`, and the bearer
/// caller to hand to the handler. Bad credentials get `None`: the handler answers 401 and
/// nothing is recorded.
async fn caller(st: &AppState, headers: &HeaderMap) -> Option<(String, Option<String>, Option<Principal>)> {
    let bearer = bearer_token(headers);
    let session = CookieJar::from_headers(headers).get(SESSION_COOKIE).map(|c| c.value().to_string());
    let principal = match (bearer, session) {
        (Some(token), _) => Some(st.services.authenticate(token, st.operator_token.as_deref()).await.ok()?),
        (None, Some(session)) => Some(Principal::Shopper(st.services.session_account(&session).await.ok()??)),
        (None, None) => None,
    };
    let resolved = principal.clone().filter(|_| bearer.is_some());
    let (scope, account) = match principal {
        Some(Principal::Shopper(a)) => (format!("acct:{}", a.id), Some(a.id)),
        Some(Principal::Merchant { merchant, account }) => (format!("mer:{}", merchant.id), Some(account.id)),
        Some(Principal::Operator) => ("operator".into(), None),
        None => ("anonymous".into(), None),
    };
    Some((scope, account, resolved))
}

/// Blanks every secret in a JSON body before it is kept for replays.
fn without_secrets(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, field) in map.iter_mut() {
                if SECRET_FIELDS.contains(&k.as_str()) && !field.is_null() {
                    *field = Value::Null;
                } else {
                    without_secrets(field);
                }
            }
        }
        Value::Array(list) => list.iter_mut().for_each(without_secrets),
        // A secret a handler might return under another name.
        Value::String(s) if buyline_core::ids::looks_like_secret(s) => *v = Value::Null,
        _ => {}
    }
}

/// The body to keep for replays: JSON with its secrets blanked; anything else not at all.
fn replayable(content_type: &str, bytes: &[u8]) -> String {
    if !content_type.contains("json") {
        return String::new();
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(mut v) => {
            without_secrets(&mut v);
            v.to_string()
        }
        Err(_) => String::new(),
    }
}

/// The account a response created (`{"account": {"id": "acct_…"}}`), if any.
fn made_account(content_type: &str, bytes: &[u8]) -> Option<String> {
    if !content_type.contains("json") {
        return None;
    }
    let v: Value = serde_json::from_slice(bytes).ok()?;
    v["account"]["id"].as_str().filter(|id| id.starts_with("acct_")).map(str::to_string)
}

/// A 409 that says "in progress" (code `conflict`), not a final one such as `out_of_stock`.
fn still_running(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| v["code"] == "conflict")
}

fn replay(status: u16, content_type: &str, body: String) -> Response {
    let mut resp = (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body).into_response();
    if let Ok(ct) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}

pub async fn idempotency(State(state): State<IdempotencyState>, req: Request, next: Next) -> Response {
    let st = &state.app;
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string) else {
        return next.run(req).await;
    };
    if key.is_empty() || key.len() > 255 {
        return ApiError::Core(Error::field("Idempotency-Key", "must be 1 to 255 characters")).into_response();
    }
    let (mut parts, body) = req.into_parts();
    let Some((scope, account_id, resolved)) = caller(st, &parts.headers).await else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    if account_id.is_none() && scope == "anonymous" {
        // No caller on a route that needs one: the handler's 401 comes first, before an
        // anonymous key (shared by everyone without credentials) could replay or refuse.
        let needs = parts.extensions.get::<MatchedPath>().is_some_and(|p| state.needs_credentials.contains(p.as_str()));
        if needs {
            return next.run(Request::from_parts(parts, body)).await;
        }
    }
    if let Some(p) = resolved {
        parts.extensions.insert(BearerPrincipal(p));
    }
    let bytes = match axum::body::to_bytes(body, crate::BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return ApiError::PayloadTooLarge.into_response(),
    };
    let hash = sha256_hex(&[parts.method.as_str().as_bytes(), parts.uri.path().as_bytes(), &bytes]);
    let bound = binds_purchase(parts.uri.path());
    parts.extensions.insert(BoundKey(sha256_hex(&[scope.as_bytes(), key.as_bytes(), hash.as_bytes()])));
    let mut begun = st.services.idempotency_begin(&scope, account_id.as_deref(), &key, &hash).await;
    // A duplicate of a request still running: wait a little for its answer.
    let mut waited = 0;
    while matches!(begun, Ok(Idempotency::InProgress)) && !bound && waited < WAIT_FOR_FIRST_MS {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        waited += 50;
        // Only read while waiting: the first request's answer, once it is recorded.
        if let Ok(Some(answer)) = st.services.idempotency_answer(&scope, &key).await {
            begun = Ok(answer);
        }
    }
    match begun {
        Err(e) => ApiError::Core(e).into_response(),
        Ok(Idempotency::Mismatch) => ApiError::Core(Error::IdempotencyMismatch).into_response(),
        Ok(Idempotency::InProgress) if !bound => {
            let mut resp = problem(
                StatusCode::CONFLICT,
                "conflict",
                "A request with this Idempotency-Key is still being processed; retry shortly.".into(),
                vec![],
            );
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            resp
        }
        Ok(Idempotency::Replay { status, content_type, body }) => replay(status, &content_type, body),
        // New, or a purchase whose first attempt is still running or died: the handler
        // settles it through the bound checkout.
        Ok(Idempotency::New) | Ok(Idempotency::InProgress) => {
            let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
            let status = resp.status();
            if status.is_server_error() {
                // Nothing final to replay: a retry runs again (and, for a purchase, finds it).
                let _ = st.services.idempotency_abandon(&scope, &key).await;
                return resp;
            }
            let (parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();
            let ct = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            if status == StatusCode::CONFLICT && still_running(&bytes) {
                // "Still being placed" is no final answer either.
                let _ = st.services.idempotency_abandon(&scope, &key).await;
                return Response::from_parts(parts, Body::from(bytes));
            }
            let kept = replayable(&ct, &bytes);
            // A sign-up's replay belongs to the account it made.
            let made = account_id.is_none().then(|| made_account(&ct, &bytes)).flatten();
            if let Err(e) =
                st.services.idempotency_finish(&scope, &key, status.as_u16(), &ct, &kept, made.as_deref()).await
            {
                tracing::warn!(error = %e, "could not record the idempotent response");
            }
            Response::from_parts(parts, Body::from(bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_blanked_at_any_depth() {
        let mut v = serde_json::json!({
            "account": {"id": "acct_1", "handle": "ann"},
            "token": "st_abc",
            "merchant": {"id": "mer_1"},
            "api_key": "sk_x",
            "webhook_secret": "whsec_y",
            "list": [{"note": buyline_core::ids::new_secret("sk")}, "plain", "st_louis is a city"],
        });
        without_secrets(&mut v);
        assert_eq!(v["token"], Value::Null);
        assert_eq!(v["api_key"], Value::Null);
        assert_eq!(v["webhook_secret"], Value::Null);
        assert_eq!(v["list"][0]["note"], Value::Null);
        assert_eq!(v["list"][1], "plain");
        assert_eq!(v["list"][2], "st_louis is a city", "text that merely starts like a secret stays");
        assert_eq!(v["account"]["handle"], "ann");
    }

    #[test]
    fn only_json_is_kept() {
        assert_eq!(replayable("text/html", b"<p>st_x</p>"), "");
        assert_eq!(
            replayable("application/json", br#"{"token":"st_x","id":"acct_1"}"#),
            r#"{"id":"acct_1","token":null}"#
        );
    }
}
