//! Reads on the request hot path of a SQLite database, run in the calling thread.
//!
//! sqlx runs each SQLite connection on a thread of its own and hands every statement across a
//! channel, which costs two thread wake-ups per query — far more than the lookup itself. The
//! point lookups behind every API request (a token, its user, an app, a session) go instead
//! through plain connections to the same file, used in place. In WAL mode a reader never waits
//! for the writer and always sees every committed transaction, from this process or another,
//! so nothing is cached and nothing can be stale.

use std::cell::Cell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use sqlx::Row as _;

/// Idle connections kept for reuse (more are opened when more threads read at once).
const KEEP: usize = 8;

pub(super) struct Reader {
    path: PathBuf,
    idle: Mutex<Vec<Conn>>,
}

/// A reading connection, with the column names of each statement it has run: asking SQLite
/// for them costs more than reading the row. Statements are `'static` texts, so one is known
/// by its address and length.
struct Conn {
    conn: rusqlite::Connection,
    names: HashMap<(usize, usize), Names>,
}

/// A statement's column names, and SQLite's counts that show they are still its own.
#[derive(Default)]
struct Names {
    list: Box<[Box<str>]>,
    /// How often SQLite had prepared the statement again (after a schema change, say by a
    /// newer latchkey's migration from another process, when `u.*` may mean other columns).
    reprepared: i32,
    /// How often the statement had run: the next use finds one more, unless the statement was
    /// dropped from the connection's cache and prepared anew, which counts from one again.
    /// Zero until the names are first read, which no run after a step can match.
    runs: i32,
}

impl Names {
    /// The column names of the statement `row` came from, read again unless they are known.
    fn of(&mut self, row: &rusqlite::Row<'_>) -> &[Box<str>] {
        let statement = row.as_ref();
        let reprepared = statement.get_status(rusqlite::StatementStatus::RePrepare);
        let runs = statement.get_status(rusqlite::StatementStatus::Run);
        if self.runs == 0 || self.reprepared != reprepared || self.runs.wrapping_add(1) != runs {
            self.list = column_names(statement);
            self.reprepared = reprepared;
        }
        self.runs = runs;
        &self.list
    }
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

    fn connect(&self) -> rusqlite::Result<Conn> {
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch("PRAGMA query_only = 1; PRAGMA busy_timeout = 5000;")?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(Conn {
            conn,
            names: HashMap::new(),
        })
    }

    /// The first row of `sql` with `params`, mapped by `map`.
    pub(super) fn optional<T>(
        &self,
        sql: &'static str,
        params: impl rusqlite::Params,
        map: impl FnOnce(&Named<'_, '_>) -> Result<T, sqlx::Error>,
    ) -> Result<Option<T>, sqlx::Error> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => self.connect().map_err(io)?,
        };
        let found = (|| {
            let Conn { conn, names } = &mut conn;
            let mut statement = conn.prepare_cached(sql).map_err(io)?;
            let mut rows = statement.query(params).map_err(io)?;
            match rows.next().map_err(io)? {
                Some(row) => {
                    let names = names.entry((sql.as_ptr() as usize, sql.len())).or_default();
                    map(&Named::new(row, names.of(row))).map(Some)
                }
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

/// A statement's column names, for [`Named`].
pub(super) fn column_names(statement: &rusqlite::Statement<'_>) -> Box<[Box<str>]> {
    statement
        .column_names()
        .into_iter()
        .map(Into::into)
        .collect()
}

/// A row and its statement's column names: rusqlite's own lookup by name asks SQLite for every
/// column's name on every read.
pub(super) struct Named<'r, 's> {
    row: &'r rusqlite::Row<'s>,
    names: &'r [Box<str>],
    /// Where the next lookup starts: the column after the last one read. Rows are mostly read
    /// in their select list's order, so a lookup usually compares one name, not half of them.
    next: Cell<usize>,
}

impl<'r, 's> Named<'r, 's> {
    pub(super) fn new(row: &'r rusqlite::Row<'s>, names: &'r [Box<str>]) -> Self {
        Named {
            names,
            row,
            next: Cell::new(0),
        }
    }

    fn get<T: rusqlite::types::FromSql>(&self, column: &str) -> Result<T, sqlx::Error> {
        let start = self.next.get();
        let index = (start..self.names.len())
            .chain(0..start)
            .find(|&i| *self.names[i] == *column)
            .ok_or_else(|| sqlx::Error::ColumnNotFound(column.to_owned()))?;
        self.next.set(index + 1);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_found_by_name_in_any_order() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let mut statement = conn
            .prepare("SELECT 1 AS a, 'two' AS b, NULL AS c, 4 AS d")
            .unwrap();
        let names = column_names(&statement);
        let mut rows = statement.query([]).unwrap();
        let row = Named::new(rows.next().unwrap().unwrap(), &names);
        assert_eq!(row.int("a").unwrap(), 1);
        assert_eq!(row.text("b").unwrap(), "two");
        assert_eq!(row.int("d").unwrap(), 4);
        assert_eq!(row.opt_text("c").unwrap(), None);
        assert_eq!(row.text("b").unwrap(), "two");
        assert_eq!(row.int("a").unwrap(), 1);
        assert_eq!(row.opt_int("d").unwrap(), Some(4));
        assert!(matches!(
            row.int("e"),
            Err(sqlx::Error::ColumnNotFound(name)) if name == "e"
        ));
        assert_eq!(row.int("d").unwrap(), 4);
    }

    #[test]
    fn a_table_rebuilt_by_another_connection_is_read_by_its_new_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let other = rusqlite::Connection::open(&path).unwrap();
        other
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (a TEXT, b TEXT); \
                 INSERT INTO t VALUES ('a1', 'b1');",
            )
            .unwrap();
        let reader = Reader::new(path);
        let read = || {
            reader
                .optional("SELECT * FROM t", rusqlite::params![], |row| {
                    Ok((row.text("a")?, row.text("b")?))
                })
                .unwrap()
        };
        let pair = |a: &str, b: &str| Some((a.to_owned(), b.to_owned()));
        assert_eq!(read(), pair("a1", "b1"));
        assert_eq!(read(), pair("a1", "b1"));
        // As a newer release's migration might, from another process: the same columns in
        // another order, so the statement's `*` now means (b, a).
        other
            .execute_batch(
                "DROP TABLE t; CREATE TABLE t (b TEXT, a TEXT); INSERT INTO t VALUES ('b2', 'a2');",
            )
            .unwrap();
        assert_eq!(read(), pair("a2", "b2"));
        assert_eq!(read(), pair("a2", "b2"));
    }
}
