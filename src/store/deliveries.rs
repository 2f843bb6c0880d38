//! The outbox: what latchkey must POST to apps (back-channel logout tokens), each retried with
//! backoff until delivered or given up, and kept as the app's delivery log.

use sqlx::Row;

use super::{Store, new_id};

/// One delivery to an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub app_id: String,
    /// `backchannel_logout`.
    pub kind: String,
    pub url: String,
    /// What to send, turned into the request body at each attempt (JSON).
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: String,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// How one attempt went.
#[derive(Debug, Clone)]
pub enum Attempt {
    Delivered {
        status: i64,
    },
    /// Not delivered; try again at `retry_at`, or give up when `None`.
    Failed {
        status: Option<i64>,
        error: String,
        retry_at: Option<i64>,
    },
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Delivery, sqlx::Error> {
    Ok(Delivery {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        kind: row.try_get("kind")?,
        url: row.try_get("url")?,
        payload: row.try_get("payload")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        delivered_at: row.try_get("delivered_at")?,
    })
}

impl Store {
    /// Queue a delivery, due at once.
    pub async fn enqueue_delivery(
        &self,
        app_id: &str,
        kind: &str,
        url: &str,
        payload: &str,
        now: i64,
    ) -> Result<String, sqlx::Error> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO deliveries (id, app_id, kind, url, payload, status, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6)",
        )
        .bind(&id)
        .bind(app_id)
        .bind(kind)
        .bind(url)
        .bind(payload)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(id)
    }

    /// Take up to `limit` due deliveries, each leased until `lease_until` so that no other
    /// node sends it meanwhile.
    pub async fn claim_due_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT * FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.writer())
        .await?;
        let mut claimed = Vec::new();
        for row in &rows {
            let delivery = from_row(row)?;
            let done = sqlx::query(
                "UPDATE deliveries SET next_attempt_at = $1 \
                 WHERE id = $2 AND status = 'pending' AND next_attempt_at = $3",
            )
            .bind(lease_until)
            .bind(&delivery.id)
            .bind(delivery.next_attempt_at)
            .execute(self.writer())
            .await?;
            if done.rows_affected() == 1 {
                claimed.push(delivery);
            }
        }
        Ok(claimed)
    }

    /// Record an attempt.
    pub async fn record_attempt(
        &self,
        id: &str,
        attempt: &Attempt,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let query = match attempt {
            Attempt::Delivered { status } => sqlx::query(
                "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, last_status = $1, \
                 last_error = '', delivered_at = $2 WHERE id = $3",
            )
            .bind(*status)
            .bind(now)
            .bind(id),
            Attempt::Failed {
                status,
                error,
                retry_at,
            } => sqlx::query(
                "UPDATE deliveries SET status = $1, attempts = attempts + 1, last_status = $2, \
                 last_error = $3, next_attempt_at = $4 WHERE id = $5",
            )
            .bind(if retry_at.is_some() { "pending" } else { "failed" })
            .bind(*status)
            .bind(error.as_str())
            .bind(retry_at.unwrap_or(now))
            .bind(id),
        };
        query.execute(self.writer()).await?;
        Ok(())
    }

    /// An app's most recent deliveries, newest first.
    pub async fn deliveries_of_app(
        &self,
        app_id: &str,
        limit: i64,
    ) -> Result<Vec<Delivery>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT * FROM deliveries WHERE app_id = $1 ORDER BY created_at DESC, id LIMIT $2",
        )
        .bind(app_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }
}
