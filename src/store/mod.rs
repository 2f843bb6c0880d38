//! Storage over sqlx's `Any` driver: one SQL text (with `$N` placeholders, BIGINT times and 0/1
//! flags) runs on the embedded SQLite default and on PostgreSQL. Each use case is one method.

pub mod activity;
mod apps;
pub mod audit;
pub mod deliveries;
pub mod device;
mod dpop;
mod exec;
mod gather;
mod grants;
mod inserts;
mod keys;
mod leaks;
mod par;
mod pats;
mod rate;
mod reader;
pub mod resources;
mod sessions;
pub mod setup;
mod spends;
pub mod tokens;
mod users;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor, SqlSafeStr};

pub use apps::{App, Registration, Revoked};
pub use audit::{AuditEvent, AuditKind};
pub use grants::Grant;
pub use keys::SigningKey;
pub use leaks::LeakHit;
pub use par::PushedRequest;
pub use pats::Pat;
pub use sessions::Session;
pub use users::{CreateUserError, NewUser};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database. Cheap to clone: it is a pool handle.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Where writes go: on SQLite one connection, so writers queue here in order instead of
    /// racing for the file's write lock (and sleeping in its busy handler); on PostgreSQL the
    /// pool itself.
    writer: AnyPool,
    backend: Backend,
    /// In-place reads of a SQLite file (see [`reader`]); `None` on PostgreSQL and in memory.
    reader: Option<Arc<reader::Reader>>,
    /// The thread that writes a SQLite file in groups (see [`exec`]); `None` otherwise.
    writes: Option<Arc<exec::Writer>>,
    /// When this process last noted each grant's use (see [`Store::touch_grant`]).
    touched: Arc<Mutex<HashMap<String, i64>>>,
    /// Server keys already read (see [`Store::server_key`]): made once, never changed.
    server_keys: Arc<Mutex<HashMap<String, [u8; 32]>>>,
    /// The request path's point lookups, gathered on the pool (see [`gather`]): a token and
    /// its user, a token, an app by client ID.
    token_users: Arc<gather::Gather>,
    token_infos: Arc<gather::Gather>,
    apps_by_client_id: Arc<gather::Gather>,
    /// A refresh token and an authorization code by their hashes, read before they are
    /// spent (see [`spends`]).
    refresh_tokens: Arc<gather::Gather>,
    codes: Arc<gather::Gather>,
    /// One-row inserts waiting to be written together on the pool (see [`inserts`]).
    inserts: Arc<inserts::Inserts>,
    /// Refresh tokens and codes waiting to be spent together on PostgreSQL (see [`spends`]).
    spends: Arc<spends::Spends>,
}

/// The table of applied migrations, sqlx's own, so databases made by earlier releases carry on.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// On a new database, apply every migration in one transaction and record them as sqlx would.
/// sqlx commits each migration and then its timing apart, two commits (each a disk flush) per
/// migration; one transaction brings the first answer on a new PostgreSQL database from about
/// 220 ms to under 100. A database with any migration applied is left to sqlx, which checks
/// what was applied before it applies more. Under sqlx's migration lock, so nodes starting
/// together on a new database install it once.
async fn install(
    migrator: &Migrator,
    conn: &mut sqlx::AnyConnection,
) -> Result<(), sqlx::migrate::MigrateError> {
    use sqlx::Connection as _;
    use sqlx::migrate::{Migrate as _, MigrateError};
    conn.lock().await?;
    let installed = async {
        let mut tx = conn.begin().await?;
        tx.ensure_migrations_table(MIGRATIONS_TABLE).await?;
        if !tx.list_applied_migrations(MIGRATIONS_TABLE).await?.is_empty() {
            return Ok(());
        }
        for migration in migrator.iter() {
            let started = std::time::Instant::now();
            tx.execute(migration.sql.clone())
                .await
                .map_err(|e| MigrateError::ExecuteMigration(e, migration.version))?;
            let took = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {MIGRATIONS_TABLE} (version, description, success, checksum, execution_time) \
                 VALUES ($1, $2, TRUE, $3, $4)"
            )))
            .bind(migration.version)
            .bind(&*migration.description)
            .bind(&*migration.checksum)
            .bind(took)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
    .await;
    conn.unlock().await?;
    installed
}

/// The migrations for each backend, embedded in the binary. Both trees hold the same tables.
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "activity",
        include_str!("../../migrations/sqlite/0002_activity.sql"),
    ),
    (
        3,
        "rate_limits",
        include_str!("../../migrations/sqlite/0003_rate_limits.sql"),
    ),
    (
        4,
        "device_flow",
        include_str!("../../migrations/sqlite/0004_device_flow.sql"),
    ),
    (
        5,
        "par",
        include_str!("../../migrations/sqlite/0005_par.sql"),
    ),
    (
        6,
        "dpop",
        include_str!("../../migrations/sqlite/0006_dpop.sql"),
    ),
    (
        7,
        "registration",
        include_str!("../../migrations/sqlite/0007_registration.sql"),
    ),
    (
        8,
        "resources",
        include_str!("../../migrations/sqlite/0008_resources.sql"),
    ),
    (
        9,
        "logout",
        include_str!("../../migrations/sqlite/0009_logout.sql"),
    ),
    (
        10,
        "token_exchange",
        include_str!("../../migrations/sqlite/0010_token_exchange.sql"),
    ),
    (
        11,
        "webhooks",
        include_str!("../../migrations/sqlite/0011_webhooks.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "activity",
        include_str!("../../migrations/postgres/0002_activity.sql"),
    ),
    (
        3,
        "rate_limits",
        include_str!("../../migrations/postgres/0003_rate_limits.sql"),
    ),
    (
        4,
        "device_flow",
        include_str!("../../migrations/postgres/0004_device_flow.sql"),
    ),
    (
        5,
        "par",
        include_str!("../../migrations/postgres/0005_par.sql"),
    ),
    (
        6,
        "dpop",
        include_str!("../../migrations/postgres/0006_dpop.sql"),
    ),
    (
        7,
        "registration",
        include_str!("../../migrations/postgres/0007_registration.sql"),
    ),
    (
        8,
        "resources",
        include_str!("../../migrations/postgres/0008_resources.sql"),
    ),
    (
        9,
        "logout",
        include_str!("../../migrations/postgres/0009_logout.sql"),
    ),
    (
        10,
        "token_exchange",
        include_str!("../../migrations/postgres/0010_token_exchange.sql"),
    ),
    (
        11,
        "webhooks",
        include_str!("../../migrations/postgres/0011_webhooks.sql"),
    ),
];

/// 32 MiB of page cache per pooled SQLite reading connection (the default is 2 MiB): reports
/// over a million-row heartbeat table stay in memory (with 2 MiB, `hours` p50 rose from 4 to
/// 7 ms). The cache fills only as far as the data read.
const SQLITE_READ_CACHE: &str = "PRAGMA cache_size = -32768";

/// 8 MiB for the connection that runs write transactions. Its cache keeps every page it wrote
/// until the cache is full, so a growing table fills it whatever its size; what the writer
/// needs is the right edges of time-ordered indexes, where new rows go. (Measured with 100
/// heartbeats a request, 64 in flight: 32 MiB → 8 MiB took peak RSS from 75 to 46 MiB and
/// ingest from 507 to 552 requests/s.)
const SQLITE_WRITE_CACHE: &str = "PRAGMA cache_size = -8192";

/// Options for a pool of `connections` to a SQLite file. WAL lets readers run beside the one
/// writer; synchronous=NORMAL keeps every committed transaction through a crash of the process
/// (not of the OS).
fn sqlite_pool(connections: u32, cache: &'static str) -> AnyPoolOptions {
    pool_options()
        .max_connections(connections)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                conn.execute("PRAGMA busy_timeout = 5000").await?;
                conn.execute(cache).await?;
                // Checkpoints run beside the writer (`exec::Checkpoints`), not inside
                // whichever request's commit happens to fill the log.
                conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
                Ok(())
            })
        })
}

/// Pool options for either backend. sqlx pings a pooled connection before every use by
/// default: a whole round trip to the database per query, which doubled the cost of a busy
/// node's lookups. A connection is checked only after it has been idle for a second — the
/// ones a restarted or unreachable database leaves dead — and one in steady use is not. (The
/// same round trip after each use is skipped by the patched sqlx-core: `vendor/README.md`.)
fn pool_options() -> AnyPoolOptions {
    AnyPoolOptions::new()
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= Duration::from_secs(1) {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// The file behind a `sqlite:` URL, if it names one.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.starts_with(":memory:")).then_some(path)
}

impl Store {
    /// Connect to `url`, creating the SQLite file's directory if needed.
    pub async fn connect(url: &str) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        if let Some(path) = sqlite_path(url)
            && let Some(dir) = std::path::Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let options = AnyConnectOptions::from_str(url).context("parsing the database URL")?;
        let pool_options = match backend {
            Backend::Sqlite => sqlite_pool(8, SQLITE_READ_CACHE),
            Backend::Postgres => pool_options().max_connections(16),
        };
        let pool = pool_options
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .context("connecting to the database")?;
        let writer = match backend {
            Backend::Sqlite if sqlite_path(url).is_some() => sqlite_pool(1, SQLITE_WRITE_CACHE)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await
                .context("connecting to the database")?,
            _ => pool.clone(),
        };
        let file = (backend == Backend::Sqlite)
            .then(|| sqlite_path(url))
            .flatten();
        let reader = file.map(|path| Arc::new(reader::Reader::new(path.into())));
        let writes = match file {
            Some(path) => Some(Arc::new(
                exec::Writer::open(std::path::Path::new(path)).context("opening the writer")?,
            )),
            None => None,
        };
        Ok(Store {
            pool,
            writer,
            backend,
            reader,
            writes,
            touched: Arc::default(),
            inserts: Arc::default(),
            spends: Arc::default(),
            server_keys: Arc::default(),
            token_users: Arc::new(tokens::gather_token_users()),
            token_infos: Arc::new(tokens::gather_token_infos()),
            apps_by_client_id: Arc::new(apps::gather_by_client_id()),
            refresh_tokens: Arc::new(tokens::gather_refresh_tokens()),
            codes: Arc::new(tokens::gather_codes()),
        })
    }

    /// The first row of `sql` (a point lookup on the request path) with `keys` bound to `$1`,
    /// `$2`…: in place on a SQLite file, through the pool otherwise.
    async fn lookup<T>(
        &self,
        sql: &'static str,
        keys: &[exec::Param<'_>],
        map: impl Fn(&dyn reader::Columns) -> Result<T, sqlx::Error>,
    ) -> Result<Option<T>, sqlx::Error> {
        if let Some(reader) = &self.reader {
            return reader.optional(sql, rusqlite::params_from_iter(keys), |row| map(row));
        }
        let row = exec::bind(sqlx::query(sql), keys)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| map(r)).transpose()
    }

    /// The row of a one-key point lookup, `sql` with the key bound to `$1`: in place on a
    /// SQLite file; on the pool, gathered with other requests' lookups of the same kind.
    async fn lookup_gathered<T>(
        &self,
        gather: &Arc<gather::Gather>,
        sql: &'static str,
        key: &str,
        map: impl Fn(&dyn reader::Columns) -> Result<T, sqlx::Error>,
    ) -> Result<Option<T>, sqlx::Error> {
        if let Some(reader) = &self.reader {
            return reader.optional(sql, [key], |row| map(row));
        }
        let row = gather.lookup(&self.pool, key.to_owned()).await?;
        row.as_ref().map(|r| map(r)).transpose()
    }

    /// Run a write transaction: in the SQLite writer's next group; on the pool, with other
    /// requests' rows if it is one insert, else as a transaction of its own. Either way it runs to its end even if the request that asked for it is
    /// dropped (a client gone mid-request must not leave a transaction open on a pooled
    /// connection).
    async fn write<J: exec::Job>(&self, job: J) -> Result<J::Output, sqlx::Error> {
        if let Some(writes) = &self.writes {
            return writes.run(job).await;
        }
        if job.one_insert() {
            return self.inserts.run_job(&self.writer, job).await;
        }
        let store = self.clone();
        let task = tokio::spawn(async move {
            let mut tx = store.begin().await?;
            match job.run(&mut *tx).await? {
                exec::Done::Commit(out) => {
                    tx.commit().await?;
                    Ok(out)
                }
                exec::Done::Rollback(out) => {
                    tx.rollback().await?;
                    Ok(out)
                }
            }
        });
        task.await
            .map_err(|e| sqlx::Error::Io(std::io::Error::other(e)))?
    }

    fn writer(&self) -> &AnyPool {
        &self.writer
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Apply every migration not yet applied. Idempotent; safe to run from several nodes.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let list = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        let migrations = list
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect();
        let migrator = Migrator::with_migrations(migrations);
        let mut conn = self.pool.acquire().await?;
        install(&migrator, &mut conn)
            .await
            .context("installing the database")?;
        migrator
            .run_direct(None, &mut *conn, false)
            .await
            .context("applying database migrations")?;
        Ok(())
    }

    /// A cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Begin a write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`),
    /// so two writers queue on the busy timeout instead of failing when one upgrades its lock.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.writer.begin().await,
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// 0/1 integer flag, as every backend stores booleans.
pub(crate) fn flag(b: bool) -> i64 {
    i64::from(b)
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Whether `err` is a unique-constraint violation on the named constraint (or, on SQLite,
/// which does not name constraints, on the given column).
pub(crate) fn is_unique_violation(err: &sqlx::Error, constraint: &str, column: &str) -> bool {
    match err {
        sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation => {
            db.constraint() == Some(constraint) || db.message().contains(column)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite://data/latchkey.db?mode=rwc"),
            Some("data/latchkey.db")
        );
        assert_eq!(sqlite_path("sqlite:///tmp/x.db"), Some("/tmp/x.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x"), None);
    }

    #[test]
    fn both_migration_trees_define_the_same_tables_and_columns() {
        fn shape(sql: &str) -> Vec<String> {
            sql.lines()
                .map(|l| l.split("--").next().unwrap_or("").trim())
                .filter(|l| !l.is_empty())
                .map(|l| l.split_whitespace().next().unwrap_or("").to_owned())
                .collect()
        }
        for (s, p) in SQLITE_MIGRATIONS.iter().zip(POSTGRES_MIGRATIONS) {
            assert_eq!(s.0, p.0);
            assert_eq!(shape(s.2), shape(p.2), "migration {} differs in shape", s.0);
        }
        assert_eq!(SQLITE_MIGRATIONS.len(), POSTGRES_MIGRATIONS.len());
    }
}
