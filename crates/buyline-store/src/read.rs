//! Reads on the calling thread (SQLite): the purchase path's hot reads (products with their
//! variants and rates, the merchant, a vault record) run on a connection the calling thread
//! keeps, instead of crossing to sqlx's connection thread and back once per statement and
//! once per row, which was a quarter of the server's time under one-tap load. A read is a
//! few microseconds of SQLite's own work against its memory-mapped pages; WAL readers
//! never wait for the writer. Each statement is its own read snapshot, ended when its rows
//! are dropped.
//!
//! Row mappers are written once, against [`Cols`], which both sqlx's `AnyRow` and
//! rusqlite's `Row` implement: PostgreSQL keeps the sqlx path with the same SQL and mapper.

use crate::write::{bind_numbered, Arg};
use buyline_core::error::StoreError;
use buyline_core::store::StoreResult;
use std::cell::RefCell;
use std::path::{Path, PathBuf};

/// A column type both drivers decode: text, integers, and either's null.
pub(crate) trait Col:
    Sized + for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + rusqlite::types::FromSql
{
}
impl Col for String {}
impl Col for Option<String> {}
impl Col for i64 {}
impl Col for Option<i64> {}

/// A row whose columns are read by name.
pub(crate) trait Cols {
    fn col<T: Col>(&self, name: &str) -> StoreResult<T>;
}

impl Cols for sqlx::any::AnyRow {
    fn col<T: Col>(&self, name: &str) -> StoreResult<T> {
        sqlx::Row::try_get(self, name).map_err(crate::other)
    }
}

impl Cols for rusqlite::Row<'_> {
    fn col<T: Col>(&self, name: &str) -> StoreResult<T> {
        self.get(name).map_err(|e| StoreError::Other(format!("column {name}: {e}")))
    }
}

/// At most this many databases have a connection on one thread (a process has one; a test
/// process opens many, one after another).
const PER_THREAD: usize = 4;

thread_local! {
    static CONNECTIONS: RefCell<Vec<(PathBuf, rusqlite::Connection)>> = const { RefCell::new(Vec::new()) };
}

fn open(path: &Path) -> StoreResult<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Other(format!("opening a reader: {e}")))?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| StoreError::Other(e.to_string()))?;
    // Sorting and `distinct` in memory: a temporary file each time costs a file creation.
    conn.execute_batch("pragma mmap_size = 67108864; pragma temp_store = memory;")
        .map_err(|e| StoreError::Other(e.to_string()))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Runs `sql` (with `$n` placeholders bound to `args`) on this thread's connection to the
/// database at `path`, mapping every row.
pub(crate) fn query<T>(
    path: &Path,
    sql: &str,
    args: &[Arg],
    mut map: impl FnMut(&rusqlite::Row<'_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    CONNECTIONS.with(|cell| {
        let mut conns = cell.borrow_mut();
        let at = match conns.iter().position(|(p, _)| p == path) {
            Some(i) => i,
            None => {
                if conns.len() >= PER_THREAD {
                    conns.remove(0);
                }
                conns.push((path.to_path_buf(), open(path)?));
                conns.len() - 1
            }
        };
        let conn = &conns[at].1;
        let err = |e: rusqlite::Error| StoreError::Other(e.to_string());
        let mut stmt = conn.prepare_cached(sql).map_err(err)?;
        bind_numbered(&mut stmt, sql, args)?;
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(err)? {
            out.push(map(row)?);
        }
        Ok(out)
    })
}
