//! The per-viewer home timeline cache: the newest organic posts of a viewer's home
//! timeline, kept in memory for under a second so a burst of reads (paging, refreshes,
//! several tabs, the benchmark's 64 clients) costs one database read, not one each.
//!
//! What it holds per viewer: the first [`DEPTH`] posts (or more, if a page asked for more)
//! of `find_home_timeline`, and the accounts whose posts can appear there (the viewer and
//! whom they follow). Promotions are woven and impressions counted per request, after it.
//!
//! How it stays correct:
//! - **This process's writes show at once.** After a write commits, the service drops what
//!   it changes: a post or reply by an account drops every entry that account's posts can
//!   appear in ([`HomeCache::author_changed`], through an index from each author to those
//!   entries, so a post costs its readers' entries, not a look at every entry); a follow or unfollow drops the follower's
//!   entry ([`HomeCache::viewer_changed`]); a deleted post or an erased account drops
//!   everything ([`HomeCache::clear`]: replies to the deleted posts may now show elsewhere).
//!   A fill that read the database before such a write and arrives after it is refused:
//!   each fill takes a [`Ticket`] before its read, and every drop is remembered in a short
//!   log that [`HomeCache::put`] checks.
//! - **Other processes' writes show within a second.** An entry is served for [`TTL`] from
//!   the moment its read *began*, so a post committed on another node sharing the
//!   PostgreSQL database (SPEC §5) is on every node's timelines within that time; so are
//!   deletes, unfollows and erasures made there, and a new display name.
//! - **Memory is bounded.** At most [`MAX_WEIGHT`] posts and followed ids are held in all;
//!   past that, expired entries go first, then the oldest.

use crate::model::Post;
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an entry is served, from the start of the read that filled it. Below a second
/// so that a post made on another node shows within a second, request time included.
pub(crate) const TTL: Duration = Duration::from_millis(800);
/// Posts a fill reads at least: two default pages and the one that says there is more.
pub(crate) const DEPTH: usize = 2 * super::paging::DEFAULT_PAGE as usize + 1;
/// Most posts and followed ids held over all entries: a post held is at most ~2.5 KiB with
/// its JSON (280 characters of up to 4 bytes, twice), so ~80 MiB at worst, ~15 MiB for
/// posts of a typical length.
const MAX_WEIGHT: usize = 32_000;
/// Drops remembered for fills in flight; a fill older than the log is refused.
const LOG: usize = 4_096;

/// A post as a timeline serves it: shared, and rendered to JSON once when it came from
/// the cache.
#[derive(Debug, Clone)]
pub(crate) struct Shown {
    pub(crate) post: Arc<Post>,
    pub(crate) json: Option<Arc<RawValue>>,
}

impl Shown {
    /// A post read for one request: serialised with it.
    pub(crate) fn plain(post: Post) -> Self {
        Shown { post: Arc::new(post), json: None }
    }

    /// A post kept in the cache: its JSON rendered now, once for every request that shows it.
    pub(crate) fn rendered(post: Post) -> Self {
        let json = serde_json::value::to_raw_value(&post).ok().map(Arc::from);
        Shown { post: Arc::new(post), json }
    }
}

/// What a write changed.
#[derive(Debug, Clone)]
enum Change {
    /// A post by this account was written: every timeline that may show its posts.
    Author(String),
    /// This viewer followed or unfollowed someone: their own timeline.
    Viewer(String),
    /// Anything (a deleted post, an erased account).
    All,
}

struct Entry {
    /// When the read that filled it began.
    since: Instant,
    /// Newest first, as the store returns them.
    posts: Arc<Vec<Shown>>,
    /// The store had no more than these: any page inside them can be answered.
    complete: bool,
    /// The viewer and the accounts they follow: whose new posts drop this entry.
    authors: HashSet<String>,
}

impl Entry {
    fn weight(&self) -> usize {
        1 + self.posts.len() + self.authors.len()
    }

    fn fresh(&self) -> bool {
        self.since.elapsed() < TTL
    }

    fn shows(&self, viewer: &str, change: &Change) -> bool {
        match change {
            Change::Author(a) => self.authors.contains(a),
            Change::Viewer(v) => v == viewer,
            Change::All => true,
        }
    }
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Author → the viewers whose entry may show their posts (the entries' `authors`,
    /// turned around): a post drops those entries without a look at every other one.
    readers: HashMap<String, HashSet<String>>,
    weight: usize,
    /// How many changes were ever recorded; `log` holds the last [`LOG`] of them, the last
    /// one numbered `changes`.
    changes: u64,
    log: VecDeque<Change>,
}

impl Inner {
    fn insert(&mut self, viewer: &str, entry: Entry) {
        for a in &entry.authors {
            self.readers.entry(a.clone()).or_default().insert(viewer.to_string());
        }
        self.weight += entry.weight();
        self.entries.insert(viewer.to_string(), entry);
    }

    fn remove(&mut self, viewer: &str) {
        if let Some(e) = self.entries.remove(viewer) {
            self.weight -= e.weight();
            for a in &e.authors {
                if let Some(readers) = self.readers.get_mut(a) {
                    readers.remove(viewer);
                    if readers.is_empty() {
                        self.readers.remove(a);
                    }
                }
            }
        }
    }

    fn record(&mut self, change: Change) {
        match &change {
            Change::Author(a) => {
                // Taken out of the index whole: `remove` finds nothing left to unlink there.
                for viewer in self.readers.remove(a).unwrap_or_default() {
                    self.remove(&viewer);
                }
            }
            Change::Viewer(v) => self.remove(v),
            Change::All => {
                self.entries.clear();
                self.readers.clear();
                self.weight = 0;
            }
        }
        self.changes += 1;
        self.log.push_back(change);
        if self.log.len() > LOG {
            self.log.pop_front();
        }
    }

    /// Makes room for `need`: expired entries first, then the oldest.
    fn make_room(&mut self, need: usize) {
        if self.weight + need <= MAX_WEIGHT {
            return;
        }
        let expired: Vec<String> = self.entries.iter().filter(|(_, e)| !e.fresh()).map(|(v, _)| v.clone()).collect();
        for viewer in expired {
            self.remove(&viewer);
        }
        while self.weight + need > MAX_WEIGHT && !self.entries.is_empty() {
            let oldest = self.entries.iter().min_by_key(|(_, e)| e.since).map(|(v, _)| v.clone());
            if let Some(v) = oldest {
                self.remove(&v);
            }
        }
    }
}

/// Taken before the database read that fills an entry.
pub(crate) struct Ticket {
    since: Instant,
    changes: u64,
}

#[derive(Default)]
pub(crate) struct HomeCache {
    inner: Mutex<Inner>,
}

impl HomeCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Up to `n` posts of the viewer's home timeline older than `before` (all, without it),
    /// newest first — exactly what the store would answer — if the cache knows them.
    pub(crate) fn get(&self, viewer: &str, before: Option<(i64, &str)>, n: usize) -> Option<Vec<Shown>> {
        let posts = {
            let inner = self.lock();
            let e = inner.entries.get(viewer).filter(|e| e.fresh())?;
            if e.posts.len() < n && !e.complete {
                return None;
            }
            (e.posts.clone(), e.complete)
        };
        let (posts, complete) = posts;
        let start = match before {
            None => 0,
            Some((t, id)) => posts.partition_point(|p| (p.post.created_at, p.post.id.as_str()) >= (t, id)),
        };
        let end = start.saturating_add(n);
        if end > posts.len() && !complete {
            return None;
        }
        Some(posts[start..end.min(posts.len())].to_vec())
    }

    pub(crate) fn ticket(&self) -> Ticket {
        // The change count first, then the clock: a change after the count is seen by put.
        let changes = self.lock().changes;
        Ticket { since: Instant::now(), changes }
    }

    /// Keeps a fill: the newest posts of the viewer's timeline as read after `ticket` was
    /// taken (`complete` when there are no more), and the accounts whose posts it may show.
    /// Refused if a change since the ticket touches it.
    pub(crate) fn put(
        &self,
        ticket: Ticket,
        viewer: &str,
        posts: Vec<Shown>,
        complete: bool,
        authors: HashSet<String>,
    ) {
        let entry = Entry { since: ticket.since, posts: Arc::new(posts), complete, authors };
        let mut inner = self.lock();
        let since = inner.changes - ticket.changes;
        if since as usize > inner.log.len() {
            return; // too many changes meanwhile to tell
        }
        if inner.log.iter().rev().take(since as usize).any(|c| entry.shows(viewer, c)) {
            return;
        }
        inner.remove(viewer);
        let w = entry.weight();
        if w > MAX_WEIGHT {
            return;
        }
        inner.make_room(w);
        inner.insert(viewer, entry);
    }

    /// A post or reply by `author` was written (or its author's posts otherwise changed).
    pub(crate) fn author_changed(&self, author: &str) {
        self.lock().record(Change::Author(author.to_string()));
    }

    /// `viewer` followed or unfollowed someone.
    pub(crate) fn viewer_changed(&self, viewer: &str) {
        self.lock().record(Change::Viewer(viewer.to_string()));
    }

    /// Posts were deleted or an account erased: nothing cached can be trusted.
    pub(crate) fn clear(&self) {
        self.lock().record(Change::All);
    }

    /// What is held: entries and weight, after checking that the author index is the
    /// entries' authors turned around, nothing more or less, and the weight their sum.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let inner = self.lock();
        let mut readers: HashMap<String, HashSet<String>> = HashMap::new();
        for (viewer, e) in &inner.entries {
            for a in &e.authors {
                readers.entry(a.clone()).or_default().insert(viewer.clone());
            }
        }
        assert_eq!(inner.readers, readers, "the author index follows the entries");
        assert_eq!(inner.weight, inner.entries.values().map(Entry::weight).sum::<usize>());
        (inner.entries.len(), inner.weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Author;
    use crate::text::Entities;

    fn post(n: i64, author: &str) -> Post {
        Post {
            id: format!("post_{n:04}"),
            author: Author { id: author.into(), handle: author.into(), display_name: author.into() },
            text: format!("post {n}"),
            created_at: n,
            reply_to: None,
            product_id: None,
            entities: Entities::default(),
        }
    }

    /// Newest first: `n` posts numbered n..1.
    fn posts(n: i64) -> Vec<Shown> {
        (1..=n).rev().map(|i| Shown::rendered(post(i, "acct_a"))).collect()
    }

    fn authors(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn ids(p: &[Shown]) -> Vec<i64> {
        p.iter().map(|p| p.post.created_at).collect()
    }

    #[test]
    fn the_json_kept_is_the_posts_own() {
        let s = Shown::rendered(post(7, "acct_a"));
        assert_eq!(s.json.unwrap().get(), serde_json::to_string(&*s.post).unwrap());
    }

    #[test]
    fn answers_pages_inside_what_it_holds_and_nothing_beyond() {
        let c = HomeCache::default();
        c.put(c.ticket(), "v", posts(50)[..41].to_vec(), false, authors(&["v", "acct_a"]));
        assert_eq!(ids(&c.get("v", None, 21).unwrap()), (30..=50).rev().collect::<Vec<_>>());
        // It holds 50..=10: the page under 31 is the last it can answer whole.
        let before = Some((31, "post_0031"));
        assert_eq!(ids(&c.get("v", before, 21).unwrap()), (10..=30).rev().collect::<Vec<_>>());
        assert!(c.get("v", Some((30, "post_0030")), 21).is_none(), "past what it holds: the store answers");
        assert!(c.get("v", None, 42).is_none());
        assert!(c.get("w", None, 21).is_none());
        // A complete timeline answers any page, short ones included.
        c.put(c.ticket(), "w", posts(5), true, authors(&["w"]));
        assert_eq!(ids(&c.get("w", None, 21).unwrap()), vec![5, 4, 3, 2, 1]);
        assert_eq!(ids(&c.get("w", Some((3, "post_0003")), 21).unwrap()), vec![2, 1]);
        assert!(c.get("w", Some((1, "post_0001")), 21).unwrap().is_empty());
    }

    #[test]
    fn writes_drop_the_timelines_they_change() {
        let c = HomeCache::default();
        c.put(c.ticket(), "v", posts(3), true, authors(&["v", "acct_a"]));
        c.put(c.ticket(), "w", posts(3), true, authors(&["w", "acct_b"]));
        c.put(c.ticket(), "x", posts(3), true, authors(&["x", "acct_a", "acct_b"]));
        assert_eq!(c.held().0, 3);
        c.author_changed("acct_a");
        assert!(c.get("v", None, 21).is_none(), "a followee posted");
        assert!(c.get("x", None, 21).is_none(), "a followee posted");
        assert!(c.get("w", None, 21).is_some(), "w does not follow acct_a");
        assert_eq!(c.held().0, 1, "only w is left, and the index with it");
        c.author_changed("acct_nobody");
        assert_eq!(c.held().0, 1);
        c.viewer_changed("w");
        assert!(c.get("w", None, 21).is_none(), "w followed or unfollowed");
        c.put(c.ticket(), "v", posts(3), true, authors(&["v"]));
        c.clear();
        assert!(c.get("v", None, 21).is_none());
        assert_eq!(c.held(), (0, 0));
    }

    #[test]
    fn a_fill_read_before_a_change_is_refused() {
        let c = HomeCache::default();
        let t = c.ticket();
        c.author_changed("acct_a"); // committed while the fill was reading
        c.put(t, "v", posts(3), true, authors(&["v", "acct_a"]));
        assert!(c.get("v", None, 21).is_none());
        let t = c.ticket();
        c.author_changed("acct_z");
        c.put(t, "v", posts(3), true, authors(&["v", "acct_a"]));
        assert!(c.get("v", None, 21).is_some(), "a change elsewhere does not refuse it");
        let t = c.ticket();
        for i in 0..=LOG {
            c.author_changed(&format!("acct_{i}"));
        }
        c.put(t, "w", posts(3), true, authors(&["w"]));
        assert!(c.get("w", None, 21).is_none(), "more changes than remembered: refused");
    }

    #[test]
    fn entries_expire_from_the_start_of_their_read() {
        let c = HomeCache::default();
        let t = Ticket { since: Instant::now() - TTL, changes: 0 };
        c.put(t, "v", posts(3), true, authors(&["v"]));
        assert!(c.get("v", None, 21).is_none());
    }

    #[test]
    fn memory_stays_bounded() {
        let c = HomeCache::default();
        for i in 0..(MAX_WEIGHT / 40) {
            c.put(c.ticket(), &format!("v{i}"), posts(41), false, authors(&["x"]));
        }
        // Expired entries go first when room is needed, from the index too.
        let stale = Ticket { since: Instant::now() - TTL, changes: c.lock().changes };
        c.put(stale, "old", posts(3), true, authors(&["old", "y"]));
        c.put(c.ticket(), "late", posts(41), false, authors(&["late"]));
        assert!(!c.lock().readers.contains_key("y"), "the expired entry left the index");
        let (n, w) = c.held();
        assert!(w <= MAX_WEIGHT, "{w}");
        assert!(n < MAX_WEIGHT / 40, "the oldest went");
        assert!(c.get(&format!("v{}", MAX_WEIGHT / 40 - 1), None, 21).is_some(), "the newest stayed");
    }
}
