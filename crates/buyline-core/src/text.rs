//! Post text under twitter-text rules: weighted length 280 and the entities it extracts.

use crate::error::FieldError;
use serde::{Deserialize, Serialize};
use twitter_text::entity::Type;
use twitter_text::extractor::{Extract, Extractor};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HashtagEntity {
    /// The tag without its `#`.
    pub tag: String,
    /// Start and end offsets in Unicode code points, end exclusive.
    pub indices: [i32; 2],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MentionEntity {
    /// The mentioned handle without its `@`.
    pub handle: String,
    pub indices: [i32; 2],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UrlEntity {
    pub url: String,
    pub indices: [i32; 2],
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Entities {
    pub hashtags: Vec<HashtagEntity>,
    pub mentions: Vec<MentionEntity>,
    pub urls: Vec<UrlEntity>,
}

/// The text of a post: valid under twitter-text's v3 configuration, with its entities.
#[derive(Debug, Clone)]
pub struct PostText {
    pub text: String,
    pub entities: Entities,
    pub weighted_length: i32,
}

impl PostText {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(FieldError::new(field, "must not be empty"));
        }
        let config = twitter_text_config::default();
        let Some(parsed) = guarded(|| twitter_text::parse(text, config, true)) else {
            return Err(FieldError::new(field, "cannot be read here: put a space before the @"));
        };
        if parsed.weighted_length > config.max_weighted_tweet_length {
            return Err(FieldError::new(
                field,
                format!(
                    "is too long: {} of {} characters (twitter-text weighted length)",
                    parsed.weighted_length, config.max_weighted_tweet_length
                ),
            ));
        }
        if !parsed.is_valid {
            return Err(FieldError::new(field, "contains characters that are not allowed"));
        }
        let entities = extract_entities(text);
        Ok(PostText { text: text.to_string(), entities, weighted_length: parsed.weighted_length })
    }
}

/// Every `http://` or `https://` word of the text, with code-point indices, whether or not
/// twitter-text counts it as a URL: it recognises only hosts under a known top-level domain,
/// so a deployment's own links on `localhost` or an IP address are found here instead.
pub fn links(text: &str) -> Vec<UrlEntity> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() {
            i += 1;
        }
        let mut end = i;
        while end > start && matches!(chars[end - 1], '.' | ',' | '!' | '?' | ')' | ';' | ':' | '"' | '\'') {
            end -= 1;
        }
        let word: String = chars[start..end].iter().collect();
        if (word.starts_with("http://") || word.starts_with("https://")) && word.len() > "https://".len() {
            out.push(UrlEntity { url: word, indices: [start as i32, end as i32] });
        }
    }
    out
}

/// Runs a twitter-text call, turning its panic into `None`. twitter-text 0.3.1 slices inside
/// a character when an `@` follows one ASCII character after a multi-byte one (`"éa@b"`,
/// `"caféX@foo"`): without this, such a post was a 500 and such a product name in a cart
/// reply would kill the answerer.
fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}

/// Extracts hashtags, mentions and URLs with code-point indices, as twitter-text's own
/// `extractEntitiesWithIndices` does: URLs with or without a scheme (`example.com` is one),
/// then hashtags and mentions, and where two overlap the earlier one wins.
///
/// The crate's combined extraction leaves out URLs without a scheme and counts indices in
/// UTF-16 units (an emoji before an entity shifts it by one), so this asks for each kind
/// separately and converts the offsets to code points.
pub fn extract_entities(text: &str) -> Entities {
    let extractor = Extractor::new();
    debug_assert!(extractor.get_extract_url_without_protocol());
    let mut found: Vec<twitter_text::entity::Entity<'_>> = Vec::new();
    found.extend(guarded(|| extractor.extract_urls_with_indices(text)).unwrap_or_default());
    found.extend(guarded(|| extractor.extract_hashtags_with_indices(text)).unwrap_or_default());
    found.extend(guarded(|| extractor.extract_mentions_or_lists_with_indices(text)).unwrap_or_default());
    found.sort_by_key(|e| (e.get_start(), std::cmp::Reverse(e.get_end())));
    let points = Utf16ToCodePoints::new(text);
    let mut out = Entities::default();
    let mut covered_to = 0;
    for e in found {
        if e.get_start() < covered_to {
            continue;
        }
        covered_to = e.get_end();
        let indices = [points.convert(e.get_start()), points.convert(e.get_end())];
        let value = e.get_value().to_string();
        match e.get_type() {
            Type::HASHTAG => out.hashtags.push(HashtagEntity { tag: value, indices }),
            Type::MENTION => out.mentions.push(MentionEntity { handle: value, indices }),
            Type::URL => out.urls.push(UrlEntity { url: value, indices }),
            Type::CASHTAG | Type::FEDERATEDMENTION => {}
        }
    }
    out
}

/// Maps UTF-16 offsets (what the crate reports) to code-point offsets (what twitter-text's
/// entities and the SPEC count).
struct Utf16ToCodePoints {
    /// The UTF-16 offset at which each code point starts, ascending.
    starts: Vec<i32>,
}

impl Utf16ToCodePoints {
    fn new(text: &str) -> Self {
        let mut starts = Vec::with_capacity(text.len());
        let mut at = 0i32;
        for c in text.chars() {
            starts.push(at);
            at += c.len_utf16() as i32;
        }
        Utf16ToCodePoints { starts }
    }

    /// The code point at (or, inside a surrogate pair, just after) this UTF-16 offset.
    fn convert(&self, utf16: i32) -> i32 {
        self.starts.partition_point(|&s| s < utf16) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_entities_with_code_point_indices() {
        let p = PostText::parse("text", "héllo #Sale @acme see https://example.com/p/1").unwrap();
        assert_eq!(p.entities.hashtags, vec![HashtagEntity { tag: "Sale".into(), indices: [6, 11] }]);
        assert_eq!(
            links("Cart: http://127.0.0.1:8080/cart. And ftp://x, https://é.example/p/1!"),
            vec![
                UrlEntity { url: "http://127.0.0.1:8080/cart".into(), indices: [6, 32] },
                UrlEntity { url: "https://é.example/p/1".into(), indices: [47, 68] },
            ]
        );
        assert_eq!(p.entities.mentions, vec![MentionEntity { handle: "acme".into(), indices: [12, 17] }]);
        assert_eq!(p.entities.urls[0].url, "https://example.com/p/1");
        assert_eq!(p.entities.urls[0].indices, [22, 45]);
    }

    fn urls(e: &Entities) -> Vec<(&str, [i32; 2])> {
        e.urls.iter().map(|u| (u.url.as_str(), u.indices)).collect()
    }

    #[test]
    fn bare_domains_are_urls_as_in_twitter_text() {
        let e = extract_entities("see example.com and www.example.org/p?q=1, or https://x.example.net/a.");
        assert_eq!(
            urls(&e),
            vec![("example.com", [4, 15]), ("www.example.org/p?q=1", [20, 41]), ("https://x.example.net/a", [46, 69]),]
        );
        // Not a domain: an unknown top-level domain without a scheme, a file name.
        assert!(extract_entities("notes.txt and foo.notatld").urls.is_empty());
    }

    #[test]
    fn indices_count_code_points_after_emoji() {
        // 😀 is one code point (two UTF-16 units); 👍🏽 is two code points.
        let t = "😀 #Sale @acme 👍🏽 https://example.com/é example.org";
        let e = extract_entities(t);
        assert_eq!(e.hashtags, vec![HashtagEntity { tag: "Sale".into(), indices: [2, 7] }]);
        assert_eq!(e.mentions, vec![MentionEntity { handle: "acme".into(), indices: [8, 13] }]);
        assert_eq!(urls(&e), vec![("https://example.com/é", [17, 38]), ("example.org", [39, 50])]);
        let chars: Vec<char> = t.chars().collect();
        let at = |i: [i32; 2]| chars[i[0] as usize..i[1] as usize].iter().collect::<String>();
        assert_eq!(at(e.hashtags[0].indices), "#Sale");
        assert_eq!(at(e.mentions[0].indices), "@acme");
        assert_eq!(at(e.urls[0].indices), "https://example.com/é");
        assert_eq!(at(e.urls[1].indices), "example.org");
    }

    #[test]
    fn a_hashtag_inside_a_url_is_part_of_the_url() {
        let e = extract_entities("🎉 https://example.com/#deals and #real");
        assert_eq!(urls(&e), vec![("https://example.com/#deals", [2, 28])]);
        assert_eq!(e.hashtags, vec![HashtagEntity { tag: "real".into(), indices: [33, 38] }]);
        assert!(e.mentions.is_empty());
    }

    #[test]
    fn weighted_length_limit() {
        assert!(PostText::parse("text", &"a".repeat(280)).is_ok());
        assert!(PostText::parse("text", &"a".repeat(281)).is_err());
        // CJK characters weigh two: 140 fit, 141 do not.
        assert!(PostText::parse("text", &"字".repeat(140)).is_ok());
        assert!(PostText::parse("text", &"字".repeat(141)).is_err());
        // A URL counts 23 whatever its length.
        let long_url = format!("https://example.com/{}", "x".repeat(300));
        assert!(PostText::parse("text", &format!("look {long_url}")).is_ok());
        assert!(PostText::parse("text", "   ").is_err());
    }
}
