//! Size limits on input, in one place. Every service checks a list's length, a map's size,
//! a string's length and a product of option counts against these before doing any work
//! that grows with them: a request must cost work in proportion to its size, never more.
//! (The web layer also caps a body at 64 KiB; these limits are what a valid body may hold.)

/// Options per product (e.g. size, colour, material).
pub const MAX_OPTIONS: usize = 3;
/// Values per option.
pub const MAX_OPTION_VALUES: usize = 30;
/// Variants per product, given or made from every combination of option values.
pub const MAX_VARIANTS: usize = 100;
/// Shipping rates per product.
pub const MAX_SHIPPING_RATES: usize = 20;
/// Entries in a list or map keyed by country: a shipping rate's countries, cart hashtags,
/// tax rates, the rollout flag's countries. ISO 3166 assigns 249 codes.
pub const MAX_COUNTRIES: usize = 250;
/// Entries in `cart_kinds` (`physical`, `digital`; `donation` is refused by name).
pub const MAX_CART_KINDS: usize = 3;
/// Characters of a cart hashtag, `#` included, checked before the text is parsed.
pub const MAX_HASHTAG_CHARS: usize = 100;
/// Entries in the fee policy's `kinds` (there are four merchant kinds).
pub const MAX_FEE_KINDS: usize = 4;
/// Per-merchant entries in the fee policy and in the rollout flag's merchant allowlist.
pub const MAX_MERCHANT_ENTRIES: usize = 1000;
/// Bytes of an id named in input (merchant ids in the fee policy and the rollout flag).
pub const MAX_ID_BYTES: usize = 64;
/// Bytes of a post's text, checked before twitter-text parses it. A valid post weighs at
/// most 280; its bytes can exceed that (emoji sequences weigh 2 whatever their length, a
/// URL weighs 23), but not by this much.
pub const MAX_POST_BYTES: usize = 8 * 1024;
/// Bytes of a URL given in input (webhook, image), checked before it is parsed.
pub const MAX_URL_BYTES: usize = 2048;
/// Bytes of a page cursor, checked before it is decoded.
pub const MAX_CURSOR_BYTES: usize = 256;

/// Is `s` certainly longer than `max` characters, without counting them? A character is at
/// most four bytes, so more than `4 × max` bytes is too long whatever the text.
pub fn too_many_bytes_for(s: &str, max_chars: usize) -> bool {
    s.len() > max_chars.saturating_mul(4)
}

/// `values`' sizes multiplied, or `None` past `usize::MAX`: how many combinations a set of
/// options makes, computed without making any.
pub fn combinations(counts: impl IntoIterator<Item = usize>) -> Option<usize> {
    counts.into_iter().try_fold(1usize, |acc, n| acc.checked_mul(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations_multiply_and_saturate() {
        assert_eq!(combinations([]), Some(1));
        assert_eq!(combinations([2, 3, 4]), Some(24));
        assert_eq!(combinations([10; 8]), Some(100_000_000));
        assert_eq!(combinations([50; 20]), None);
        assert_eq!(combinations([0, 50]), Some(0));
    }

    #[test]
    fn byte_precheck_never_refuses_a_short_string() {
        assert!(!too_many_bytes_for("😀😀", 2));
        assert!(too_many_bytes_for("abcdefghi", 2));
    }
}
