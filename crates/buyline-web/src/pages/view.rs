//! View models: what templates show, computed in Rust so templates stay plain.

use buyline_core::model::{BuyCard, Post, Product, TimelineItem};
use buyline_core::text::Entities;
use buyline_core::types::{now_micros, Money};

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Post text as HTML: escaped, with mentions and URLs linked and hashtags marked. Entity
/// indices are code points, as twitter-text gives them.
pub fn post_html(text: &str, entities: &Entities) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut spans: Vec<(usize, usize, String)> = Vec::new();
    for m in &entities.mentions {
        let (s, e) = (m.indices[0] as usize, m.indices[1] as usize);
        spans.push((s, e, format!("<a href=\"/u/{}\">", escape(&m.handle))));
    }
    let bare = buyline_core::text::links(text);
    for u in entities.urls.iter().chain(bare.iter()) {
        let (s, e) = (u.indices[0] as usize, u.indices[1] as usize);
        let href = if u.url.starts_with("http://") || u.url.starts_with("https://") {
            u.url.clone()
        } else {
            format!("https://{}", u.url)
        };
        spans.push((s, e, format!("<a href=\"{}\" rel=\"nofollow noopener\">", escape(&href))));
    }
    for h in &entities.hashtags {
        let (s, e) = (h.indices[0] as usize, h.indices[1] as usize);
        spans.push((s, e, format!("<a href=\"/hashtag/{}\"><span class=\"tag\">", escape(&url_segment(&h.tag)))));
    }
    spans.sort_by_key(|s| s.0);
    let mut out = String::new();
    let mut i = 0;
    for (s, e, open) in spans {
        if s < i || e > chars.len() || s >= e {
            continue;
        }
        out.push_str(&escape(&chars[i..s].iter().collect::<String>()));
        out.push_str(&open);
        out.push_str(&escape(&chars[s..e].iter().collect::<String>()));
        out.push_str(if open.ends_with("<span class=\"tag\">") {
            "</span></a>"
        } else if open.starts_with("<a") {
            "</a>"
        } else {
            "</span>"
        });
        i = e;
    }
    out.push_str(&escape(&chars[i..].iter().collect::<String>()));
    out
}

/// Text as one URL path segment or query value: unreserved ASCII kept, every other byte
/// percent-encoded (UTF-8).
pub fn url_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// "now", "5m", "3h", "2d", or the date.
pub fn ago(micros: i64) -> String {
    let secs = (now_micros() - micros).max(0) / 1_000_000;
    match secs {
        0..=59 => "now".into(),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        86_400..=604_799 => format!("{}d", secs / 86_400),
        _ => buyline_core::types::rfc3339(micros)[..10].to_string(),
    }
}

pub struct CardView {
    pub product_id: String,
    pub name: String,
    pub image_url: String,
    pub price: String,
    pub available: bool,
}

pub fn price_range(min: i64, max: i64, currency: buyline_core::types::Currency) -> String {
    let lo = Money::new(min, currency).display();
    if min == max {
        lo
    } else {
        format!("{lo} – {}", Money::new(max, currency).display())
    }
}

impl From<&BuyCard> for CardView {
    fn from(c: &BuyCard) -> Self {
        CardView {
            product_id: c.product_id.clone(),
            name: c.name.clone(),
            image_url: c.image_url.clone(),
            price: price_range(c.price_min, c.price_max, c.currency),
            available: c.available,
        }
    }
}

pub struct PostView {
    pub id: String,
    pub handle: String,
    pub display_name: String,
    pub html: String,
    pub ago: String,
    pub created_at: String,
    pub reply_to: Option<String>,
    pub card: Option<CardView>,
    pub product_url: Option<String>,
    pub promoted: bool,
}

impl PostView {
    pub fn of(post: &Post) -> Self {
        PostView {
            id: post.id.clone(),
            handle: post.author.handle.clone(),
            display_name: post.author.display_name.clone(),
            html: post_html(&post.text, &post.entities),
            ago: ago(post.created_at),
            created_at: buyline_core::types::rfc3339(post.created_at),
            reply_to: post.reply_to.clone(),
            card: None,
            product_url: None,
            promoted: false,
        }
    }

    pub fn item(item: &TimelineItem) -> Self {
        let mut v = PostView::of(&item.post);
        v.card = item.buy.as_ref().map(CardView::from);
        // Holdout and other markets get a plain link; keep it on this site's path.
        // The holdout's link names its post (`?via=`), for the experiment's attribution.
        v.product_url =
            item.product_url.as_ref().zip(item.post.product_id.as_ref()).map(|(u, id)| match u.split_once("?via=") {
                Some((_, via)) if via == item.post.id => format!("/p/{id}?via={via}"),
                _ => format!("/p/{id}"),
            });
        v.promoted = item.promoted;
        v
    }
}

pub struct VariantView {
    pub label: String,
    pub sku: String,
    pub price: String,
    pub stock: String,
    pub available: bool,
}

pub fn variants(p: &Product) -> Vec<VariantView> {
    p.variants
        .iter()
        .map(|v| {
            let label = p
                .options
                .iter()
                .filter_map(|o| v.options.get(&o.name).map(|val| format!("{}: {val}", o.name)))
                .collect::<Vec<_>>()
                .join(", ");
            VariantView {
                label: if label.is_empty() { p.name.clone() } else { label },
                sku: v.sku.clone(),
                price: Money::new(v.price, p.currency).display(),
                stock: match v.inventory.quantity {
                    _ if !v.available => "Sold out".into(),
                    Some(q) if q <= 5 => format!("Only {q} left"),
                    Some(_) => "In stock".into(),
                    None => "Available".into(),
                },
                available: v.available,
            }
        })
        .collect()
}

/// An amount in minor units of the currency with this ISO code, for display (`$25.00`); an
/// unknown code shows as the number and the code.
pub fn money_of(minor: i64, currency: &str) -> String {
    match buyline_core::types::Currency::parse(currency) {
        Some(c) => buyline_core::types::Money::new(minor, c).display(),
        None => format!("{minor} {currency}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use buyline_core::text::extract_entities;

    #[test]
    fn post_html_escapes_and_links() {
        let t = "<b>hi</b> @bob #Tag é https://x.com/a?b=1&c=2";
        let html = post_html(t, &extract_entities(t));
        assert!(
            html.starts_with("&lt;b&gt;hi&lt;/b&gt; <a href=\"/u/bob\">@bob</a> <a href=\"/hashtag/Tag\"><span class=\"tag\">#Tag</span></a> é ")
        );
        assert!(html.contains("<a href=\"https://x.com/a?b=1&amp;c=2\" rel=\"nofollow noopener\">"));
        assert!(!html.contains("<b>"));
    }
}
