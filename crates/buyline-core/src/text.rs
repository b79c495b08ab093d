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

/// Extracts hashtags, mentions and URLs with code-point indices.
pub fn extract_entities(text: &str) -> Entities {
    let extractor = Extractor::new();
    let mut out = Entities::default();
    for e in guarded(|| extractor.extract_entities_with_indices(text)).unwrap_or_default() {
        let indices = [e.get_start(), e.get_end()];
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
