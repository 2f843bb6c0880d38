//! Rate-limit counters in the database, so every node on one PostgreSQL database counts together.

use sqlx::Row;

use super::Store;

impl Store {
    /// Count `hits` hits on `key` in the window starting at `window_start`; the hits so far in
    /// it. A row left from an older window starts over.
    pub async fn hit_rate_counter(
        &self,
        key: &str,
        window_start: i64,
        hits: i64,
    ) -> Result<i64, sqlx::Error> {
        sqlx::query(
            "INSERT INTO rate_counters (key, window_start, hits) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET \
             hits = CASE WHEN rate_counters.window_start = excluded.window_start \
                    THEN rate_counters.hits + excluded.hits ELSE excluded.hits END, \
             window_start = excluded.window_start \
             RETURNING hits",
        )
        .bind(key)
        .bind(window_start)
        .bind(hits)
        .fetch_one(self.writer())
        .await?
        .try_get("hits")
    }

    /// Forget counters of windows that ended before `before`.
    pub async fn purge_rate_counters(&self, before: i64) -> Result<u64, sqlx::Error> {
        Ok(
            sqlx::query("DELETE FROM rate_counters WHERE window_start < $1")
                .bind(before)
                .execute(self.writer())
                .await?
                .rows_affected(),
        )
    }
}
