//! Write transactions written once for both backends, and the SQLite writer that runs them in
//! groups.
//!
//! A [`Job`] is a transaction against any [`Exec`]: a sqlx connection (PostgreSQL, or SQLite in
//! memory), or a SQLite connection used in place. On a SQLite file every job goes to one writer
//! thread, which runs whatever jobs are waiting inside one transaction (each in a savepoint of
//! its own, so one job's failure or rollback leaves the others alone) and commits them together:
//! a busy token endpoint pays for one commit per group, not per request, and no statement
//! crosses threads. A job's answer is released only after its group has committed.

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::reader::{Columns, Named, column_names};

/// The most jobs one group commits.
const MAX_GROUP: usize = 256;

/// A value bound to a statement.
#[derive(Clone, Copy, Debug)]
pub(super) enum Param<'a> {
    Text(&'a str),
    Int(i64),
    Blob(&'a [u8]),
    Null,
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(s: &'a str) -> Self {
        Param::Text(s)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(s: &'a String) -> Self {
        Param::Text(s)
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(b: &'a [u8]) -> Self {
        Param::Blob(b)
    }
}

impl From<i64> for Param<'_> {
    fn from(i: i64) -> Self {
        Param::Int(i)
    }
}

impl<'a, T: Into<Param<'a>>> From<Option<T>> for Param<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Param::Null, Into::into)
    }
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value, ValueRef};
        Ok(match *self {
            Param::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Param::Int(i) => ToSqlOutput::Owned(Value::Integer(i)),
            Param::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Param::Null => ToSqlOutput::Owned(Value::Null),
        })
    }
}

/// Something statements run on.
pub(super) trait Exec: Send {
    /// Run a statement; the rows it changed.
    fn execute(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    /// The first row of a statement, mapped by `map`.
    fn fetch_optional<T: Send>(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
        map: impl FnOnce(&dyn Columns) -> Result<T, sqlx::Error> + Send,
    ) -> impl Future<Output = Result<Option<T>, sqlx::Error>> + Send;
}

pub(super) fn bind<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    params: &[Param<'q>],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for p in params {
        query = match *p {
            Param::Text(s) => query.bind(s),
            Param::Int(i) => query.bind(i),
            Param::Blob(b) => query.bind(b),
            Param::Null => query.bind(None::<String>),
        };
    }
    query
}

impl Exec for sqlx::AnyConnection {
    async fn execute(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<u64, sqlx::Error> {
        Ok(bind(sqlx::query(sql), params)
            .execute(&mut *self)
            .await?
            .rows_affected())
    }

    async fn fetch_optional<T: Send>(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
        map: impl FnOnce(&dyn Columns) -> Result<T, sqlx::Error> + Send,
    ) -> Result<Option<T>, sqlx::Error> {
        let row = bind(sqlx::query(sql), params)
            .fetch_optional(&mut *self)
            .await?;
        row.as_ref().map(|r| map(r)).transpose()
    }
}

fn io(e: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(e))
}

/// The writer thread's connection, used in place.
pub(super) struct InPlace<'c>(&'c mut rusqlite::Connection);

impl InPlace<'_> {
    /// Run statements without parameters (each prepared once per connection).
    fn run(&mut self, statements: &[&'static str]) -> Result<(), sqlx::Error> {
        for sql in statements {
            self.0
                .prepare_cached(sql)
                .and_then(|mut s| s.execute([]))
                .map_err(io)?;
        }
        Ok(())
    }
}

impl Exec for InPlace<'_> {
    async fn execute(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<u64, sqlx::Error> {
        let mut statement = self.0.prepare_cached(sql).map_err(io)?;
        let changed = statement
            .execute(rusqlite::params_from_iter(params))
            .map_err(io)?;
        Ok(changed as u64)
    }

    async fn fetch_optional<T: Send>(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
        map: impl FnOnce(&dyn Columns) -> Result<T, sqlx::Error> + Send,
    ) -> Result<Option<T>, sqlx::Error> {
        let mut statement = self.0.prepare_cached(sql).map_err(io)?;
        let mut rows = statement
            .query(rusqlite::params_from_iter(params))
            .map_err(io)?;
        match rows.next().map_err(io)? {
            // The names after the step: it may have prepared the statement again.
            Some(row) => map(&Named::new(row, &column_names(row.as_ref()))).map(Some),
            None => Ok(None),
        }
    }
}

/// What a job decided about its own writes.
pub(super) enum Done<T> {
    Commit(T),
    Rollback(T),
}

/// One write transaction.
pub(super) trait Job: Send + 'static {
    type Output: Send + 'static;

    /// Whether the job's only statement is one plain single-row insert (`INSERT INTO … VALUES
    /// ($1, …, $n)`, no other statement, no read): on the pool such jobs need no transaction,
    /// and their rows are written together with other requests' (see [`super::inserts`]).
    fn one_insert(&self) -> bool {
        false
    }

    fn run<E: Exec>(
        self,
        exec: &mut E,
    ) -> impl Future<Output = Result<Done<Self::Output>, sqlx::Error>> + Send;
}

/// Called with the group's commit outcome (an error message if it failed).
type Finish = Box<dyn FnOnce(Option<&str>) + Send>;
/// A job as the writer thread sees it: run it on the connection (or report that it could not
/// be), then finish it once the group's fate is known.
type Task = Box<dyn FnOnce(Result<&mut rusqlite::Connection, &str>) -> Finish + Send>;

/// The thread that writes a SQLite file.
pub(super) struct Writer {
    tasks: mpsc::Sender<Task>,
}

impl Writer {
    pub(super) fn open(path: &Path) -> anyhow::Result<Writer> {
        let conn = rusqlite::Connection::open(path)?;
        // Each job's savepoint keeps the pages it changes in a sub-journal. In memory that is a
        // copy; by default SQLite moves it to a temporary file once it outgrows 64 KiB and
        // keeps writing there for as long as the connection lives, which cost the writer an
        // eighth of its time in system calls. The page cache keeps every page written until it
        // is full, so it fills whatever its size; a new token lands on a random page of its
        // key index, and no cache short of the whole index keeps those pages. 8 MiB rather
        // than 16: 10 MiB less after the token endpoint's load, and no slower.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -8192; \
             PRAGMA temp_store = MEMORY;",
        )?;
        // Other connections write now and then (sign-ins, heartbeats): wait for them in short
        // steps rather than SQLite's millisecond sleeps.
        conn.busy_handler(Some(|attempt| {
            std::thread::sleep(Duration::from_micros(50));
            attempt < 100_000
        }))?;
        conn.set_prepared_statement_cache_capacity(64);
        let checkpoints = Checkpoints::start(path)?;
        let (tasks, queue) = mpsc::channel::<Task>();
        std::thread::Builder::new()
            .name("latchkey-writer".into())
            .spawn(move || write_groups(conn, queue, checkpoints))?;
        Ok(Writer { tasks })
    }

    /// Run `job` in the next group; its output once the group has committed.
    pub(super) async fn run<J: Job>(&self, job: J) -> Result<J::Output, sqlx::Error> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let task: Task = Box::new(move |conn| {
            let outcome = match conn {
                Ok(conn) => run_job(conn, job),
                Err(e) => Err(sqlx::Error::Io(std::io::Error::other(e.to_owned()))),
            };
            Box::new(move |commit_error: Option<&str>| {
                let result = match (outcome, commit_error) {
                    (Err(e), _) => Err(e),
                    (Ok(_), Some(e)) => Err(sqlx::Error::Io(std::io::Error::other(e.to_owned()))),
                    (Ok(out), None) => Ok(out),
                };
                let _ = answer.send(result);
            })
        });
        self.tasks.send(task).map_err(|_| sqlx::Error::PoolClosed)?;
        answered.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

/// Run a job inside a savepoint (or, for one insert, as its one statement), keeping or undoing
/// its writes as it decided.
fn run_job<J: Job>(conn: &mut rusqlite::Connection, job: J) -> Result<J::Output, sqlx::Error> {
    let mut exec = InPlace(conn);
    if job.one_insert() {
        // One statement is undone by SQLite itself if it fails, leaving the group's other jobs
        // as they are: it needs no savepoint, which keeps a copy of every page the job
        // changes (a memory allocation and a 4 KiB copy each).
        return match ready(job.run(&mut exec))? {
            Done::Commit(out) => Ok(out),
            Done::Rollback(_) => Err(sqlx::Error::Protocol(
                "a job of one insert cannot take it back".into(),
            )),
        };
    }
    exec.run(&["SAVEPOINT job"])?;
    let outcome = ready(job.run(&mut exec));
    let undo = ["ROLLBACK TO job", "RELEASE job"];
    match outcome {
        Ok(Done::Commit(out)) => {
            exec.run(&["RELEASE job"])?;
            Ok(out)
        }
        Ok(Done::Rollback(out)) => {
            exec.run(&undo)?;
            Ok(out)
        }
        Err(e) => {
            exec.run(&undo)?;
            Err(e)
        }
    }
}

/// The output of a future that never waits (every statement of [`InPlace`] runs at once).
pub(super) fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("a job on the writer thread waited"),
    }
}

/// How often the write-ahead log is copied into the database while writes keep coming.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// How long a quiet server waits between copies (other connections write too: sign-ins,
/// heartbeats).
const CHECKPOINT_IDLE: Duration = Duration::from_secs(1);

/// The thread that copies the write-ahead log into the database, beside the writer.
///
/// A copy reads the log, writes the database and waits for both to reach the disk: run by the
/// writer itself, that was a quarter of its time, and every request waited behind it. On a
/// thread of its own it runs while the writer goes on. But a copy made beside a steady writer
/// always ends behind it, and the log starts again from its beginning only once it has been
/// copied in full; so after each copy the writer, between two groups, copies what it wrote
/// meanwhile (a few milliseconds of writes), and the log stays short.
struct Checkpoints {
    /// Told after each group that there is something to copy.
    written: mpsc::SyncSender<()>,
    /// Set by the thread after each copy: the writer's turn to copy the rest.
    copied: Arc<AtomicBool>,
}

impl Checkpoints {
    fn start(path: &Path) -> anyhow::Result<Checkpoints> {
        let conn = rusqlite::Connection::open(path)?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -256;")?;
        let (written, wakes) = mpsc::sync_channel(1);
        let copied = Arc::new(AtomicBool::new(false));
        let done = copied.clone();
        std::thread::Builder::new()
            .name("latchkey-checkpoint".into())
            .spawn(move || {
                while let Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) =
                    wakes.recv_timeout(CHECKPOINT_IDLE)
                {
                    checkpoint(&conn);
                    done.store(true, Ordering::Release);
                    std::thread::sleep(CHECKPOINT_EVERY);
                }
            })?;
        Ok(Checkpoints { written, copied })
    }

    /// After a group: wake the thread, or copy the rest of the log if it has just copied.
    fn after_group(&self, conn: &rusqlite::Connection) {
        let _ = self.written.try_send(());
        if self.copied.swap(false, Ordering::Acquire) {
            checkpoint(conn);
        }
    }
}

/// Copy the log into the database as far as no reader still needs it (never blocks readers or
/// the writer).
fn checkpoint(conn: &rusqlite::Connection) {
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
        tracing::warn!(error = %e, "checkpointing the write-ahead log failed");
    }
}

fn write_groups(
    mut conn: rusqlite::Connection,
    queue: mpsc::Receiver<Task>,
    checkpoints: Checkpoints,
) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP
            && let Ok(task) = queue.try_recv()
        {
            group.push(task);
        }
        let finishes: Vec<Finish> = match conn.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => group.into_iter().map(|task| task(Ok(&mut conn))).collect(),
            Err(e) => {
                let e = e.to_string();
                group.into_iter().map(|task| task(Err(&e))).collect()
            }
        };
        let committed = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for finish in finishes {
            finish(committed.as_ref().err().map(String::as_str));
        }
        checkpoints.after_group(&conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A new database file in WAL mode with `schema`, in a directory removed when dropped.
    fn database(schema: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL").unwrap();
        conn.execute_batch(schema).unwrap();
        (dir, path)
    }

    /// One row of a kilobyte, added at the table's end.
    struct Put;

    impl Job for Put {
        type Output = ();

        async fn run<E: Exec>(self, exec: &mut E) -> Result<Done<()>, sqlx::Error> {
            exec.execute("INSERT INTO t (v) VALUES (zeroblob(1000))", &[])
                .await?;
            Ok(Done::Commit(()))
        }
    }

    /// Two rows in one statement, a job without a savepoint of its own.
    struct Pair(i64, i64);

    impl Job for Pair {
        type Output = ();

        fn one_insert(&self) -> bool {
            true
        }

        async fn run<E: Exec>(self, exec: &mut E) -> Result<Done<()>, sqlx::Error> {
            exec.execute(
                "INSERT INTO u (k) VALUES ($1), ($2)",
                &[self.0.into(), self.1.into()],
            )
            .await?;
            Ok(Done::Commit(()))
        }
    }

    /// A one-statement job that fails leaves nothing behind, and the jobs beside it commit.
    #[tokio::test]
    async fn a_failed_statement_without_a_savepoint_is_undone_alone() {
        let (_dir, path) = database("CREATE TABLE u (k INTEGER PRIMARY KEY)");
        let writer = Writer::open(&path).unwrap();
        writer.run(Pair(1, 2)).await.unwrap();
        // The second row of the first job collides after its first row went in.
        let (failed, kept) = tokio::join!(writer.run(Pair(3, 1)), writer.run(Pair(4, 5)));
        assert!(failed.is_err());
        kept.unwrap();
        drop(writer);
        let conn = rusqlite::Connection::open(&path).unwrap();
        let keys: Vec<i64> = conn
            .prepare("SELECT k FROM u ORDER BY k")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(keys, [1, 2, 4, 5]);
    }

    /// The log is copied beside a writer that never pauses and still starts again from its
    /// beginning: it holds the last few copies' worth of rows, not every row written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_stays_short_under_steady_writes() {
        let (dir, path) = database("CREATE TABLE t (v BLOB)");
        let writer = Arc::new(Writer::open(&path).unwrap());
        let until = Instant::now() + Duration::from_secs(2);
        let writers: Vec<_> = (0..16)
            .map(|_| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    let mut rows = 0u64;
                    while Instant::now() < until {
                        writer.run(Put).await.unwrap();
                        rows += 1;
                    }
                    rows
                })
            })
            .collect();
        let mut rows = 0;
        for w in writers {
            rows += w.await.unwrap();
        }
        let size = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().len();
        let (db, log) = (size("t.db"), size("t.db-wal"));
        assert!(
            db > 4 << 20,
            "too few writes to tell: {rows} rows, {db} bytes"
        );
        // A log that never started again would hold every row written, as much as the
        // database. Copies take longer on a busy or slowed machine (a quarter was exceeded
        // once, 12.8 of 46 MB, in CI), so half is the bound.
        assert!(log < db / 2, "the log grew to {log} bytes beside {db}");
    }
}
