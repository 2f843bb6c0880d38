//! Reads on the request hot path of a SQLite database, run in the calling thread.
//!
//! sqlx runs each SQLite connection on a thread of its own and hands every statement across a
//! channel, which costs two thread wake-ups per query — far more than the lookup itself. The
//! point lookups behind every API request (a token, its user, an app, a session) go instead
//! through plain connections to the same file, used in place. In WAL mode a reader never waits
//! for the writer and always sees every committed transaction, from this process or another,
//! so nothing is cached and nothing can be stale.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use sqlx::Row as _;

/// Idle connections kept for reuse (more are opened when more threads read at once).
const KEEP: usize = 8;

pub(super) struct Reader {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
}

fn io(e: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(e))
}

impl Reader {
    pub(super) fn new(path: PathBuf) -> Reader {
        Reader {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn connect(&self) -> rusqlite::Result<rusqlite::Connection> {
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch("PRAGMA query_only = 1; PRAGMA busy_timeout = 5000;")?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(conn)
    }

    /// The first row of `sql` with `params`, mapped by `map`.
    pub(super) fn optional<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        map: impl FnOnce(&Named<'_, '_>) -> Result<T, sqlx::Error>,
    ) -> Result<Option<T>, sqlx::Error> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.connect().map_err(io)?,
        };
        let found = (|| {
            let mut statement = conn.prepare_cached(sql).map_err(io)?;
            let mut rows = statement.query(params).map_err(io)?;
            match rows.next().map_err(io)? {
                Some(row) => map(&Named::new(row)).map(Some),
                None => Ok(None),
            }
        })();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < KEEP {
            idle.push(conn);
        }
        found
    }
}

/// A result row of either kind, read by column name: one mapping function serves the sqlx
/// path and the in-place SQLite reader.
pub(super) trait Columns {
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    fn opt_blob(&self, column: &str) -> Result<Option<Vec<u8>>, sqlx::Error>;
}

impl Columns for sqlx::any::AnyRow {
    fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        self.try_get(column)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(column)
    }
    fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
        self.try_get(column)
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(column)
    }
    fn opt_blob(&self, column: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
        self.try_get(column)
    }
}

/// A row and its column names, read once: rusqlite's own lookup by name asks SQLite for every
/// column's name on every read.
pub(super) struct Named<'r, 's> {
    row: &'r rusqlite::Row<'s>,
    names: Vec<&'r str>,
}

impl<'r, 's> Named<'r, 's> {
    pub(super) fn new(row: &'r rusqlite::Row<'s>) -> Self {
        Named {
            names: row.as_ref().column_names(),
            row,
        }
    }

    fn get<T: rusqlite::types::FromSql>(&self, column: &str) -> Result<T, sqlx::Error> {
        let index = self
            .names
            .iter()
            .position(|n| *n == column)
            .ok_or_else(|| sqlx::Error::ColumnNotFound(column.to_owned()))?;
        self.row.get(index).map_err(io)
    }
}

impl Columns for Named<'_, '_> {
    fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        self.get(column)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        self.get(column)
    }
    fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
        self.get(column)
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
        self.get(column)
    }
    fn opt_blob(&self, column: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
        self.get(column)
    }
}
