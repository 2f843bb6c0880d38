//! Pushed authorization requests (RFC 9126): stored parameters, looked up by the hash of their
//! request_uri, spent once.

use sqlx::Row;

use super::Store;

/// A pushed request that is still live.
#[derive(Debug, Clone)]
pub struct PushedRequest {
    pub app_id: String,
    /// The authorization request's parameters, as the app pushed them.
    pub params: Vec<(String, String)>,
    pub created_at: i64,
}

impl Store {
    /// Store a pushed request under `hash` (the SHA-256 of its request_uri's random part).
    pub async fn push_request(
        &self,
        hash: &str,
        app_id: &str,
        params: &[(String, String)],
        now: i64,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM pushed_requests WHERE expires_at < $1")
            .bind(now - 3600)
            .execute(self.writer())
            .await?;
        let params = serde_json::to_string(params).unwrap_or_default();
        sqlx::query(
            "INSERT INTO pushed_requests (request_hash, app_id, params, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash)
        .bind(app_id)
        .bind(params)
        .bind(now)
        .bind(expires_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// The unexpired, unused request stored under `hash`.
    pub async fn pushed_request(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<PushedRequest>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT app_id, params, created_at FROM pushed_requests \
             WHERE request_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let params: String = r.try_get("params")?;
            Ok(PushedRequest {
                app_id: r.try_get("app_id")?,
                params: serde_json::from_str(&params).unwrap_or_default(),
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
    }

    /// Spend the request under `hash`: `true` for the one caller that finds it live and unused.
    pub async fn spend_pushed_request(&self, hash: &str, now: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE pushed_requests SET used_at = $1 \
             WHERE request_hash = $2 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(hash)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
