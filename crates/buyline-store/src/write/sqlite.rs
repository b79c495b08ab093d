//! The SQLite writer thread ([`SqliteWriter`]): it takes every write job waiting, runs them
//! in one `begin immediate` transaction (first without savepoints, again with one per job
//! when one fails: `run_batch`), commits without waiting for the disk, and has its sync
//! thread make each batch durable before any job hears its outcome; beside it the
//! checkpointer thread, and the writer's own `catch_up` that lets the WAL start over.
//! The jobs themselves, and how PostgreSQL runs them, are in the parent module.

use super::*;

type Reply = tokio::sync::oneshot::Sender<Result<Outcome, StoreError>>;

struct Request {
    job: Job,
    reply: Reply,
}

/// The SQLite writer thread: owns a rusqlite connection to the database file and runs jobs
/// in batches (see the module's comment). Cloning shares the thread; it ends when the last
/// clone is dropped.
#[derive(Clone)]
pub struct SqliteWriter {
    tx: std::sync::mpsc::Sender<Request>,
}

/// The writer's connection, opened and set up.
fn open_writer(path: &std::path::Path) -> Result<rusqlite::Connection, StoreError> {
    let conn = rusqlite::Connection::open(path).map_err(sqlite_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sqlite_err)?;
    // Foreign keys enforced, as sqlx sets them. A commit writes its WAL frames and does
    // not wait for the disk (`synchronous = normal`): the sync thread makes them durable
    // before any job of the batch hears its outcome (see `start_syncer`).
    // Pages read through a memory map: the writer reads the pages it
    // changes (indexes, the rows it updates) without a system call each.
    // A job's savepoint journal in memory, not in a temporary file. No checkpoints here
    // (the checkpointer thread copies the WAL into the database beside the writer, and the
    // writer finishes its work between batches: `catch_up`); a WAL that starts over is cut
    // back to 64 MB. A map of 64 MB (was 256): pages read through it count in the
    // process's memory, and once the WAL starts over they are read from the database.
    conn.execute_batch(
        "pragma foreign_keys = on; pragma synchronous = normal; pragma journal_mode = wal; \
         pragma mmap_size = 67108864; pragma temp_store = memory; \
         pragma wal_autocheckpoint = 0; pragma journal_size_limit = 67108864;",
    )
    .map_err(sqlite_err)?;
    conn.set_prepared_statement_cache_capacity(256);
    // The plan of a statement does not depend on the values bound to it (SQLite's "query
    // planner stability guarantee"). Without it SQLite prepares a statement again at every
    // run whose bound value is compared with a partial index's condition (`status = $4`
    // beside `… where status = 'completing'`), since the value could make that index
    // usable: 5 % of the writer's time under one-tap load went to re-preparing. The
    // writer's statements find their rows by key, never through those indexes, and the
    // work queues' reads, which do use them, name their states as literals.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).map_err(sqlite_err)?;
    Ok(conn)
}

impl SqliteWriter {
    /// Opens `path` and starts the thread. `gate` is the store's sqlx writer pool (one
    /// connection): a batch holds that connection while it runs, so sqlx's writes and the
    /// thread's never contend for SQLite's write lock (whose busy handler waits by sleeping).
    /// At most `max` jobs share a commit.
    pub fn start(path: &std::path::Path, gate: AnyPool, max: usize) -> Result<SqliteWriter, StoreError> {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        Self::start_syncing(path, gate, max, wal_sync(std::path::PathBuf::from(wal)))
    }

    /// As [`Self::start`], with `sync` making the committed batches durable.
    fn start_syncing(
        path: &std::path::Path,
        gate: AnyPool,
        max: usize,
        sync: impl FnMut() -> std::io::Result<()> + Send + 'static,
    ) -> Result<SqliteWriter, StoreError> {
        let conn = open_writer(path)?;
        let synced = start_syncer(sync)?;
        // The checkpointer stops when the writer thread does (it drops `alive`).
        let (alive, writer_gone) = std::sync::mpsc::channel::<()>();
        start_checkpointer(path, writer_gone)?;
        let handle = tokio::runtime::Handle::current();
        let (tx, rx) = std::sync::mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("buyline-sqlite-writer".into())
            .spawn(move || {
                writer_loop(conn, rx, gate, handle, max.max(1), synced);
                drop(alive);
            })
            .map_err(|e| StoreError::Other(format!("starting the SQLite writer: {e}")))?;
        Ok(SqliteWriter { tx })
    }

    pub async fn run(&self, job: Job) -> Result<Outcome, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx.send(Request { job, reply }).map_err(|_| StoreError::Other("the SQLite writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Other("the SQLite writer stopped before answering".into()))?
    }
}

/// A committed batch's answers, to be sent once its WAL frames are on disk.
type Answers = Vec<(Reply, Result<Outcome, StoreError>)>;

/// The sync thread: makes committed batches durable and only then answers their jobs.
///
/// The writer commits a batch (its WAL frames written, not yet synced) and goes straight on
/// to the next batch while this thread syncs the WAL file (`fdatasync`) for every batch that
/// committed meanwhile, and answers them all. So the disk's flush and the next batch's work
/// overlap, where a commit under `synchronous = full` made the writer wait for each flush.
/// Durability is the same: no job hears its outcome before its frames are on disk. The WAL
/// is one file written in order and recovered in order (each frame's checksum covers the
/// ones before it), so a crash keeps a prefix of the commits: every one that was answered,
/// maybe some after it, never a later one without an earlier one.
///
/// A commit is visible to other connections before it is durable, for the time of one
/// sync. Whatever acts outside on what it reads waits for durability first: writes do (a
/// claim of webhook deliveries is itself a write, answered after its own sync, which covers
/// every commit before it); the e-mail sender asks for a barrier (`Db::durable`).
///
/// A failed sync cannot be retried honestly (the kernel may have dropped the dirty pages
/// it failed to write), so the process stops, as PostgreSQL does; at start-up the
/// reconciler settles whatever the disk kept.
fn start_syncer(
    mut sync: impl FnMut() -> std::io::Result<()> + Send + 'static,
) -> Result<std::sync::mpsc::Sender<Answers>, StoreError> {
    let (tx, rx) = std::sync::mpsc::channel::<Answers>();
    std::thread::Builder::new()
        .name("buyline-sqlite-sync".into())
        .spawn(move || {
            while let Ok(mut answers) = rx.recv() {
                while let Ok(more) = rx.try_recv() {
                    answers.extend(more);
                }
                if let Err(e) = sync() {
                    tracing::error!(error = %e, "syncing the WAL failed; stopping, to recover from what is on disk");
                    eprintln!("buyline: syncing the SQLite WAL failed ({e}); stopping");
                    std::process::abort();
                }
                for (reply, out) in answers {
                    let _ = reply.send(out);
                }
            }
        })
        .map_err(|e| StoreError::Other(format!("starting the WAL sync thread: {e}")))?;
    Ok(tx)
}

/// `fdatasync` of the WAL file at `wal`, opened on first use (it is one file for the life of
/// the writer's connection: checkpoints rewrite it from the start, never replace it).
fn wal_sync(wal: std::path::PathBuf) -> impl FnMut() -> std::io::Result<()> + Send + 'static {
    let mut file: Option<std::fs::File> = None;
    move || {
        if file.is_none() {
            match std::fs::File::open(&wal) {
                Ok(f) => file = Some(f),
                // No WAL yet: nothing has been committed to it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        file.as_ref().map_or(Ok(()), |f| f.sync_data())
    }
}

/// How often the writer finishes the checkpointer's work between two batches.
const CATCH_UP_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// A checkpoint from the writer thread, between batches: no frame is being added, so it can
/// copy the WAL to its end (what the checkpointer thread, always a few commits behind, has
/// left), and the next batch then starts the WAL over from its beginning. Without it the WAL
/// never restarts under a steady load and grows without end (by ~350 MB a second in one-tap:
/// a disk filled in minutes; and writing frames past the file's end made the kernel zero
/// each new page, a fifth of the writer's time). A checkpoint already running, or a reader
/// still on an old snapshot, only leaves it for next time. Every 100 ms keeps each of these
/// pauses short (one-tap's p99 30 ms; every second it was 45–51 ms) and the WAL under
/// ~100 MB.
fn catch_up(conn: &rusqlite::Connection) {
    if let Err(e) = conn.query_row("pragma wal_checkpoint(passive)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "the writer's checkpoint failed; the checkpointer will go on");
    }
}

/// How often the checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// A thread of its own that checkpoints the WAL (`PASSIVE`: it never waits for or blocks a
/// writer or a reader) every [`CHECKPOINT_EVERY`], so the writer thread never spends a
/// batch's time on it. Every connection of the store has automatic checkpoints turned off
/// (`Db::connect`), this is the one place they happen. It stops with the writer thread.
fn start_checkpointer(path: &std::path::Path, writer_gone: std::sync::mpsc::Receiver<()>) -> Result<(), StoreError> {
    let conn = rusqlite::Connection::open(path).map_err(sqlite_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sqlite_err)?;
    conn.execute_batch("pragma synchronous = full; pragma wal_autocheckpoint = 0;").map_err(sqlite_err)?;
    std::thread::Builder::new()
        .name("buyline-sqlite-checkpoint".into())
        .spawn(move || {
            // Until the writer thread ends (the channel closes), then once more.
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = writer_gone.recv_timeout(CHECKPOINT_EVERY) {
                if let Err(e) = conn.query_row("pragma wal_checkpoint(passive)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "checkpointing the WAL failed; trying again");
                }
            }
            let _ = conn.query_row("pragma wal_checkpoint(passive)", [], |_| Ok(()));
        })
        .map_err(|e| StoreError::Other(format!("starting the checkpointer: {e}")))?;
    Ok(())
}

pub(crate) fn sqlite_err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        // SQLITE_CONSTRAINT_UNIQUE and SQLITE_CONSTRAINT_PRIMARYKEY.
        if f.extended_code == 2067 || f.extended_code == 1555 {
            return StoreError::Unique(msg.clone().unwrap_or_else(|| e.to_string()));
        }
    }
    StoreError::Other(e.to_string())
}

/// How long the writer thread keeps the sqlx writer's connection across batches while jobs
/// keep coming: taking it back costs a trip through the runtime, so it is held from batch to
/// batch, and given up at least this often so the sqlx writer's own users (posts, claims of
/// webhook deliveries) get their turn.
const HOLD_AT_MOST: std::time::Duration = std::time::Duration::from_millis(20);

fn writer_loop(
    conn: rusqlite::Connection,
    rx: std::sync::mpsc::Receiver<Request>,
    gate: AnyPool,
    handle: tokio::runtime::Handle,
    max: usize,
    synced: std::sync::mpsc::Sender<Answers>,
) {
    // Returned to its pool on the runtime (sqlx's drop spawns there).
    let release = |c: Option<sqlx::pool::PoolConnection<sqlx::Any>>| {
        if let Some(c) = c {
            handle.block_on(async move { drop(c) });
        }
    };
    let mut batch: Vec<Request> = Vec::with_capacity(max);
    let mut held = None;
    let mut held_since = std::time::Instant::now();
    let mut caught_up = std::time::Instant::now();
    // When a job last failed: batches run guarded for a while after it (see `run_batch`).
    let mut last_failure: Option<std::time::Instant> = None;
    loop {
        if caught_up.elapsed() >= CATCH_UP_EVERY {
            catch_up(&conn);
            caught_up = std::time::Instant::now();
        }
        let first = match rx.try_recv() {
            Ok(r) => r,
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                // Nothing waiting: let the sqlx writer have the database while we wait.
                release(held.take());
                match rx.recv() {
                    Ok(r) => r,
                    Err(_) => break,
                }
            }
            Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
        };
        batch.push(first);
        if held.is_none() {
            // The sqlx writer's one connection: no sqlx write runs while a batch does.
            match handle.block_on(gate.acquire()) {
                Ok(c) => {
                    held = Some(c);
                    held_since = std::time::Instant::now();
                }
                Err(e) => {
                    for r in batch.drain(..) {
                        let _ = r.reply.send(Err(StoreError::Other(format!("the writer is unavailable: {e}"))));
                    }
                    continue;
                }
            }
        }
        while batch.len() < max {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let (outcomes, failed) =
            run_batch(&conn, &batch, last_failure.is_none_or(|t| t.elapsed() >= GUARDED_AFTER_A_FAILURE));
        if failed {
            last_failure = Some(std::time::Instant::now());
        }
        let mut answers: Answers = Vec::with_capacity(batch.len());
        for (r, out) in batch.drain(..).zip(outcomes) {
            if r.job.unsynced && matches!(out, Ok(Outcome::Done { .. })) {
                let _ = r.reply.send(out);
            } else {
                answers.push((r.reply, out));
            }
        }
        // (Every job of the batch may have been answered at its commit: nothing to sync for.
        // The sqlx writer still gets its turn below.)
        if !answers.is_empty() {
            if let Err(std::sync::mpsc::SendError(answers)) = synced.send(answers) {
                for (reply, _) in answers {
                    let _ = reply.send(Err(StoreError::Other("the WAL sync thread has stopped".into())));
                }
            }
        }
        if held_since.elapsed() >= HOLD_AT_MOST {
            release(held.take());
        }
    }
    release(held.take());
}

/// After a batch in which a job failed, how long batches run with a savepoint per job from
/// the start: failures come in bursts (a variant selling out fails every reservation
/// behind it until the sold-out mark is set), and each would otherwise run its batch twice.
const GUARDED_AFTER_A_FAILURE: std::time::Duration = std::time::Duration::from_millis(100);

/// One transaction for the batch; every outcome waits for the commit. The second value
/// says whether a job failed or erred.
///
/// A batch first runs without a savepoint per job (when `bare` is set): when every job is
/// done or stopped, there is nothing a savepoint would have undone, and the savepoints
/// (three statements a job, and a copy of each page a job first changes) are a part of the
/// writer's time paid for nothing. When a job fails or errs, the whole transaction is rolled
/// back and the batch runs again with a savepoint per job ([`run_batch_guarded`]), so that
/// job fails alone.
fn run_batch(conn: &rusqlite::Connection, batch: &[Request], bare: bool) -> (Vec<Result<Outcome, StoreError>>, bool) {
    let failed = |outs: &[Result<Outcome, StoreError>]| {
        outs.iter().any(|o| !matches!(o, Ok(Outcome::Done { .. } | Outcome::Stopped { .. })))
    };
    if bare && batch.iter().any(|r| r.job.guarded()) {
        if let Some(outs) = run_batch_bare(conn, batch) {
            return (outs, false);
        }
    }
    // Without savepoints to save (single unchecked statements, each atomic by itself), or
    // after a failure.
    let outs = run_batch_guarded(conn, batch);
    let f = failed(&outs);
    (outs, f)
}

/// Runs a statement without rows (`begin`, `commit`, `rollback`) through the statement
/// cache: once per batch, so it is parsed once, not at every batch.
fn exec(conn: &rusqlite::Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// The batch in one transaction without savepoints: its outcomes if every job ended done or
/// stopped and the commit held, else `None` with the transaction rolled back (or never
/// begun), for the guarded run.
fn run_batch_bare(conn: &rusqlite::Connection, batch: &[Request]) -> Option<Vec<Result<Outcome, StoreError>>> {
    exec(conn, "begin immediate").ok()?;
    let mut outs = Vec::with_capacity(batch.len());
    for r in batch {
        match run_job_steps(conn, &r.job.steps) {
            Ok(out @ (Outcome::Done { .. } | Outcome::Stopped { .. })) => outs.push(Ok(out)),
            _ => {
                if !conn.is_autocommit() {
                    let _ = exec(conn, "rollback");
                }
                return None;
            }
        }
    }
    match exec(conn, "commit") {
        Ok(()) => Some(outs),
        Err(_) => {
            let _ = exec(conn, "rollback");
            None
        }
    }
}

/// One transaction for the batch, a savepoint per job.
fn run_batch_guarded(conn: &rusqlite::Connection, batch: &[Request]) -> Vec<Result<Outcome, StoreError>> {
    if let Err(e) = exec(conn, "begin immediate") {
        let e = sqlite_err(e);
        return batch.iter().map(|_| Err(StoreError::Other(format!("beginning a write: {e}")))).collect();
    }
    let mut outs = Vec::with_capacity(batch.len());
    for r in batch {
        outs.push(run_job(conn, &r.job));
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (an I/O error, a full disk): every
            // job before this one is undone too, and none after it may run outside a
            // transaction, each committing alone while its caller hears a failure.
            tracing::warn!(
                jobs = batch.len(),
                "a batch's transaction was rolled back by SQLite; every job in it fails"
            );
            return batch
                .iter()
                .map(|_| Err(StoreError::Other("the batch's transaction was rolled back".into())))
                .collect();
        }
    }
    match exec(conn, "commit") {
        Ok(()) => outs,
        Err(e) => {
            let e = sqlite_err(e);
            tracing::warn!(error = %e, jobs = batch.len(), "a batch's commit failed; every job in it fails");
            let _ = exec(conn, "rollback");
            batch.iter().map(|_| Err(StoreError::Other(format!("commit failed: {e}")))).collect()
        }
    }
}

fn run_job(conn: &rusqlite::Connection, job: &Job) -> Result<Outcome, StoreError> {
    let guarded = job.guarded();
    if guarded {
        conn.prepare_cached("savepoint job").and_then(|mut s| s.execute([])).map_err(sqlite_err)?;
    }
    let out = run_job_steps(conn, &job.steps);
    if guarded {
        let undo = !matches!(out, Ok(Outcome::Done { .. }) | Ok(Outcome::Stopped { .. }));
        let finish = (|| -> rusqlite::Result<()> {
            if undo {
                conn.prepare_cached("rollback to job")?.execute([])?;
            }
            conn.prepare_cached("release job")?.execute([])?;
            Ok(())
        })();
        if let Err(e) = finish {
            // Cannot happen short of an I/O error; the batch's commit will say so if it does.
            return Err(sqlite_err(e));
        }
    }
    out
}

fn run_job_steps(conn: &rusqlite::Connection, steps: &[Step]) -> Result<Outcome, StoreError> {
    let mut rows = Vec::with_capacity(steps.len());
    for (at, s) in steps.iter().enumerate() {
        let mut stmt = conn.prepare_cached(&s.sql).map_err(sqlite_err)?;
        bind_numbered(&mut stmt, &s.sql, &s.args)?;
        let n = stmt.raw_execute().map_err(sqlite_err)? as u64;
        if let Some(end) = verdict(s.check, at, n, &mut rows) {
            return Ok(end);
        }
    }
    Ok(Outcome::Done { rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::tests::insert;

    /// A database with a table `t`: its directory, file and one-connection pool.
    async fn database() -> (tempfile::TempDir, std::path::PathBuf, AnyPool) {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
        sqlx::query("pragma journal_mode = wal").execute(&pool).await.unwrap();
        sqlx::query("create table t (id text primary key, n integer not null)").execute(&pool).await.unwrap();
        (dir, path, pool)
    }

    async fn writer() -> (tempfile::TempDir, SqliteWriter, AnyPool) {
        let (dir, path, pool) = database().await;
        let w = SqliteWriter::start(&path, pool.clone(), 16).unwrap();
        (dir, w, pool)
    }

    /// The writer prepares each statement once, whatever values are bound to it: a value
    /// compared with a partial index's condition does not make SQLite prepare the statement
    /// again at each run (it did, at 5 % of the writer's time under one-tap load).
    #[test]
    fn the_writer_prepares_a_statement_once_whatever_its_values() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join("q.db")).unwrap();
        // As `reservations`: rows found by part of their key, and a partial index on state.
        conn.execute_batch(
            "create table q (owner text not null, n integer not null, state text not null, \
             at integer not null, primary key (owner, n)); \
             create index q_held on q(at) where state = 'held';",
        )
        .unwrap();
        for i in 0..5 {
            let mut insert =
                conn.prepare_cached("insert into q (owner, n, state, at) values (?1, 1, 'held', ?2)").unwrap();
            insert.execute(rusqlite::params![i.to_string(), i]).unwrap();
        }
        let sql = "update q set state = ?1 where owner = ?2 and state = ?3";
        for (i, (from, to)) in [("held", "consumed"), ("consumed", "held")].into_iter().cycle().take(10).enumerate() {
            let changed = conn.prepare_cached(sql).unwrap().execute(rusqlite::params![to, (i / 2).to_string(), from]);
            assert_eq!(changed.unwrap(), 1);
        }
        let update = conn.prepare_cached(sql).unwrap();
        assert_eq!(update.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }

    /// SQLite is built with the options in `.cargo/config.toml`: without them every
    /// allocation and page fetch of the writer took a process-wide mutex (one-tap ran ~12 %
    /// slower). A build that lost them (the file removed, the variable overridden) fails here.
    #[test]
    fn sqlite_is_built_without_global_locks() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let mut stmt = conn.prepare("pragma compile_options").unwrap();
        let options: Vec<String> = stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
        assert!(options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"), "{options:?}");
        assert!(!options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"), "{options:?}");
        assert!(options.iter().any(|o| o == "THREADSAFE=1"), "{options:?}");
    }

    async fn count(pool: &AnyPool) -> i64 {
        use sqlx::Row;
        sqlx::query("select count(*) as c from t").fetch_one(pool).await.unwrap().get("c")
    }

    #[tokio::test]
    async fn jobs_commit_and_fail_alone() {
        let (_d, w, pool) = writer().await;
        let ok = Job::from(vec![insert("a", 1), insert("b", 2)]);
        let dup = Job::from(vec![insert("c", 3), insert("a", 9)]);
        let failed = Job::from(vec![
            insert("d", 4),
            Step::new("update t set n = n + 1 where id = $1", args!["nobody"]).check(Check::FailUnlessOne),
        ]);
        let stopped = Job::from(vec![
            insert("e", 5),
            Step::new("update t set n = n + 1 where id = $1", args!["nobody"]).check(Check::StopUnlessOne),
            insert("f", 6),
        ]);
        let (a, b, c, d) = tokio::join!(w.run(ok), w.run(dup), w.run(failed), w.run(stopped));
        assert_eq!(a.unwrap(), Outcome::Done { rows: vec![1, 1] });
        assert!(matches!(b, Err(StoreError::Unique(_))), "{b:?}");
        assert_eq!(c.unwrap(), Outcome::Failed { at: 1 });
        assert_eq!(d.unwrap(), Outcome::Stopped { at: 1, rows: vec![1] });
        // a, b and e are kept; c (its job hit a duplicate), d and f are not.
        assert_eq!(count(&pool).await, 3);
    }

    /// One batch, deterministically: run bare first, it meets the failing jobs and starts
    /// over with a savepoint per job; run guarded from the start (as for a while after a
    /// failure), it ends the same. Either way each job ends as it would alone.
    #[test]
    fn a_batch_with_a_failing_job_runs_again_with_a_savepoint_per_job() {
        let request = |steps: Vec<Step>| Request { job: Job::from(steps), reply: tokio::sync::oneshot::channel().0 };
        let nobody = |check| Step::new("update t set n = n + 1 where id = $1", args!["nobody"]).check(check);
        for bare in [true, false] {
            let conn = rusqlite::Connection::open_in_memory().unwrap();
            conn.execute_batch("create table t (id text primary key, n integer not null)").unwrap();
            let batch = vec![
                request(vec![insert("a", 1), insert("b", 2)]),
                request(vec![insert("c", 3), insert("a", 9)]),
                request(vec![insert("d", 4), nobody(Check::FailUnlessOne)]),
                request(vec![insert("e", 5), nobody(Check::StopUnlessOne), insert("f", 6)]),
            ];
            let (outs, failed) = run_batch(&conn, &batch, bare);
            assert!(failed, "the failure is reported, so the next batches run guarded");
            assert_eq!(outs[0].as_ref().unwrap(), &Outcome::Done { rows: vec![1, 1] });
            assert!(matches!(outs[1], Err(StoreError::Unique(_))), "{:?}", outs[1]);
            assert_eq!(outs[2].as_ref().unwrap(), &Outcome::Failed { at: 1 });
            assert_eq!(outs[3].as_ref().unwrap(), &Outcome::Stopped { at: 1, rows: vec![1] });
            let ids = |conn: &rusqlite::Connection| -> Vec<String> {
                let mut stmt = conn.prepare("select id from t order by id").unwrap();
                stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
            };
            assert_eq!(ids(&conn), ["a", "b", "e"], "bare first: {bare}");
            assert!(conn.is_autocommit());
            // A batch that ends well runs once, as one transaction.
            let (outs, failed) =
                run_batch(&conn, &[request(vec![insert("g", 7), insert("h", 8)]), request(vec![insert("i", 9)])], bare);
            assert!(!failed);
            assert!(outs.iter().all(|o| o.as_ref().is_ok_and(Outcome::done)), "{outs:?}");
            assert_eq!(ids(&conn).len(), 6);
        }
    }

    #[test]
    fn a_batch_whose_transaction_sqlite_rolls_back_fails_whole_and_runs_nothing_after() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("create table t (id text primary key, n integer not null)").unwrap();
        let request = |steps: Vec<Step>| Request { job: Job::from(steps), reply: tokio::sync::oneshot::channel().0 };
        let batch = vec![
            request(vec![insert("a", 1)]),
            // `or rollback` on a conflict ends the whole transaction, as an I/O error would.
            request(vec![
                insert("b", 2),
                Step::new("insert or rollback into t (id, n) values ($1, $2)", args!["a", 3i64]),
            ]),
            request(vec![insert("c", 4)]),
        ];
        let (outs, _) = run_batch(&conn, &batch, true);
        assert!(outs.iter().all(|o| o.is_err()), "{outs:?}");
        let n: i64 = conn.query_row("select count(*) from t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0, "nothing of the batch is kept, and the job after it did not run alone");
        assert!(conn.is_autocommit());
    }

    #[tokio::test]
    async fn a_job_hears_its_outcome_after_its_commit_is_synced_unless_a_synced_write_follows() {
        let (_dir, path, pool) = database().await;
        // A sync that waits for the test's word.
        let (allow, allowed) = std::sync::mpsc::channel::<()>();
        let w = SqliteWriter::start_syncing(&path, pool.clone(), 16, move || {
            allowed.recv().map_err(|_| std::io::Error::other("test over"))?;
            Ok(())
        })
        .unwrap();
        let w2 = w.clone();
        let job = tokio::spawn(async move {
            w2.run(Job::from(vec![Step::new("insert into t (id, n) values ($1, $2)", args!["a", 1i64])])).await
        });
        // Committed: another connection sees it...
        let reader = rusqlite::Connection::open(&path).unwrap();
        let mut seen = false;
        for _ in 0..200 {
            if reader.query_row("select count(*) from t where id = 'a'", [], |r| r.get::<_, i64>(0)).unwrap() == 1 {
                seen = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(seen, "the batch committed");
        // ...but its job has no answer until the sync is done.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!job.is_finished(), "answered before its commit was synced");
        allow.send(()).unwrap();
        assert!(job.await.unwrap().unwrap().done());
        // A job marked as coming before a synced write is answered at its commit, while the
        // sync is held.
        let early = Job::from(vec![Step::new("insert into t (id, n) values ($1, $2)", args!["c", 3i64])]);
        let early = tokio::time::timeout(std::time::Duration::from_secs(5), w.run(early.before_a_synced_write()));
        assert!(early.await.expect("answered without a sync").unwrap().done());
        // The next batch waits for a sync of its own.
        let next = tokio::spawn(async move {
            w.run(Job::from(vec![Step::new("insert into t (id, n) values ($1, $2)", args!["b", 2i64])])).await
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!next.is_finished());
        allow.send(()).unwrap();
        assert!(next.await.unwrap().unwrap().done());
    }

    #[tokio::test]
    async fn placeholders_bind_by_number_not_by_position() {
        let (_d, w, pool) = writer().await;
        let out =
            w.run(Job::from(vec![Step::new("insert into t (n, id) values ($2, $1)", args!["x", 7i64])])).await.unwrap();
        assert!(out.done());
        use sqlx::Row;
        let n: i64 = sqlx::query("select n from t where id = 'x'").fetch_one(&pool).await.unwrap().get("n");
        assert_eq!(n, 7);
        let nulls = Step::new("insert into t (id, n) values ($1, coalesce($2, 8))", args!["y", None::<i64>]);
        assert!(w.run(Job::from(vec![nulls])).await.unwrap().done());
        // The same text again (its binding order now remembered), and a placeholder used twice.
        for (id, n) in [("z", 9i64), ("w", 10)] {
            let again = Step::new("insert into t (n, id) values ($2, $1)", args![id, n]);
            assert!(w.run(Job::from(vec![again])).await.unwrap().done());
            let twice = Step::new("update t set n = $1 + $1 where id = $2", args![n, id]);
            assert!(w.run(Job::from(vec![twice])).await.unwrap().done());
            let got: i64 =
                sqlx::query("select n from t where id = $1").bind(id).fetch_one(&pool).await.unwrap().get("n");
            assert_eq!(got, 2 * n);
        }
    }

    /// Under a load that never lets the writer rest, the WAL still starts over (`catch_up`):
    /// its file stays a fraction of what was written through it. Without the writer's own
    /// checkpoints it grew by everything written (~350 MB a second in one-tap).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_under_a_load_that_never_stops() {
        let (dir, path, pool) = database().await;
        sqlx::query("create table big (id integer primary key, b text not null)").execute(&pool).await.unwrap();
        let w = SqliteWriter::start(&path, pool.clone(), 16).unwrap();
        // Rows of 8 KiB from 32 writers, each pausing a little between its rows, for over ten
        // of the writer's checkpoint intervals: a batch is never far off, so the checkpointer
        // alone never finds the WAL's end.
        const ROW: usize = 8192;
        let row = "x".repeat(ROW);
        let until = std::time::Instant::now() + 12 * CATCH_UP_EVERY;
        let writers: Vec<_> = (0..32i64)
            .map(|k| {
                let (w, row) = (w.clone(), row.clone());
                tokio::spawn(async move {
                    let mut rows = 0u64;
                    for i in (k..).step_by(32) {
                        if std::time::Instant::now() >= until {
                            break;
                        }
                        let step = Step::new("insert into big (id, b) values ($1, $2)", args![i, row.as_str()]);
                        assert!(w.run(Job::from(vec![step])).await.unwrap().done());
                        rows += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(4)).await;
                    }
                    rows
                })
            })
            .collect();
        let mut written = 0;
        for t in writers {
            written += t.await.unwrap() * ROW as u64;
        }
        let wal = std::fs::metadata(dir.path().join("w.db-wal")).unwrap().len();
        assert!(wal < written / 3, "a WAL of {wal} bytes after {written} written");
        drop(path);
    }
}
