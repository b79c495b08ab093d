//! The purchase path's writes, committed in groups on SQLite.
//!
//! [`GroupWriter::run`] takes a write as a [`Job`] (its statements as data, `write.rs`): on
//! SQLite the store's writer thread runs every job waiting in one transaction, each in its
//! own savepoint, and commits them with one fsync; nobody hears their outcome before that
//! commit is durable, and a job that fails is undone alone. On PostgreSQL a job is a plain
//! transaction: writers run side by side there and PostgreSQL's WAL already flushes
//! concurrent commits together. A job that comes before a synced write
//! ([`Job::before_a_synced_write`]: a reservation, the processor's authorisation) commits
//! there without waiting for the flush (`synchronous_commit = off`, on connections of their
//! own): PostgreSQL's WAL, like SQLite's, is written and recovered in order, so the synced
//! commit that follows makes it durable too, and a crash before then loses it with
//! everything after it. On a hot row (a flash sale's one variant) the row's lock is then
//! held for the statement, not for a flush of the disk.
//!
//! [`GroupWriter::begin`] is a plain transaction on the writer pool, for a component
//! without a `Db` (the test processor's refunds) whose write reads between its statements;
//! on SQLite it queues for the writer connection, which a batch of jobs holds while it
//! runs, so the two never contend for SQLite's lock.

use crate::write::{run_alone, Job, Outcome, SqliteWriter};
use buyline_core::error::StoreError;
use sqlx::{Any, AnyConnection, AnyPool, Transaction};
use std::ops::{Deref, DerefMut};

/// At most this many jobs share one commit (unless `BUYLINE_GROUP_COMMIT` says otherwise).
/// Jobs waiting beyond it go in the next batch: a batch's transaction stays short enough
/// that the sqlx writer's other users (posts, webhooks) wait for at most one such batch.
pub const MAX_GROUP: usize = 128;

/// Runs write jobs in groups (SQLite) or alone (PostgreSQL), and begins plain write
/// transactions.
#[derive(Clone)]
pub struct GroupWriter {
    pool: AnyPool,
    sqlite: bool,
    /// SQLite with group commit on: the writer thread.
    thread: Option<SqliteWriter>,
    /// PostgreSQL: connections that commit without waiting for the WAL's flush, for jobs
    /// that come before a synced write.
    unsynced: Option<AnyPool>,
}

impl GroupWriter {
    /// Jobs as plain transactions on `pool` (the writer pool; on SQLite its one connection).
    pub fn new(pool: AnyPool) -> Self {
        let sqlite = pool.connect_options().database_url.scheme().starts_with("sqlite");
        GroupWriter { pool, sqlite, thread: None, unsynced: None }
    }

    /// On PostgreSQL, jobs that come before a synced write run on `pool`, whose connections
    /// set `synchronous_commit = off` (see the module's comment).
    pub fn with_unsynced(self, pool: AnyPool) -> Self {
        GroupWriter { unsynced: Some(pool), ..self }
    }

    /// Where a job that comes before a synced write commits outside the writer thread.
    pub(crate) fn unsynced_pool(&self) -> &AnyPool {
        self.unsynced.as_ref().unwrap_or(&self.pool)
    }

    /// On SQLite, jobs go to a writer thread of their own on the database file at `path`,
    /// unless `BUYLINE_GROUP_COMMIT=off` (every job its own transaction, for measuring,
    /// `BENCHMARKS.md`); `BUYLINE_GROUP_COMMIT=N` caps a batch at N jobs.
    pub fn grouped(pool: AnyPool, path: &std::path::Path) -> Result<Self, StoreError> {
        let mut w = GroupWriter::new(pool.clone());
        let setting = std::env::var("BUYLINE_GROUP_COMMIT").unwrap_or_default();
        if w.sqlite && setting != "off" {
            let max = setting.parse::<usize>().ok().filter(|n| *n > 0).unwrap_or(MAX_GROUP);
            w.thread = Some(SqliteWriter::start(path, pool, max)?);
        }
        Ok(w)
    }

    /// Runs a job; its outcome once it is durable (or undone).
    pub async fn run(&self, job: Job) -> Result<Outcome, StoreError> {
        match &self.thread {
            Some(t) => t.run(job).await,
            None if job.unsynced => run_alone(self.unsynced_pool(), self.sqlite, &job).await,
            None => run_alone(&self.pool, self.sqlite, &job).await,
        }
    }

    /// Waits until every write committed so far is durable. SQLite: an empty job, answered
    /// after the sync of its batch, which covers every commit before it. PostgreSQL: a
    /// transaction given an id commits with a WAL record, and its synced commit flushes the
    /// WAL up to there, the unsynced commits before it included.
    pub async fn durable(&self) -> Result<(), StoreError> {
        if self.sqlite {
            self.run(Job::new()).await.map(drop)
        } else {
            sqlx::query("select pg_current_xact_id()::text").execute(&self.pool).await.map(drop).map_err(crate::other)
        }
    }

    /// Closes the connections of its own (PostgreSQL's unsynced ones).
    pub(crate) async fn close(&self) {
        if let Some(p) = &self.unsynced {
            p.close().await;
        }
    }

    /// A plain write transaction on the writer pool (`begin immediate` on SQLite).
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let tx = if self.sqlite { self.pool.begin_with("begin immediate").await? } else { self.pool.begin().await? };
        Ok(Tx(tx))
    }
}

/// A write transaction: use `&mut *tx` as the executor, then `commit` or `rollback`
/// (dropping it rolls back).
pub struct Tx(Transaction<'static, Any>);

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.0.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.0.rollback().await
    }
}

impl Deref for Tx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.0
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.0
    }
}
