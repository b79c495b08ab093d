//! Campaigns and discovery, the rules without storage: a campaign's record and status
//! machine, how promoted posts are woven into a home timeline page (and the cursor that
//! keeps that weaving stable across pages), and how a search query becomes the words the
//! database's full-text index is asked for. Unit-tested without a database.

use crate::error::{Error, Result};
use crate::model::ser_time;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// One promoted item in at most this many consecutive timeline items.
pub const PROMOTED_EVERY: u64 = 5;
/// Active campaigns of one country the timeline considers at a time, bounded so a timeline
/// request costs the same however many campaigns run. With more, the window moves on at
/// each load of the one-second cache (`service/campaigns.rs`), so every active campaign
/// takes its turn.
pub const MAX_PROMOTIONS: i64 = 50;
/// Countries one campaign may name.
pub const MAX_CAMPAIGN_COUNTRIES: usize = 50;
/// Characters of a search query.
pub const MAX_QUERY_CHARS: usize = 100;
/// Words of a search query passed to the index (the rest are ignored).
pub const MAX_QUERY_WORDS: usize = 16;
/// Accounts `GET /suggestions` answers.
pub const MAX_SUGGESTIONS: i64 = 10;
/// An account that posted within this long counts as active for suggestions.
pub const ACTIVE_WITHIN_MICROS: i64 = 30 * 24 * 3600 * 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CampaignStatus {
    Active,
    Paused,
    /// Final: an ended campaign cannot be resumed.
    Ended,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Active => "active",
            CampaignStatus::Paused => "paused",
            CampaignStatus::Ended => "ended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(CampaignStatus::Active),
            "paused" => Some(CampaignStatus::Paused),
            "ended" => Some(CampaignStatus::Ended),
            _ => None,
        }
    }

    /// May a campaign in this status move to `to`? Anything but `ended` may change; the
    /// same status again is allowed (an idempotent PATCH).
    pub fn may_become(self, to: CampaignStatus) -> bool {
        self != CampaignStatus::Ended || to == CampaignStatus::Ended
    }
}

/// A merchant's promotion of one of its posts to a list of countries (SPEC §3 shape).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Campaign {
    pub id: String,
    #[serde(skip)]
    pub merchant_id: String,
    pub post_id: String,
    /// ISO 3166 alpha-2 codes.
    pub countries: Vec<String>,
    pub status: CampaignStatus,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// An active campaign's post as the timeline weaves it (cached a second per country, so a
/// timeline request with promoted items costs no extra query).
#[derive(Debug, Clone)]
pub struct Promotion {
    pub post: crate::model::Post,
    /// The campaign's place in the order the window moves through: `(created_at, id)`.
    pub campaign: (i64, String),
}

impl Promotion {
    pub fn post_id(&self) -> &str {
        &self.post.id
    }

    pub fn author_id(&self) -> &str {
        &self.post.author.id
    }
}

/// An account as search and suggestions show it: public fields only.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AccountSummary {
    pub id: String,
    pub handle: String,
    pub display_name: String,
    pub kind: crate::model::AccountKind,
    pub country: String,
    pub bio: String,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// Where a home timeline page starts: the last organic item served (none on the first
/// page) and how many items (organic and promoted) came before this page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimelineCursor {
    pub before: Option<(i64, String)>,
    pub served: u64,
}

impl TimelineCursor {
    pub fn encode(&self) -> String {
        let raw = match &self.before {
            Some((ts, id)) => format!("h{}:{ts}:{id}", self.served),
            None => format!("h{}", self.served),
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(cursor: Option<&str>) -> Result<TimelineCursor> {
        let Some(c) = cursor.filter(|c| !c.is_empty()) else { return Ok(TimelineCursor::default()) };
        let bad = || Error::field("cursor", "is not a cursor this API returned");
        if c.len() > crate::limits::MAX_CURSOR_BYTES {
            return Err(bad());
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let rest = raw.strip_prefix('h').ok_or_else(bad)?;
        let mut parts = rest.splitn(3, ':');
        let served: u64 = parts.next().unwrap_or("").parse().map_err(|_| bad())?;
        let before = match (parts.next(), parts.next()) {
            (None, None) => None,
            (Some(ts), Some(id)) if !id.is_empty() && !id.chars().any(char::is_control) => {
                Some((ts.parse().map_err(|_| bad())?, id.to_string()))
            }
            _ => return Err(bad()),
        };
        Ok(TimelineCursor { before, served })
    }
}

/// One item of a woven page: an organic post (by its index in the organic rows) or a
/// promoted one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    Organic(usize),
    Promoted(String),
}

/// A woven page: its slots, and whether organic rows remain after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Woven {
    pub slots: Vec<Slot>,
    pub more: bool,
}

/// Weaves promoted posts into a page of organic posts, deterministically.
///
/// The scheme: items are numbered across the pages of one timeline walk, starting at 0 on
/// the first page (`served` carries the count in the cursor). Item `n` with
/// `n % PROMOTED_EVERY == 1` is a promoted slot (so the newest organic post stays on top),
/// and so is item 0 of a timeline with no organic post at all (a new shopper's); every other
/// item is organic, newest first, from the organic cursor. Promoted slot
/// `s = n / PROMOTED_EVERY` takes
/// `promotions[(s + seed) % len]`, or the next one after it that is neither on this page
/// already (as promoted or among the organic rows fetched) nor the viewer's own post; if
/// none is left, the slot holds an organic item instead. So any five consecutive items hold
/// at most one promoted item, even across pages; no promoted post appears twice on a page;
/// organic items neither repeat nor skip (the cursor is the last organic item); and a viewer
/// with no organic items still gets a promoted item.
///
/// `organic_ids` are the organic rows fetched (one more than the page, newest first).
pub fn weave(
    organic_ids: &[&str],
    promotions: &[Promotion],
    viewer_id: &str,
    served: u64,
    limit: usize,
    seed: u64,
) -> Woven {
    let organic: HashSet<&str> = organic_ids.iter().copied().collect();
    let mut used: HashSet<&str> = HashSet::new();
    let eligible: Vec<&Promotion> = {
        let mut seen = HashSet::new();
        promotions
            .iter()
            .filter(|p| p.author_id() != viewer_id && !organic.contains(p.post_id()))
            .filter(|p| seen.insert(p.post_id()))
            .collect()
    };
    let mut slots = Vec::with_capacity(limit);
    let mut next_organic = 0;
    let mut last_promoted: Option<u64> = None;
    for i in 0..limit as u64 {
        let n = served + i;
        let slot = n % PROMOTED_EVERY == 1 || (n == 0 && organic_ids.is_empty());
        // After item 0 of an empty timeline, item 1 is not a slot: keep one in five.
        let spaced = last_promoted.is_none_or(|l| n - l >= PROMOTED_EVERY);
        if slot && spaced && !eligible.is_empty() {
            let len = eligible.len() as u64;
            let start = ((n / PROMOTED_EVERY).wrapping_add(seed) % len) as usize;
            let pick = (0..eligible.len())
                .map(|k| eligible[(start + k) % eligible.len()])
                .find(|p| !used.contains(p.post_id()));
            if let Some(p) = pick {
                used.insert(p.post_id());
                last_promoted = Some(n);
                slots.push(Slot::Promoted(p.post_id().to_string()));
                continue;
            }
        }
        if next_organic < organic_ids.len() {
            slots.push(Slot::Organic(next_organic));
            next_organic += 1;
        } else {
            break;
        }
    }
    Woven { slots, more: next_organic < organic_ids.len() }
}

/// A stable 64-bit number for a viewer (FNV-1a of the id): where their rotation of
/// promoted posts starts, so shoppers do not all see the same campaign first.
pub fn viewer_seed(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// A search query as the words the full-text index is asked for: letters and digits only
/// (everything else separates words, as both databases' tokenizers do), lower-cased, at
/// most [`MAX_QUERY_WORDS`]. Nothing of the index's own query syntax (quotes, `*`, `NEAR`,
/// `:`, `&`, `!`, parentheses) survives, so no input can make the query fail.
pub fn query_words(q: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for w in q.split(|c: char| !c.is_alphanumeric()) {
        if w.is_empty() {
            continue;
        }
        let w = w.to_lowercase();
        if !words.contains(&w) {
            words.push(w);
        }
        if words.len() == MAX_QUERY_WORDS {
            break;
        }
    }
    words
}

/// Checks a search query: present, not blank, at most [`MAX_QUERY_CHARS`] characters
/// (bytes are checked first, so a huge query is refused without counting it).
pub fn check_query(q: Option<&str>) -> Result<String> {
    let q = q.unwrap_or("").trim();
    if q.is_empty() {
        return Err(Error::field("q", "must not be empty"));
    }
    if crate::limits::too_many_bytes_for(q, MAX_QUERY_CHARS) || q.chars().count() > MAX_QUERY_CHARS {
        return Err(Error::field("q", &format!("is too long: at most {MAX_QUERY_CHARS} characters")));
    }
    if q.chars().any(char::is_control) {
        return Err(Error::field("q", "must not contain control characters"));
    }
    Ok(q.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promos(n: usize) -> Vec<Promotion> {
        (0..n).map(|i| promo(&format!("post_p{i}"), &format!("acct_m{i}"))).collect()
    }

    fn promo(id: &str, author: &str) -> Promotion {
        let author = crate::model::Author { id: author.into(), handle: "m".into(), display_name: "m".into() };
        Promotion {
            campaign: (0, format!("cmp_{id}")),
            post: crate::model::Post {
                id: id.into(),
                author,
                text: String::new(),
                created_at: 0,
                reply_to: None,
                product_id: None,
                entities: Default::default(),
            },
        }
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("post_o{i}")).collect()
    }

    /// Walks a whole timeline page by page and returns every item in order.
    fn walk(organic: usize, promotions: &[Promotion], limit: usize) -> Vec<Slot> {
        let all = ids(organic);
        let mut out = Vec::new();
        let mut cursor = TimelineCursor::default();
        let mut start = 0;
        loop {
            let fetched: Vec<&str> =
                all[start..(start + limit + 1).min(all.len())].iter().map(String::as_str).collect();
            let w = weave(&fetched, promotions, "acct_viewer", cursor.served, limit, 7);
            let mut page_promoted = HashSet::new();
            let mut used = 0;
            for s in &w.slots {
                match s {
                    Slot::Organic(i) => {
                        out.push(Slot::Organic(start + i));
                        used = i + 1;
                    }
                    Slot::Promoted(p) => {
                        assert!(page_promoted.insert(p.clone()), "{p} twice on one page");
                        out.push(s.clone());
                    }
                }
            }
            assert!(w.slots.len() <= limit);
            if !w.more {
                break;
            }
            start += used;
            let before = if start > 0 { Some((0, format!("post_o{}", start - 1))) } else { cursor.before.clone() };
            cursor = TimelineCursor { before, served: cursor.served + w.slots.len() as u64 };
            cursor = TimelineCursor::decode(Some(&cursor.encode())).unwrap();
        }
        out
    }

    #[test]
    fn at_most_one_in_five_no_organic_repeats_or_gaps() {
        for limit in [1, 3, 5, 7, 20] {
            for organic in [0, 1, 4, 12, 53] {
                for n in [0, 1, 2, 9] {
                    let items = walk(organic, &promos(n), limit);
                    let org: Vec<usize> =
                        items.iter().filter_map(|s| if let Slot::Organic(i) = s { Some(*i) } else { None }).collect();
                    assert_eq!(org, (0..organic).collect::<Vec<_>>(), "limit {limit} organic {organic} promos {n}");
                    for w in items.windows(PROMOTED_EVERY as usize) {
                        assert!(w.iter().filter(|s| matches!(s, Slot::Promoted(_))).count() <= 1);
                    }
                    if n > 0 && organic == 0 {
                        assert!(matches!(items.as_slice(), [Slot::Promoted(_)]), "an empty timeline gets one");
                    } else if n > 0 && items.len() > 1 {
                        assert!(matches!(items[0], Slot::Organic(0)), "the newest organic post stays on top");
                        assert!(matches!(items[1], Slot::Promoted(_)), "item 1 is promoted");
                    }
                }
            }
        }
    }

    #[test]
    fn own_and_organic_posts_are_not_promoted() {
        let mut p = promos(2);
        p[0].post.author.id = "acct_viewer".into();
        let w = weave(&["post_p1"], &p, "acct_viewer", 0, 10, 0);
        assert_eq!(w.slots, vec![Slot::Organic(0)]);
        let w = weave(&[], &p, "acct_viewer", 0, 10, 0);
        assert_eq!(w.slots, vec![Slot::Promoted("post_p1".into())]);
    }

    #[test]
    fn cursor_round_trip_and_junk() {
        let c = TimelineCursor { before: Some((12, "post_x".into())), served: 41 };
        assert_eq!(TimelineCursor::decode(Some(&c.encode())).unwrap(), c);
        let c = TimelineCursor { before: None, served: 1 };
        assert_eq!(TimelineCursor::decode(Some(&c.encode())).unwrap(), c);
        assert!(TimelineCursor::decode(Some("!!")).is_err());
        assert!(TimelineCursor::decode(Some("Zm9v")).is_err());
        let plain = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("12:post_x");
        assert!(TimelineCursor::decode(Some(&plain)).is_err(), "another list's cursor");
    }

    #[test]
    fn queries_lose_every_bit_of_index_syntax() {
        assert_eq!(query_words("  \"Coffee\" AND #beans* (NEAR) -x:y "), ["coffee", "and", "beans", "near", "x", "y"]);
        assert!(query_words("\"*():^&|!'").is_empty());
        assert_eq!(query_words("Café crème"), ["café", "crème"]);
        assert!(check_query(Some("   ")).is_err());
        assert!(check_query(Some(&"a".repeat(101))).is_err());
        assert!(check_query(Some(&"é".repeat(100))).is_ok());
    }

    #[test]
    fn ended_is_final() {
        use CampaignStatus::*;
        assert!(Active.may_become(Paused) && Paused.may_become(Active) && Active.may_become(Ended));
        assert!(!Ended.may_become(Active) && !Ended.may_become(Paused) && Ended.may_become(Ended));
    }
}
