//! Write jobs: a write transaction's statements as data, so a whole step of the purchase
//! path (open a checkout and reserve its stock; commit an order with its receipt, event and
//! delivery; record a capture with its ledger postings) reaches the database as one job.
//!
//! On SQLite a job runs on the store's one writer thread ([`SqliteWriter`], `write/sqlite.rs`), which takes
//! every job waiting, runs them inside one `begin immediate` transaction (each in a
//! savepoint of its own when one of them fails: `run_batch`), and commits them together: one durable commit (one WAL fsync under
//! `synchronous=FULL`) for the whole batch, and no thread hand-off between a job's
//! statements, which is what bounded the old group commit (each statement crossed from the
//! request's task to sqlx's connection thread and back while the writer waited). A job's
//! caller hears its outcome only once the batch's commit is durable; a job that fails rolls
//! back its own savepoint and fails alone.
//!
//! On PostgreSQL (and on SQLite with `BUYLINE_GROUP_COMMIT=off`, for measuring) a job is a
//! plain transaction through sqlx: PostgreSQL already flushes concurrent commits together.
//!
//! Statements use `$n` placeholders, as everywhere in the store; both executors bind `$n` to
//! the job's n-th argument.

use buyline_core::error::StoreError;
use sqlx::{AnyConnection, AnyPool};
use std::borrow::Cow;

/// A value bound to a placeholder. Nulls keep their type (PostgreSQL wants one).
#[derive(Debug, Clone)]
pub enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_string()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}
impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Self {
        Arg::Text(v.clone())
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_string))
    }
}

/// `[a, b, …]` as a `Vec<Arg>`.
#[macro_export]
macro_rules! args {
    ($($a:expr),* $(,)?) => { vec![$($crate::write::Arg::from($a)),*] };
}

/// What a statement's count of changed rows must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Anything.
    Any,
    /// Exactly one, else the job stops here: what ran before it commits (and this
    /// statement's own changes, if it changed more than one row), what comes after it does
    /// not run ([`Outcome::Stopped`]).
    StopUnlessOne,
    /// Exactly one, else the whole job is undone ([`Outcome::Failed`]).
    FailUnlessOne,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub sql: Cow<'static, str>,
    pub args: Vec<Arg>,
    pub check: Check,
}

impl Step {
    pub fn new(sql: impl Into<Cow<'static, str>>, args: Vec<Arg>) -> Self {
        Step { sql: sql.into(), args, check: Check::Any }
    }

    pub fn check(self, check: Check) -> Self {
        Step { check, ..self }
    }
}

/// One write transaction's statements, in order.
#[derive(Debug, Clone, Default)]
pub struct Job {
    pub steps: Vec<Step>,
    /// On PostgreSQL, send the job as one statement ([`one_statement`]): set by jobs whose
    /// statements are plain inserts, updates and deletes that do not read one another's
    /// writes, so running them side by side in one snapshot is the same as in a row.
    pub one_statement: bool,
    /// On SQLite, answer as soon as the batch has committed, before its sync: for a step
    /// of a path whose own last write is synced before anything leaves the server (see
    /// [`Job::before_a_synced_write`]).
    pub unsynced: bool,
}

impl Job {
    pub fn new() -> Self {
        Job::default()
    }

    pub fn push(&mut self, step: Step) -> &mut Self {
        self.steps.push(step);
        self
    }

    pub fn extend(&mut self, steps: impl IntoIterator<Item = Step>) -> &mut Self {
        self.steps.extend(steps);
        self
    }

    /// Whether the job needs a transaction (or savepoint) of its own: not if it is one
    /// statement whose changed rows are not checked, which is atomic by itself.
    pub fn guarded(&self) -> bool {
        self.steps.len() > 1 || self.steps.iter().any(|s| s.check != Check::Any)
    }

    /// Marks the job as one that may run as one statement (see [`Job::one_statement`]).
    pub fn as_one_statement(&mut self) -> &mut Self {
        self.one_statement = true;
        self
    }

    /// Marks a job whose caller goes on to a synced write before anything depending on
    /// this one leaves the server (an answer, a message, a call out): its answer need not
    /// wait for the disk. The WAL keeps commits in order and a crash keeps a prefix of
    /// them, so the later synced write makes this one durable too, and a crash before it
    /// loses both, as if the path had never begun (the purchase path's reservation and
    /// the processor's authorisation and capture records, before the order's commit and
    /// the capture's ledger write). A job that fails or ends the path must not be marked.
    pub fn before_a_synced_write(mut self) -> Self {
        self.unsynced = true;
        self
    }
}

impl From<Vec<Step>> for Job {
    fn from(steps: Vec<Step>) -> Self {
        Job { steps, one_statement: false, unsynced: false }
    }
}

/// One statement that inserts a row per item into `into` (`table (col, …)`), each row the
/// `cols` values `row` gives for it, bound as `$1`, `$2`, … in order.
pub(crate) fn insert_rows<T>(into: &str, cols: usize, items: &[T], row: impl Fn(&T) -> Vec<Arg>) -> Step {
    let mut args = Vec::with_capacity(items.len() * cols);
    for item in items {
        args.extend(row(item));
    }
    Step::new(format!("insert into {into} values {}", crate::rows_of(items.len(), cols, 1)), args)
}

/// How a job ended. `rows` holds each statement's count of changed rows, for those that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every statement ran and is durable.
    Done { rows: Vec<u64> },
    /// Statement `at` changed other than one row: the statements before it are durable, and
    /// so are its own changes if it changed more than one; the rest did not run.
    Stopped { at: usize, rows: Vec<u64> },
    /// Statement `at` changed other than one row: nothing of the job was kept.
    Failed { at: usize },
}

impl Outcome {
    pub fn done(&self) -> bool {
        matches!(self, Outcome::Done { .. })
    }
}

/// Runs the steps on a connection inside the caller's transaction, stopping where a check
/// says so. `Failed` leaves the caller to roll back.
pub(crate) async fn run_steps(conn: &mut AnyConnection, steps: &[Step]) -> Result<Outcome, StoreError> {
    let mut rows = Vec::with_capacity(steps.len());
    for (at, s) in steps.iter().enumerate() {
        let n = bind_any(sqlx::query(&s.sql), &s.args).execute(&mut *conn).await.map_err(crate::other)?.rows_affected();
        if let Some(end) = verdict(s.check, at, n, &mut rows) {
            return Ok(end);
        }
    }
    Ok(Outcome::Done { rows })
}

/// What a statement's count of changed rows means for its job: `Some` ends the job there;
/// `None` records the count and goes on.
fn verdict(check: Check, at: usize, n: u64, rows: &mut Vec<u64>) -> Option<Outcome> {
    match check {
        Check::StopUnlessOne if n != 1 => Some(Outcome::Stopped { at, rows: std::mem::take(rows) }),
        Check::FailUnlessOne if n != 1 => Some(Outcome::Failed { at }),
        _ => {
            rows.push(n);
            None
        }
    }
}

/// Binds `args` to an sqlx query, in order (`$1` is the first).
pub(crate) fn bind_any<'q>(mut q: crate::AnyQuery<'q>, args: &'q [Arg]) -> crate::AnyQuery<'q> {
    for a in args {
        q = match a {
            Arg::Int(v) => q.bind(*v),
            Arg::Text(v) => q.bind(v.as_deref()),
        };
    }
    q
}

/// Binds `args` to a rusqlite statement by placeholder number: `$n` takes the n-th, wherever
/// it stands in the text (`sql`, the statement's own).
///
/// Which argument each of SQLite's parameters takes is worked out once per statement text
/// and thread: asking SQLite a parameter's name walks its list of names, so asking for every
/// parameter of a multi-row insert (hundreds of them) costs the square of their number.
pub(crate) fn bind_numbered(stmt: &mut rusqlite::Statement<'_>, sql: &str, args: &[Arg]) -> Result<(), StoreError> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;
    thread_local! {
        static ORDER: RefCell<HashMap<Box<str>, Rc<[usize]>>> = RefCell::new(HashMap::new());
    }
    let known = ORDER.with(|o| o.borrow().get(sql).cloned());
    let order = match known {
        Some(order) => order,
        None => {
            let mut order = Vec::with_capacity(stmt.parameter_count());
            for i in 1..=stmt.parameter_count() {
                let name = stmt.parameter_name(i).unwrap_or("");
                let n: usize = name
                    .strip_prefix('$')
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| StoreError::Other(format!("placeholder {name:?}: use $1, $2, …")))?;
                order.push(n);
            }
            let order: Rc<[usize]> = order.into();
            ORDER.with(|o| {
                let mut o = o.borrow_mut();
                // Statement texts are few (a multi-row insert has one per row count); past this
                // many, start over rather than grow.
                if o.len() >= 1024 {
                    o.clear();
                }
                o.insert(sql.into(), order.clone());
            });
            order
        }
    };
    for (i, n) in order.iter().enumerate() {
        let arg = args.get(n.wrapping_sub(1)).ok_or_else(|| StoreError::Other(format!("no argument for ${n}")))?;
        match arg {
            Arg::Int(v) => stmt.raw_bind_parameter(i + 1, v),
            Arg::Text(v) => stmt.raw_bind_parameter(i + 1, v),
        }
        .map_err(sqlite_err)?;
    }
    Ok(())
}

/// `sql` with every `$n` made `$(n + by)`, to put one statement's arguments after another's.
pub(crate) fn shift_placeholders(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.find(|ch: char| !ch.is_ascii_digit()).unwrap_or(rest.len());
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + by).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// What a check that fails inside a statement made by [`one_statement`] says, followed by
/// the step's index.
const CHECK_FAILED: &str = "buyline-check-failed:";

/// A job as one PostgreSQL statement: each step a data-modifying CTE (`returning 1`, so its
/// changed rows can be counted), the steps' arguments one after another, and a final select
/// of every count. A `FailUnlessOne` check that does not hold makes that select fail (a cast
/// of a text naming the step), which undoes the whole statement. `None` for a job that cannot
/// be one: a single step, a step with a `with` of its own, or a `StopUnlessOne` check (what
/// came before it would have to stay).
pub(crate) fn one_statement(job: &Job) -> Option<(String, Vec<Arg>)> {
    let fits =
        |s: &Step| s.check != Check::StopUnlessOne && !s.sql.trim_start().to_ascii_lowercase().starts_with("with");
    if job.steps.len() < 2 || !job.steps.iter().all(fits) {
        return None;
    }
    let mut ctes = Vec::with_capacity(job.steps.len());
    let mut args = Vec::new();
    for (i, s) in job.steps.iter().enumerate() {
        ctes.push(format!("s{i} as ({} returning 1)", shift_placeholders(&s.sql, args.len())));
        args.extend(s.args.iter().cloned());
    }
    let mut cols = Vec::with_capacity(job.steps.len() * 2);
    for (i, s) in job.steps.iter().enumerate() {
        cols.push(format!("(select count(*) from s{i}) as n{i}"));
        if s.check == Check::FailUnlessOne {
            cols.push(format!(
                "case when (select count(*) from s{i}) = 1 then 0 \
                 else cast('{CHECK_FAILED}{i}:' || (select count(*) from s{i}) as integer) end as c{i}"
            ));
        }
    }
    Some((format!("with {} select {}", ctes.join(", "), cols.join(", ")), args))
}

/// Runs [`one_statement`]'s statement: one round trip, and one transaction of its own.
async fn run_one_statement(pool: &AnyPool, sql: &str, args: &[Arg], steps: usize) -> Result<Outcome, StoreError> {
    use sqlx::Row;
    match bind_any(sqlx::query(sql), args).fetch_one(pool).await {
        Ok(row) => {
            let rows = (0..steps)
                .map(|i| row.try_get::<i64, _>(format!("n{i}").as_str()).map(|n| n as u64))
                .collect::<Result<Vec<u64>, _>>()
                .map_err(crate::other)?;
            Ok(Outcome::Done { rows })
        }
        Err(sqlx::Error::Database(e)) if e.message().contains(CHECK_FAILED) => {
            let at = e.message().split(CHECK_FAILED).nth(1).and_then(|t| t.split(':').next()?.parse().ok());
            at.map(|at| Outcome::Failed { at }).ok_or_else(|| StoreError::Other(e.message().to_string()))
        }
        Err(e) => Err(crate::other(e)),
    }
}

/// A job as one plain sqlx transaction (PostgreSQL, or SQLite without group commit).
pub(crate) async fn run_alone(pool: &AnyPool, sqlite: bool, job: &Job) -> Result<Outcome, StoreError> {
    if job.one_statement && !sqlite {
        if let Some((sql, args)) = one_statement(job) {
            return run_one_statement(pool, &sql, &args, job.steps.len()).await;
        }
    }
    if let (false, [s]) = (job.guarded(), job.steps.as_slice()) {
        // No round trips for begin and commit (the processor's authorisation and capture, an
        // audit row written alone).
        let n = bind_any(sqlx::query(&s.sql), &s.args).execute(pool).await.map_err(crate::other)?.rows_affected();
        return Ok(Outcome::Done { rows: vec![n] });
    }
    let mut tx =
        if sqlite { pool.begin_with("begin immediate").await } else { pool.begin().await }.map_err(crate::other)?;
    let out = run_steps(&mut tx, &job.steps).await?;
    if matches!(out, Outcome::Failed { .. }) {
        tx.rollback().await.map_err(crate::other)?;
    } else {
        tx.commit().await.map_err(crate::other)?;
    }
    Ok(out)
}

// After `args!`, which its tests use.
mod sqlite;
use sqlite::sqlite_err;
pub use sqlite::SqliteWriter;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn insert(id: &str, n: i64) -> Step {
        Step::new("insert into t (id, n) values ($1, $2)", args![id, n])
    }

    #[test]
    fn placeholders_shift_by_number_and_nothing_else_moves() {
        assert_eq!(shift_placeholders("($1, $2, $10, $10, $13)", 4), "($5, $6, $14, $14, $17)");
        assert_eq!(shift_placeholders("price $ and $x stay", 3), "price $ and $x stay");
        assert_eq!(shift_placeholders("$9", 0), "$9");
    }

    #[test]
    fn only_jobs_of_plain_statements_become_one() {
        let mut job = Job::from(vec![insert("a", 1), insert("b", 2).check(Check::FailUnlessOne)]);
        let (sql, args) = one_statement(&job).unwrap();
        assert!(
            sql.starts_with(
                "with s0 as (insert into t (id, n) values ($1, $2) returning 1), \
             s1 as (insert into t (id, n) values ($3, $4) returning 1) select"
            ),
            "{sql}"
        );
        assert!(sql.contains("as c1") && !sql.contains("as c0"), "only the checked step is checked: {sql}");
        assert_eq!(args.len(), 4);
        job.steps.push(Step::new("update t set n = 0", vec![]).check(Check::StopUnlessOne));
        assert!(one_statement(&job).is_none(), "what ran before a stop must stay: not one statement");
        assert!(one_statement(&Job::from(vec![insert("a", 1)])).is_none());
        assert!(one_statement(&Job::from(vec![
            insert("a", 1),
            Step::new("with x as (select 1) delete from t", vec![])
        ]))
        .is_none());
    }

    /// A fresh, empty database on the local PostgreSQL (`BUYLINE_TEST_DATABASE_URL`, or the one
    /// every machine of this project runs): its URL, the server's URL and its name, for
    /// [`drop_postgres_database`].
    pub(crate) async fn fresh_postgres() -> (String, String, String) {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let base = std::env::var("BUYLINE_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("bl_w_{}_{}", std::process::id(), buyline_core::ids::new_id("t").to_lowercase());
        let mut c = sqlx::AnyConnection::connect(&base).await.expect("the local PostgreSQL");
        sqlx::query(&format!("create database {name}")).execute(&mut c).await.unwrap();
        c.close().await.ok();
        let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
        (url, base, name)
    }

    /// Drops a database of [`fresh_postgres`] once its pools are closed.
    pub(crate) async fn drop_postgres_database(base: &str, name: &str) {
        use sqlx::Connection;
        let mut c = sqlx::AnyConnection::connect(base).await.unwrap();
        // `force`: a closed pool's server processes may still be ending (a CI run failed on
        // "being accessed by other users").
        sqlx::query(&format!("drop database if exists {name} with (force)")).execute(&mut c).await.unwrap();
    }

    /// A fresh database with the table `t`; dropped by [`drop_postgres`].
    async fn postgres() -> (AnyPool, String, String) {
        let (url, base, name) = fresh_postgres().await;
        let pool = sqlx::any::AnyPoolOptions::new().max_connections(2).connect(&url).await.unwrap();
        sqlx::query("create table t (id text primary key, n bigint not null)").execute(&pool).await.unwrap();
        (pool, base, name)
    }

    async fn drop_postgres(pool: AnyPool, base: &str, name: &str) {
        pool.close().await;
        drop_postgres_database(base, name).await;
    }

    #[tokio::test]
    async fn a_job_as_one_statement_keeps_its_checks_on_postgres() {
        let (pool, base, name) = postgres().await;
        sqlx::query("insert into t (id, n) values ('x', 0)").execute(&pool).await.unwrap();
        let bump = |id: &str| Step::new("update t set n = n + 1 where id = $1", args![id]).check(Check::FailUnlessOne);
        let one = |steps: Vec<Step>| {
            let mut job = Job::from(steps);
            job.as_one_statement();
            job
        };
        let ok = run_alone(&pool, false, &one(vec![insert("a", 1), bump("x")])).await.unwrap();
        assert_eq!(ok, Outcome::Done { rows: vec![1, 1] });
        // A check that does not hold undoes the steps before it, as a transaction would.
        let failed = run_alone(&pool, false, &one(vec![insert("b", 2), bump("nobody")])).await.unwrap();
        assert_eq!(failed, Outcome::Failed { at: 1 });
        // An error (a duplicate key) undoes the rest too, and is told as what it is.
        let dup = run_alone(&pool, false, &one(vec![insert("c", 3), insert("a", 9)])).await;
        assert!(matches!(dup, Err(StoreError::Unique(_))), "{dup:?}");
        use sqlx::Row;
        let ids: Vec<String> = sqlx::query("select id from t order by id")
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get("id"))
            .collect();
        assert_eq!(ids, ["a", "x"]);
        let n: i64 = sqlx::query("select n from t where id = 'x'").fetch_one(&pool).await.unwrap().get("n");
        assert_eq!(n, 1);
        drop_postgres(pool, &base, &name).await;
    }
}
