//! The storage traits on SQLite and PostgreSQL, one module per feature (named as the trait's
//! file in `buyline_core::store`), each beside its row mapping. One SQL text serves both
//! through sqlx's `Any` driver (`$n` placeholders work on both); each backend has its own
//! migrations folder. No business rules live here: each method writes what a service
//! decided, atomically. This file holds what every module shares: `Db` (connect, migrate,
//! the writer pool, transactions) and the SQL helpers.

use async_trait::async_trait;
use buyline_core::error::StoreError;
use buyline_core::store::{HealthStore, StoreResult};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::AnyPool;
use std::time::Duration;

mod accounts;
mod campaigns;
mod carts;
mod catalog;
mod checkout;
mod discovery;
mod downloads;
mod funnel;
mod group;
mod idempotency;
mod ledger;
mod operator;
mod orders;
mod outbox;
mod payouts;
#[cfg(test)]
pub(crate) mod plan_tests;
mod read;
mod reserve_batch;
mod social;
mod vault;
pub mod write;

pub use group::{GroupWriter, Tx};
pub use write::{Check, Job, Outcome, Step};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    /// Where writes go. On SQLite a pool of one connection: writers queue here, in order,
    /// instead of contending for the database lock (SQLite's busy handler waits by sleeping,
    /// in steps of up to 100 ms). On PostgreSQL the same pool as reads.
    writer: AnyPool,
    /// SQLite: posts go to a task that commits all that are waiting in one transaction
    /// (group commit). `None` on PostgreSQL, whose writers run side by side.
    posts: Option<tokio::sync::mpsc::Sender<social::PostWrite>>,
    /// The purchase path's writes: group-committed on SQLite (see `group.rs`).
    group: GroupWriter,
    backend: Backend,
    /// SQLite: the database file, for the reads that run on the calling thread (`read.rs`).
    local: Option<std::sync::Arc<std::path::PathBuf>>,
    /// PostgreSQL: one-unit reservations of a variant, in groups (`reserve_batch.rs`).
    reservations: Option<reserve_batch::Reservations>,
}

fn other(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.kind() == sqlx::error::ErrorKind::UniqueViolation {
            let what = db.constraint().map(str::to_string).unwrap_or_else(|| db.message().to_string());
            return StoreError::Unique(what);
        }
    }
    StoreError::Other(e.to_string())
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Other(format!("stored JSON does not parse: {e}"))
}

/// `($s, …, $s+cols-1), (…)` for `rows` rows of `cols` values, numbered from `start`.
fn rows_of(rows: usize, cols: usize, start: usize) -> String {
    (0..rows).map(|r| format!("({})", placeholders(start + r * cols, cols))).collect::<Vec<_>>().join(", ")
}

/// `$start, $start+1, …` for `n` values.
pub fn placeholders(start: usize, n: usize) -> String {
    (start..start + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

type AnyQuery<'a> = sqlx::query::Query<'a, sqlx::Any, sqlx::any::AnyArguments<'a>>;

impl Db {
    /// Connects and applies migrations. `url` is `sqlite://…` or `postgres://…`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Other(format!(
                "unsupported database URL scheme in {:?}: use sqlite:// or postgres://",
                url.split(':').next().unwrap_or("")
            )));
        };
        if backend == Backend::Sqlite {
            // WAL is a property of the file; set it once, outside the pool, before any reader.
            use sqlx::Connection;
            let mut c = sqlx::AnyConnection::connect(url).await.map_err(other)?;
            sqlx::query("pragma journal_mode = wal").execute(&mut c).await.map_err(other)?;
            c.close().await.map_err(other)?;
        }
        // SQLite: checkpoints only on the checkpointer thread (`write/sqlite.rs`), so no commit pays
        // for one (with group commit off, connections checkpoint as SQLite's default has it).
        let no_checkpoints =
            backend == Backend::Sqlite && std::env::var("BUYLINE_GROUP_COMMIT").as_deref() != Ok("off");
        let sqlite = backend == Backend::Sqlite;
        let options = || {
            AnyPoolOptions::new().after_connect(move |c, _| {
                Box::pin(async move {
                    if no_checkpoints {
                        sqlx::query("pragma wal_autocheckpoint = 0").execute(&mut *c).await?;
                    }
                    if sqlite {
                        // Sorting and `distinct` in memory, not in a new temporary file each.
                        sqlx::query("pragma temp_store = memory").execute(&mut *c).await?;
                    }
                    Ok(())
                })
            })
        };
        let pool = options()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(other)?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await.map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        let writer = match backend {
            Backend::Sqlite => options()
                .max_connections(1)
                // Taken for every batch of write jobs (`write.rs`): no ping round trip each time.
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(60))
                .connect(url)
                .await
                .map_err(other)?,
            Backend::Postgres => pool.clone(),
        };
        let posts = (backend == Backend::Sqlite).then(|| {
            let (tx, rx) = tokio::sync::mpsc::channel(4 * social::POST_GROUP);
            tokio::spawn(social::group_commit_posts(writer.clone(), rx));
            tx
        });
        let (group, local) = match backend {
            Backend::Sqlite => {
                use std::str::FromStr;
                let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url).map_err(other)?;
                let path = opts.get_filename().to_path_buf();
                (GroupWriter::grouped(writer.clone(), &path)?, Some(std::sync::Arc::new(path)))
            }
            Backend::Postgres => {
                // Commits that a synced commit will follow (see `group.rs`).
                let unsynced = AnyPoolOptions::new()
                    .after_connect(|c, _| {
                        Box::pin(async move {
                            sqlx::query("set synchronous_commit = off").execute(&mut *c).await?;
                            Ok(())
                        })
                    })
                    .max_connections(max_connections)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await
                    .map_err(other)?;
                (GroupWriter::new(writer.clone()).with_unsynced(unsynced), None)
            }
        };
        let reservations = (backend == Backend::Postgres).then(|| reserve_batch::Reservations::start(group.clone()));
        Ok(Db { pool, writer, posts, group, backend, local, reservations })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The read pool and the write pool, for an adapter that keeps its own tables in this
    /// database (the test processor). On SQLite the write pool is the one writer
    /// connection: the adapter's writes must queue there with the store's.
    pub fn pools(&self) -> (AnyPool, AnyPool) {
        (self.pool.clone(), self.writer.clone())
    }

    /// SQLite's plan for a query on this database (each `$n` bound to 0), its lines of detail
    /// joined: what the tests read to check that a query uses the index made for it.
    pub async fn query_plan(&self, sql: &str) -> StoreResult<String> {
        let params = (1..=9).filter(|n| sql.contains(&format!("${n}"))).count();
        let q = format!("explain query plan {sql}");
        let rows = (0..params).fold(sqlx::query(&q), |q, _| q.bind(0i64)).fetch_all(&self.pool).await.map_err(other)?;
        let details = rows
            .iter()
            .map(|r| sqlx::Row::try_get::<String, _>(r, "detail").map_err(other))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(details.join("\n"))
    }

    pub async fn close(&self) {
        self.group.close().await;
        self.writer.close().await;
        self.pool.close().await;
    }

    /// A write transaction, on the writer pool. On SQLite it also takes the write lock up
    /// front (`begin immediate`), so a read inside it cannot fail to upgrade to a write.
    async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        match self.backend {
            Backend::Sqlite => self.writer.begin_with("begin immediate").await.map_err(other),
            Backend::Postgres => self.pool.begin().await.map_err(other),
        }
    }

    /// One statement as its own write transaction, on the writer pool.
    async fn execute_write(&self, q: AnyQuery<'_>) -> StoreResult<sqlx::any::AnyQueryResult> {
        q.execute(&self.writer).await.map_err(other)
    }

    /// A write job, group-committed on SQLite (see `group.rs` and `write.rs`).
    async fn run(&self, job: Job) -> StoreResult<Outcome> {
        self.group.run(job).await
    }

    /// Waits until every write committed so far is durable. On SQLite a commit is visible a
    /// moment before its sync (see `write::sqlite::start_syncer`); whatever acts outside on what it
    /// reads (sends an e-mail) waits here first. An empty job: its answer comes after the
    /// sync of its batch, which covers every commit before it.
    /// On PostgreSQL, writes that a synced write follows commit without waiting for the
    /// flush: `GroupWriter::durable`.
    pub(crate) async fn durable(&self) -> StoreResult<()> {
        self.group.durable().await
    }

    /// The group writer, for an adapter that writes its own tables in this database (the
    /// test processor) and should share the store's group commits.
    pub fn group_writer(&self) -> GroupWriter {
        self.group.clone()
    }

    fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Runs a read and maps its rows with the same mapper on either driver: on SQLite on the
    /// calling thread (`read.rs`), on PostgreSQL through the pool.
    async fn read_rows<T: Send>(
        &self,
        sql: &str,
        args: Vec<write::Arg>,
        any: fn(&AnyRow) -> StoreResult<T>,
        local: impl Fn(&rusqlite::Row<'_>) -> StoreResult<T> + Send,
    ) -> StoreResult<Vec<T>> {
        match &self.local {
            Some(path) => read::query(path, sql, &args, local),
            None => {
                let rows = write::bind_any(sqlx::query(sql), &args).fetch_all(&self.pool).await.map_err(other)?;
                rows.iter().map(any).collect()
            }
        }
    }

    /// Runs `sql` whose placeholders `$1…$n` take `ids` in order.
    async fn fetch_in(&self, sql: &str, ids: &[&String]) -> StoreResult<Vec<AnyRow>> {
        let mut q = sqlx::query(sql);
        for id in ids {
            q = q.bind(id.as_str());
        }
        q.fetch_all(&self.pool).await.map_err(other)
    }
}

#[async_trait]
impl HealthStore for Db {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("select count(*) from flags").fetch_one(&self.pool).await.map_err(other)?;
        Ok(())
    }
}
