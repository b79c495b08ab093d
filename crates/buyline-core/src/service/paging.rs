//! Newest-first paging for every list: `?limit=&cursor=` parsed once, one row more than the
//! page fetched to learn whether another page follows, and an opaque cursor (base64url of
//! `created_at:id` of the last item) that neither skips nor repeats under concurrent writes.

use crate::error::{Error, Result};
use crate::model::Page;
use crate::store::Before;
use base64::Engine;

pub const DEFAULT_PAGE: i64 = 20;
pub const MAX_PAGE: i64 = 100;

pub(crate) fn encode_cursor(created_at: i64, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{created_at}:{id}"))
}

pub(crate) fn decode_cursor(cursor: Option<&str>) -> Result<Option<(i64, String)>> {
    let Some(c) = cursor.filter(|c| !c.is_empty()) else { return Ok(None) };
    let bad = || Error::field("cursor", "is not a cursor this API returned");
    if c.len() > crate::limits::MAX_CURSOR_BYTES {
        return Err(bad());
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (ts, id) = raw.split_once(':').ok_or_else(bad)?;
    Ok(Some((ts.parse().map_err(|_| bad())?, id.to_string())))
}

pub(crate) fn page_limit(limit: Option<i64>) -> Result<i64> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(Error::field("limit", "must be between 1 and 100")),
    }
}

/// A request for one page.
pub(crate) struct PageArgs {
    pub limit: i64,
    before: Option<(i64, String)>,
}

impl PageArgs {
    pub fn parse(cursor: Option<&str>, limit: Option<i64>) -> Result<PageArgs> {
        Ok(PageArgs { limit: page_limit(limit)?, before: decode_cursor(cursor)? })
    }

    /// Where the page starts, for storage.
    pub fn before(&self) -> Before<'_> {
        self.before.as_ref().map(|(t, i)| (*t, i.as_str()))
    }

    /// How many rows to ask storage for: one more than the page.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }

    /// The page out of the rows fetched; `key` gives an item's `(created_at, id)`.
    pub fn page<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> (i64, &str)) -> Page<T> {
        let next_cursor = if rows.len() as i64 > self.limit {
            rows.truncate(self.limit as usize);
            rows.last().map(|r| {
                let (t, id) = key(r);
                encode_cursor(t, id)
            })
        } else {
            None
        };
        Page { data: rows, next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_junk() {
        let c = encode_cursor(1_700_000_000_000_000, "post_abc");
        assert_eq!(decode_cursor(Some(&c)).unwrap(), Some((1_700_000_000_000_000, "post_abc".into())));
        assert!(decode_cursor(Some("!!")).is_err());
        assert!(decode_cursor(Some("Zm9v")).is_err());
        assert_eq!(decode_cursor(None).unwrap(), None);
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(101)).is_err());
    }

    #[test]
    fn over_fetched_rows_make_a_page_and_a_cursor() {
        let args = PageArgs::parse(None, Some(2)).unwrap();
        assert_eq!(args.fetch(), 3);
        let page = args.page(vec![(3, "c"), (2, "b"), (1, "a")], |r| (r.0, r.1));
        assert_eq!(page.data.len(), 2);
        assert_eq!(decode_cursor(page.next_cursor.as_deref()).unwrap(), Some((2, "b".into())));
        assert_eq!(args.page(vec![(1, "a")], |r| (r.0, r.1)).next_cursor, None);
    }
}
