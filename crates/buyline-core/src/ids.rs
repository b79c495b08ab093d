//! Prefixed random identifiers (`acct_…`, `post_…`, …) and opaque secrets.

use rand::Rng;

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn random_base62(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

/// A new id such as `post_0Fh3kQ2xa…`: the prefix names the type; then the time it was made
/// (microseconds since 1970, 9 base62 digits, so ids made later sort later) and 16 random
/// base62 characters (~95 bits), which make it unguessable.
///
/// Time first keeps inserts at the right-hand edge of every primary-key index (SQLite's and
/// PostgreSQL's B-trees alike): a commit of many new rows writes a few pages, not one page
/// per row, as wholly random ids did.
pub fn new_id(prefix: &str) -> String {
    let micros =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
    format!("{prefix}_{}{}", base62_fixed(micros, 9), random_base62(16))
}

/// `n` in base62, most significant digit first, padded to `width` digits (the alphabet is in
/// ASCII order, so equal widths sort as the numbers do).
fn base62_fixed(mut n: u64, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for d in digits.iter_mut().rev() {
        *d = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(digits).expect("base62 digits are ASCII")
}

/// A new secret such as a session token or an API key: 40 base62 characters (~238 bits).
pub fn new_secret(prefix: &str) -> String {
    format!("{prefix}_{}", random_base62(40))
}

/// Is `s` shaped like one of our secrets: a [`new_secret`] (`st_…`, `sk_…`, `op_…`: a
/// lowercase prefix and 40 base62 characters) or a webhook signing secret (`whsec_` and the
/// base64 of 24 bytes)? Used to keep secrets out of anything stored for replay; the exact
/// shape keeps ordinary text such as "st_louis" from being mistaken for one.
pub fn looks_like_secret(s: &str) -> bool {
    if let Some(b64) = s.strip_prefix("whsec_") {
        return b64.len() == 32 && b64.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    }
    match s.split_once('_') {
        Some((prefix, rest)) => {
            !prefix.is_empty()
                && prefix.bytes().all(|b| b.is_ascii_lowercase())
                && rest.len() == 40
                && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        }
        None => false,
    }
}

/// Does `id` look like one of ours with this prefix? Used to answer 404 early on junk.
pub fn has_prefix(id: &str, prefix: &str) -> bool {
    id.len() > prefix.len() + 1
        && id.starts_with(prefix)
        && id.as_bytes()[prefix.len()] == b'_'
        && id[prefix.len() + 1..].bytes().all(|b| b.is_ascii_alphanumeric())
}

/// SHA-256 of a secret, hex encoded: what storage keeps instead of the secret itself.
pub fn hash_secret(secret: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(secret.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two strings in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_the_time_they_were_made() {
        let a = new_id("ord");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id("ord");
        assert!(a < b, "{a} then {b}");
        assert_eq!(a.len(), "ord_".len() + 25);
        assert!(has_prefix(&a, "ord"));
        assert_ne!(new_id("ord")[13..], new_id("ord")[13..], "the random part differs");
        assert!(base62_fixed(61, 2) < base62_fixed(62, 2));
        assert_eq!(base62_fixed(62 * 62 - 1, 2), "zz");
    }

    #[test]
    fn ids_carry_their_prefix_and_differ() {
        let a = new_id("post");
        let b = new_id("post");
        assert!(has_prefix(&a, "post"));
        assert!(!has_prefix(&a, "prod"));
        assert_ne!(a, b);
        assert!(!has_prefix("post_", "post"));
        assert!(!has_prefix("post_a/b", "post"));
    }

    /// A webhook signing secret as `service::webhooks` makes one.
    fn whsec() -> String {
        use base64::Engine;
        format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode([7u8; 24]))
    }

    #[test]
    fn secrets_are_recognised_by_their_exact_shape() {
        for s in [new_secret("st"), new_secret("sk"), new_secret("op"), whsec()] {
            assert!(looks_like_secret(&s), "{s}");
        }
        for s in ["st_louis", "sk_", "whsec_short", "op_ed is on page 2", &new_id("post")] {
            assert!(!looks_like_secret(s), "{s}");
        }
    }

    #[test]
    fn secret_hash_is_stable_and_hex() {
        assert_eq!(hash_secret("x"), hash_secret("x"));
        assert_eq!(hash_secret("x").len(), 64);
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
