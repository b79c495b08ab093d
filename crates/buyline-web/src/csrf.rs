//! CSRF tokens bound to the browser: HMAC-SHA256, under a key the server processes share,
//! of the browser's session cookie, or before log-in of its pre-session cookie. A page
//! renders the token into its forms (and a `csrf-token` meta tag for `X-CSRF-Token`); a
//! form post or a cookie-authenticated API write must send back the token of the cookies
//! it arrives with. A cookie an attacker plants cannot be paired with a token they compute,
//! since they do not know the key, and a signed-in browser's token depends on its session,
//! which they do not know either.

use axum::http::HeaderMap;
use axum_extra::extract::CookieJar;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;

use crate::extract::SESSION_COOKIE;

/// A random id a signed-out browser gets with its first page, so the log-in and sign-up
/// forms have something of this browser's to be bound to.
pub const PRE_SESSION_COOKIE: &str = "bl_presession";

/// The signing key. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct CsrfKey(Arc<Hmac<Sha256>>);

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(…)")
    }
}

/// What a browser's tokens are bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding<'a> {
    /// The session cookie's value (a token for a session that has since ended is still
    /// this browser's: the form then fails at log-in, not at CSRF).
    Session(&'a str),
    /// The pre-session cookie's value, for forms shown before log-in.
    PreSession(&'a str),
}

impl<'a> Binding<'a> {
    /// The session cookie if the browser sends one, else its pre-session cookie. Pages and
    /// the checks use this one rule, so a form verifies against what rendered it.
    pub fn of(jar: &'a CookieJar) -> Option<Binding<'a>> {
        if let Some(s) = jar.get(SESSION_COOKIE).map(|c| c.value()).filter(|v| !v.is_empty()) {
            return Some(Binding::Session(s));
        }
        jar.get(PRE_SESSION_COOKIE).map(|c| c.value()).filter(|v| v.len() >= 20).map(Binding::PreSession)
    }
}

impl CsrfKey {
    pub fn new(secret: &[u8]) -> CsrfKey {
        // HMAC takes a key of any length.
        CsrfKey(Arc::new(Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length")))
    }

    /// The token for this binding (43 base64url characters).
    pub fn token(&self, binding: Binding<'_>) -> String {
        let mut mac = (*self.0).clone();
        // The kind is part of the input so a session value and a pre-session value can
        // never share a token.
        match binding {
            Binding::Session(v) => {
                mac.update(b"session\0");
                mac.update(v.as_bytes());
            }
            Binding::PreSession(v) => {
                mac.update(b"pre-session\0");
                mac.update(v.as_bytes());
            }
        }
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `sent` is the token of the cookies in `headers`. No cookie, no pass.
    pub fn verify(&self, headers: &HeaderMap, sent: &str) -> bool {
        let jar = CookieJar::from_headers(headers);
        match Binding::of(&jar) {
            Some(b) => buyline_core::ids::constant_time_eq(sent, &self.token(b)),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{header, HeaderValue};

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(cookie).unwrap());
        h
    }

    #[test]
    fn a_token_belongs_to_one_key_and_one_binding() {
        let key = CsrfKey::new(b"k1");
        let t = key.token(Binding::Session("sess_a"));
        assert!(key.verify(&headers("bl_session=sess_a"), &t));
        assert!(!key.verify(&headers("bl_session=sess_b"), &t));
        assert!(!CsrfKey::new(b"k2").verify(&headers("bl_session=sess_a"), &t));
        // The same value as a pre-session id has another token.
        assert_ne!(t, key.token(Binding::PreSession("sess_a")));
    }

    #[test]
    fn the_session_wins_over_a_planted_pre_session_cookie() {
        let key = CsrfKey::new(b"k");
        let planted = "pre_AAAAAAAAAAAAAAAAAAAAAAAA";
        let forged = key.token(Binding::PreSession(planted));
        assert!(key.verify(&headers(&format!("bl_presession={planted}")), &forged));
        assert!(!key.verify(&headers(&format!("bl_presession={planted}; bl_session=sess_a")), &forged));
        assert!(!key.verify(&HeaderMap::new(), ""));
        assert!(!key.verify(&headers("bl_presession=short"), &key.token(Binding::PreSession("short"))));
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", CsrfKey::new(b"secret")), "CsrfKey(…)");
    }
}
