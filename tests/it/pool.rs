//! The database pool's release of a connection (sqlx-core as patched in `vendor/`): a connection
//! whose answer was read to its end goes back at once, without a round trip to test it; any
//! other is tested as before, so no later query can get an earlier one's error.

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};

use crate::helpers::*;
use crate::on_both_backends;

/// A pool of one connection, so every query below reuses the connection of the one before it.
async fn one_connection(db: &TestDb) -> AnyPool {
    sqlx::any::install_default_drivers();
    AnyPoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect(&db.url)
        .await
        .expect("connecting to the test database")
}

/// The pool's idle connections once every task that could return one has had its turn.
async fn settled_idle(pool: &AnyPool) -> usize {
    for _ in 0..200 {
        if pool.num_idle() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    pool.num_idle()
}

on_both_backends! {
    async fn a_connection_read_to_its_end_goes_back_at_once(backend) {
        let db = TestDb::new(&backend).await;
        let pool = one_connection(&db).await;
        sqlx::query("CREATE TABLE kept (n BIGINT NOT NULL)").execute(&pool).await.unwrap();
        // Idle at once after each kind of use: no task of its own, no round trip.
        assert_eq!(pool.num_idle(), 1, "after execute");
        let rows = sqlx::query("SELECT 1 AS n UNION ALL SELECT 2").fetch_all(&pool).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(pool.num_idle(), 1, "after fetch_all");
        let row = sqlx::query("SELECT 3 AS n").fetch_optional(&pool).await.unwrap();
        assert_eq!(row.unwrap().try_get::<i32, _>("n").unwrap(), 3);
        assert_eq!(pool.num_idle(), 1, "after fetch_optional");
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO kept (n) VALUES (1)").execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(pool.num_idle(), 1, "after a commit");

        // A transaction dropped unfinished is rolled back before its connection is used again.
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO kept (n) VALUES (2)").execute(&mut *tx).await.unwrap();
        drop(tx);
        assert_eq!(settled_idle(&pool).await, 1);
        // … at once, not when the connection is next used: another connection can write.
        let other = one_connection(&db).await;
        match backend {
            Backend::Postgres(_) => {
                let open: i64 = sqlx::query(
                    "SELECT count(*) AS n FROM pg_stat_activity \
                     WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
                )
                .fetch_one(&other)
                .await
                .unwrap()
                .try_get("n")
                .unwrap();
                assert_eq!(open, 0, "a transaction left open");
            }
            Backend::Sqlite => {
                sqlx::query("INSERT INTO kept (n) VALUES (3)").execute(&other).await.unwrap();
                sqlx::query("DELETE FROM kept WHERE n = 3").execute(&other).await.unwrap();
            }
        }
        other.close().await;
        let kept: Vec<i64> = sqlx::query("SELECT n FROM kept ORDER BY n")
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get("n").unwrap())
            .collect();
        assert_eq!(kept, [1]);
    }

    async fn an_error_after_the_first_row_reaches_the_query_that_made_it(backend) {
        let db = TestDb::new(&backend).await;
        let pool = one_connection(&db).await;
        // The first row comes back, then the second fails (division by zero on PostgreSQL,
        // integer overflow on SQLite).
        let failing = match backend {
            Backend::Postgres(_) => "SELECT x, 1 / (x - 2) AS q FROM generate_series(1, 3) AS x",
            Backend::Sqlite => {
                "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < 3) \
                 SELECT x, CASE WHEN x = 2 THEN abs(-9223372036854775807 - 1) ELSE 0 END AS q FROM s"
            }
        };
        let first = sqlx::query(failing).fetch_optional(&pool).await;
        assert!(first.is_err(), "the error after the first row is the query's own");
        // The next query on the same connection gets its own answer.
        assert_eq!(settled_idle(&pool).await, 1);
        let n: i32 = sqlx::query("SELECT 7 AS n").fetch_one(&pool).await.unwrap().try_get("n").unwrap();
        assert_eq!(n, 7);
    }
}
