//! Group commit for write transactions on SQLite: transactions that arrive together share
//! one durable commit (one WAL fsync under `synchronous=FULL`).
//!
//! Each caller's transaction is a savepoint inside the group's one `begin immediate`
//! transaction on the writer connection. Callers run one at a time (the writer is one
//! connection anyway); a caller that finishes releases its savepoint and, if another caller
//! is already waiting, hands the still-open transaction on instead of committing it. The
//! last caller of a group (nobody waiting, or [`MAX_GROUP`] reached) commits, and every
//! caller's `commit()` returns only when that commit is durable, with its outcome: a write
//! is never answered before it is on disk, and a failed group commit fails every member.
//! A caller that rolls back (or is dropped) rolls back to its savepoint, so one caller's
//! failure is its own: the rest of the group commits without it.
//!
//! Request futures can be dropped at any await (a client that hangs up), so nothing here
//! leaves the group stranded: the group's commit and every clean-up run on their own task,
//! and a caller that stops waiting to join hands the group on as if it had joined.
//!
//! On PostgreSQL, [`GroupWriter::begin`] is a plain transaction on the pool: writers run
//! side by side there and PostgreSQL's WAL already flushes concurrent commits together.

use sqlx::{Any, AnyConnection, AnyPool, Transaction};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, Mutex, OwnedMutexGuard};

/// At most this many transactions share one commit (unless `BUYLINE_GROUP_COMMIT` says
/// otherwise), so other writers of the pool, and the first member, wait for at most one such
/// group. Requests that share a commit wake together and reach their next write together, so
/// a group's size is also the size of the convoys the purchase path moves in: small enough
/// that a crash lands between convoys' commits, not after them all.
pub const MAX_GROUP: usize = 16;

/// The outcome of a group's commit, as its members hear it.
type Outcome = Option<Result<(), String>>;

struct Open {
    tx: Transaction<'static, Any>,
    members: usize,
    done: watch::Sender<Outcome>,
}

#[derive(Default)]
struct Slot {
    open: Option<Open>,
}

/// Begins write transactions that commit in groups (SQLite) or alone (PostgreSQL).
#[derive(Clone)]
pub struct GroupWriter {
    pool: AnyPool,
    max: usize,
    /// Group commit on (SQLite, unless turned off).
    grouped: bool,
    sqlite: bool,
    slot: Arc<Mutex<Slot>>,
    /// Callers waiting for the slot: while there are any, a finished member hands the group
    /// on instead of committing it.
    waiting: Arc<AtomicUsize>,
}

impl GroupWriter {
    /// `pool` is the writer pool: on SQLite the store's one writer connection, which a group
    /// holds from its `begin immediate` until its commit.
    ///
    /// `BUYLINE_GROUP_COMMIT=off` makes every transaction commit alone, as before group
    /// commit, and `BUYLINE_GROUP_COMMIT=N` caps groups at N: for measuring
    /// (`BENCHMARKS.md`), not for production.
    pub fn new(pool: AnyPool) -> Self {
        let sqlite = pool.connect_options().database_url.scheme().starts_with("sqlite");
        let setting = std::env::var("BUYLINE_GROUP_COMMIT").unwrap_or_default();
        let off = setting == "off";
        let max = setting.parse::<usize>().ok().filter(|n| *n > 0).unwrap_or(MAX_GROUP);
        GroupWriter {
            pool,
            max,
            grouped: sqlite && !off,
            sqlite,
            slot: Arc::new(Mutex::new(Slot::default())),
            waiting: Arc::default(),
        }
    }

    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        if !self.grouped {
            let tx =
                if self.sqlite { self.pool.begin_with("begin immediate").await? } else { self.pool.begin().await? };
            return Ok(Tx(Inner::Alone(tx)));
        }
        let waiter = Waiter::new(self);
        let guard = self.slot.clone().lock_owned().await;
        waiter.joined();
        // From here a drop hands the group on (see `Member::drop`).
        let mut m = Member { guard: Some(guard), done: None, group: self.clone(), state: State::Joining };
        let slot = m.guard.as_mut().expect("just locked");
        if slot.open.is_none() {
            let tx = self.pool.begin_with("begin immediate").await?;
            slot.open = Some(Open { tx, members: 0, done: watch::channel(None).0 });
        }
        let open = slot.open.as_mut().expect("opened above");
        open.members += 1;
        m.done = Some(open.done.subscribe());
        sqlx::query("savepoint member").execute(&mut *open.tx).await?;
        m.state = State::Open;
        Ok(Tx(Inner::Member(m)))
    }

    /// One statement as its own transaction: a member of a group on SQLite, autocommit on
    /// PostgreSQL (one round trip).
    pub async fn execute<'q>(
        &self,
        q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<sqlx::any::AnyQueryResult, sqlx::Error> {
        if !self.grouped {
            return q.execute(&self.pool).await;
        }
        let mut tx = self.begin().await?;
        let r = q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(r)
    }

    /// On its own task, so no dropped caller can cut it short: undoes the member's writes
    /// (if `undo`), then commits the group if nobody is waiting to join it (or it is full),
    /// else leaves it open for the next.
    fn finish(&self, guard: OwnedMutexGuard<Slot>, undo: bool) {
        let (waiting, max) = (self.waiting.clone(), self.max);
        tokio::spawn(async move {
            let mut guard = guard;
            if undo {
                if let Err(e) = rollback_member(&mut guard).await {
                    // The savepoint could not be undone (SQLite rolled the whole transaction
                    // back after an I/O error, say): no part of the group may commit, and
                    // every member hears it from its `commit`.
                    tracing::warn!(error = %e, "rolling back a group member failed; the whole group is rolled back");
                    if let Some(open) = guard.open.take() {
                        let _ = open.tx.rollback().await;
                        let _ = open.done.send(Some(Err(format!("a member could not be rolled back: {e}"))));
                    }
                    return;
                }
            }
            let full = guard.open.as_ref().is_some_and(|o| o.members >= max);
            if waiting.load(Ordering::SeqCst) > 0 && !full {
                return;
            }
            if let Some(open) = guard.open.take() {
                let r = open.tx.commit().await.map_err(|e| e.to_string());
                let _ = open.done.send(Some(r));
            }
        });
    }

    /// A caller gave up waiting to join: if it was the last waiter, a group left open for it
    /// must still commit.
    fn sweep(&self) {
        let group = self.clone();
        tokio::spawn(async move {
            let guard = group.slot.clone().lock_owned().await;
            group.finish(guard, false);
        });
    }
}

/// Counts a caller waiting for the slot, until it gets it or is dropped.
struct Waiter<'a> {
    group: &'a GroupWriter,
    armed: bool,
}

impl<'a> Waiter<'a> {
    fn new(group: &'a GroupWriter) -> Self {
        group.waiting.fetch_add(1, Ordering::SeqCst);
        Waiter { group, armed: true }
    }

    fn joined(mut self) {
        self.armed = false;
        self.group.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if self.armed && self.group.waiting.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.group.sweep();
        }
    }
}

async fn rollback_member(guard: &mut OwnedMutexGuard<Slot>) -> Result<(), sqlx::Error> {
    let Some(open) = guard.open.as_mut() else { return Ok(()) };
    sqlx::query("rollback to member").execute(&mut *open.tx).await?;
    sqlx::query("release member").execute(&mut *open.tx).await?;
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Holds the slot, savepoint not yet taken.
    Joining,
    /// Inside its savepoint.
    Open,
    /// Savepoint released: its writes are the group's.
    Released,
}

/// A member of a group: holds the writer until it commits or rolls back.
pub struct Member {
    guard: Option<OwnedMutexGuard<Slot>>,
    done: Option<watch::Receiver<Outcome>>,
    group: GroupWriter,
    state: State,
}

impl Drop for Member {
    /// Dropped while holding the writer (an error returned early, or a dropped request):
    /// undo its writes if it has a savepoint, and let the group go on.
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            self.group.finish(guard, self.state == State::Open);
        }
    }
}

enum Inner {
    Alone(Transaction<'static, Any>),
    Member(Member),
}

/// A write transaction: use `&mut *tx` as the executor, then `commit` or `rollback`.
pub struct Tx(Inner);

impl Tx {
    /// Commits: returns once the transaction is durable (or failed).
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self.0 {
            Inner::Alone(tx) => tx.commit().await,
            Inner::Member(mut m) => {
                let open = m.guard.as_mut().and_then(|g| g.open.as_mut()).expect("a member's group is open");
                // An error here drops `m`, which rolls the member back.
                sqlx::query("release member").execute(&mut *open.tx).await?;
                m.state = State::Released;
                let mut done = m.done.take().expect("a member hears its group");
                drop(m);
                match done.wait_for(Option::is_some).await.map(|o| o.clone()) {
                    Ok(Some(Ok(()))) => Ok(()),
                    Ok(Some(Err(e))) => Err(sqlx::Error::Protocol(format!("group commit failed: {e}"))),
                    _ => Err(sqlx::Error::Protocol("group commit abandoned".into())),
                }
            }
        }
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self.0 {
            Inner::Alone(tx) => tx.rollback().await,
            // Dropping a member rolls it back.
            Inner::Member(m) => {
                drop(m);
                Ok(())
            }
        }
    }
}

impl Deref for Tx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match &self.0 {
            Inner::Alone(tx) => tx,
            Inner::Member(m) => &m.guard.as_ref().and_then(|g| g.open.as_ref()).expect("a live member").tx,
        }
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut self.0 {
            Inner::Alone(tx) => tx,
            Inner::Member(m) => &mut m.guard.as_mut().and_then(|g| g.open.as_mut()).expect("a live member").tx,
        }
    }
}
