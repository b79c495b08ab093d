//! Every redirect a page answers goes through here: a target is either a same-origin path
//! of safe characters or it becomes `/`. A `next=` value from a link or a form can then
//! neither send the browser to another site nor put a control character into `Location`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Whether `target` is a path on this site that a browser reads the way we do: it starts
/// with exactly one `/` (`//host` and `/\host` name another host), and holds only
/// unreserved, sub-delimiter and path characters and whole percent-escapes. Browsers drop
/// tabs and newlines inside URLs (`/\t/evil.example` is `//evil.example`), so anything
/// outside that set is refused rather than cleaned.
pub fn is_local_path(target: &str) -> bool {
    let b = target.as_bytes();
    if b.first() != Some(&b'/') || matches!(b.get(1), Some(b'/' | b'\\')) || target.len() > 2048 {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit) && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
                {
                    return false;
                }
                i += 3;
                continue;
            }
            c if c.is_ascii_alphanumeric() => {}
            b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
            | b':' | b'@' | b'/' | b'?' | b'#' => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

/// The `next` target to use: `candidate` if it is a local path, `/` otherwise.
pub fn safe_next(candidate: Option<&str>) -> String {
    match candidate {
        Some(n) if is_local_path(n) => n.to_string(),
        _ => "/".to_string(),
    }
}

/// `303 See Other` to `target`, or to `/` if it is not a local path. The only way pages
/// redirect, so no handler builds `Location` from unchecked input.
pub fn see_other(target: &str) -> Response {
    let target = if is_local_path(target) { target } else { "/" };
    // A local path is visible ASCII only, which is always a valid header value.
    let location = HeaderValue::from_str(target).unwrap_or(HeaderValue::from_static("/"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// `303 See Other` to where the payment processor sends the shopper: its 3-D Secure page, or
/// the return URL it was given. Those are absolute URLs from a party we call, not from the
/// request; they must still parse as http(s), and are sent in their parsed (escaped) form.
pub fn see_other_processor(url: &str) -> Response {
    if is_local_path(url) {
        return see_other(url);
    }
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            match HeaderValue::from_str(u.as_str()) {
                Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
                Err(_) => see_other("/"),
            }
        }
        _ => see_other("/"),
    }
}

/// The log-in page, coming back to `next` afterwards if it is a local path.
pub fn to_login(next: &str) -> Response {
    if next == "/" || !is_local_path(next) {
        return see_other("/login");
    }
    // Escape what means something in a query string (`&`, `#`, `+`, `%`, `=`, `?`, `;`);
    // keep the slashes readable.
    let mut query = String::with_capacity(next.len() + 6);
    for c in next.chars() {
        match c {
            c if c.is_ascii_alphanumeric() => query.push(c),
            '-' | '.' | '_' | '~' | '/' | ':' | '@' | '!' | '$' | '\'' | '(' | ')' | '*' | ',' => query.push(c),
            c => query.push_str(&format!("%{:02X}", c as u32)),
        }
    }
    see_other(&format!("/login?next={query}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_pass() {
        for ok in ["/", "/u/alice", "/merchant?m=mer_1", "/settings#links-h", "/orders/ord_1?placed=1", "/a%20b"] {
            assert!(is_local_path(ok), "{ok}");
        }
    }

    #[test]
    fn other_sites_and_control_characters_fail() {
        for bad in [
            "",
            "u/alice",
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\nSet-Cookie: x=1",
            "/\u{7f}",
            "/\0",
            "/a\\b",
            "https://evil.example/",
            "/a b",
            "/%",
            "/%0",
            "/%zz",
            "/é",
            "/<script>",
        ] {
            assert!(!is_local_path(bad), "{bad:?}");
            assert_eq!(safe_next(Some(bad)), "/");
        }
    }

    #[test]
    fn redirects_never_fail() {
        for target in ["/\n", "//evil.example", "/orders/\0"] {
            let r = see_other(target);
            assert_eq!(r.status(), StatusCode::SEE_OTHER);
            assert_eq!(r.headers()[header::LOCATION], "/");
        }
        let r = to_login("/buy/post_1");
        assert_eq!(r.headers()[header::LOCATION], "/login?next=/buy/post_1");
        assert_eq!(to_login("/merchant?m=a&b#c").headers()[header::LOCATION], "/login?next=/merchant%3Fm%3Da%26b%23c");
        let r = see_other_processor("http://127.0.0.1:1/test-processor/challenge/pay_1");
        assert_eq!(r.headers()[header::LOCATION], "http://127.0.0.1:1/test-processor/challenge/pay_1");
        assert_eq!(see_other_processor("javascript:alert(1)").headers()[header::LOCATION], "/");
        assert_eq!(to_login("/buy/\n").headers()[header::LOCATION], "/login");
    }
}
