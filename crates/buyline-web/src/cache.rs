//! Which responses a browser or a proxy may keep: `Cache-Control: no-store` on everything
//! except anonymous reads of public things. One rule instead of a list, so a new endpoint
//! that returns a token, a key, a card or an address is covered without anyone
//! remembering to add it: every `/api/v1` write (sign-up and log-in tokens, merchant keys,
//! webhook secrets, saved cards and addresses), every read made with credentials (orders,
//! exports, settings), and every page and redirect (a log-in answer carries the session
//! cookie). A handler that sets its own `Cache-Control` (a product image, say) keeps it.

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use axum_extra::extract::CookieJar;

use crate::extract::SESSION_COOKIE;

/// Whether a response to this request may be stored: an anonymous GET or HEAD of the API,
/// the static assets or the health checks. Pages are always personal enough not to be.
pub fn is_cacheable(method: &Method, path: &str, headers: &axum::http::HeaderMap) -> bool {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return false;
    }
    let anonymous = !headers.contains_key(header::AUTHORIZATION)
        && CookieJar::from_headers(headers).get(SESSION_COOKIE).is_none_or(|c| c.value().is_empty());
    let public =
        path.starts_with("/api/v1/") || path.starts_with("/static/") || path == "/healthz" || path == "/readyz";
    anonymous && public
}

/// Adds `Cache-Control: no-store` where [`is_cacheable`] says no and the handler set none.
pub async fn set_no_store(req: Request, next: Next) -> Response {
    let cacheable = is_cacheable(req.method(), req.uri().path(), req.headers());
    let mut resp = next.run(req).await;
    if !cacheable && !resp.headers().contains_key(header::CACHE_CONTROL) {
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn with(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn only_anonymous_public_reads_may_be_stored() {
        let none = HeaderMap::new();
        assert!(is_cacheable(&Method::GET, "/api/v1/timeline", &none));
        assert!(is_cacheable(&Method::HEAD, "/static/app.css", &none));
        assert!(!is_cacheable(&Method::POST, "/api/v1/sessions", &none));
        assert!(!is_cacheable(&Method::GET, "/api/v1/orders", &with(header::AUTHORIZATION, "Bearer x")));
        assert!(!is_cacheable(&Method::GET, "/api/v1/me/export", &with(header::COOKIE, "bl_session=abc")));
        assert!(!is_cacheable(&Method::GET, "/settings", &none));
        assert!(!is_cacheable(&Method::GET, "/", &none));
    }
}
