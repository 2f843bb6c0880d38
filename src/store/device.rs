//! Device authorization grant (RFC 8628): device codes, their approval, and polling.

use sqlx::Row;

use super::tokens::{Binding, Issue, Issued, insert_tokens};
use super::{Store, new_id};
use crate::domain::scope::Scopes;
use crate::domain::secret::{Secret, sha256_hex};

/// A pending request, as the person approving it sees it.
#[derive(Debug, Clone)]
pub struct PendingDevice {
    pub app_id: String,
    pub scopes: Scopes,
}

/// What a poll of the token endpoint finds.
#[derive(Debug)]
pub enum PollOutcome {
    /// Approved just now: the tokens, for the app to receive once.
    Issued(Box<(Issued, ApprovedDevice)>),
    Pending,
    /// Polled faster than the interval; the interval is now `interval` seconds.
    SlowDown {
        interval: i64,
    },
    Denied,
    Expired,
    /// Unknown, another app's, or already used.
    Invalid,
}

#[derive(Debug, Clone)]
pub struct ApprovedDevice {
    pub user_id: String,
    pub auth_time: i64,
}

/// The stored form of a user code: its SHA-256, never the code.
fn user_code_hash(normalized: &str) -> String {
    sha256_hex(normalized.as_bytes())
}

impl Store {
    /// Store a new device request. `false` when the user code is already taken (draw another).
    #[allow(clippy::too_many_arguments)]
    pub async fn create_device_code(
        &self,
        device_code: &Secret,
        user_code: &str,
        app_id: &str,
        scopes: &Scopes,
        interval: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, sqlx::Error> {
        // Expired requests give their user codes back.
        sqlx::query("DELETE FROM device_codes WHERE expires_at < $1")
            .bind(now - 3600)
            .execute(self.writer())
            .await?;
        let done = sqlx::query(
            "INSERT INTO device_codes (device_code_hash, user_code, app_id, scopes, interval_secs, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(device_code.hash())
        .bind(user_code_hash(user_code))
        .bind(app_id)
        .bind(scopes.to_string())
        .bind(interval)
        .bind(now)
        .bind(expires_at)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The pending, unexpired request behind a (normalised) user code.
    pub async fn pending_device(
        &self,
        user_code: &str,
        now: i64,
    ) -> Result<Option<PendingDevice>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT app_id, scopes FROM device_codes WHERE user_code = $1 AND status = 'pending' AND expires_at > $2",
        )
        .bind(user_code_hash(user_code))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(PendingDevice {
                app_id: r.try_get("app_id")?,
                scopes: Scopes::from_stored(&r.try_get::<String, _>("scopes")?),
            })
        })
        .transpose()
    }

    /// Approve (with the user's grant) or deny a pending request; `false` when it is no longer
    /// pending or has expired.
    pub async fn decide_device(
        &self,
        user_code: &str,
        approval: Option<(&str, &str, i64)>,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let (status, user_id, grant_id, auth_time) = match approval {
            Some((user_id, grant_id, auth_time)) => {
                ("approved", Some(user_id), Some(grant_id), Some(auth_time))
            }
            None => ("denied", None, None, None),
        };
        let done = sqlx::query(
            "UPDATE device_codes SET status = $1, user_id = $2, grant_id = $3, auth_time = $4 \
             WHERE user_code = $5 AND status = 'pending' AND expires_at > $6",
        )
        .bind(status)
        .bind(user_id)
        .bind(grant_id)
        .bind(auth_time)
        .bind(user_code_hash(user_code))
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// One poll by `app_id` with `device_code`. An approved code is spent by the first poll
    /// that finds it, in the same transaction that issues the tokens.
    pub async fn poll_device(
        &self,
        device_code: &Secret,
        app_id: &str,
        access_ttl: i64,
        refresh_ttl: Option<i64>,
        binding: &Binding,
        now: i64,
    ) -> Result<PollOutcome, sqlx::Error> {
        let hash = device_code.hash();
        let mut tx = self.begin().await?;
        let approved = sqlx::query(
            "UPDATE device_codes SET status = 'used' WHERE device_code_hash = $1 AND app_id = $2 \
             AND status = 'approved' AND expires_at > $3 \
             AND NOT EXISTS (SELECT 1 FROM users WHERE users.id = device_codes.user_id AND users.disabled = 1) \
             RETURNING user_id, grant_id, scopes, auth_time",
        )
        .bind(&hash)
        .bind(app_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = approved {
            let user_id: String = row.try_get("user_id")?;
            let grant_id: Option<String> = row.try_get("grant_id")?;
            let scopes = Scopes::from_stored(&row.try_get::<String, _>("scopes")?);
            let auth_time: Option<i64> = row.try_get("auth_time")?;
            let issue = Issue {
                app_id,
                user_id: Some(&user_id),
                grant_id: grant_id.as_deref(),
                scopes: &scopes,
                access_ttl,
                refresh_ttl,
                binding,
            };
            let issued = insert_tokens(&mut *tx, &issue, &new_id(), None, now).await?;
            tx.commit().await?;
            let device = ApprovedDevice {
                auth_time: auth_time.unwrap_or(now),
                user_id,
            };
            return Ok(PollOutcome::Issued(Box::new((issued, device))));
        }
        let row = sqlx::query(
            "SELECT status, expires_at, interval_secs, last_polled_at FROM device_codes \
             WHERE device_code_hash = $1 AND app_id = $2",
        )
        .bind(&hash)
        .bind(app_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(PollOutcome::Invalid);
        };
        let status: String = row.try_get("status")?;
        let expires_at: i64 = row.try_get("expires_at")?;
        let interval: i64 = row.try_get("interval_secs")?;
        let last: Option<i64> = row.try_get("last_polled_at")?;
        let outcome = match status.as_str() {
            "used" => PollOutcome::Invalid,
            _ if expires_at <= now => PollOutcome::Expired,
            "denied" => PollOutcome::Denied,
            // Approved for a user who has since been disabled.
            "approved" => PollOutcome::Invalid,
            _ => {
                let too_soon = last.is_some_and(|l| now - l < interval);
                let interval = if too_soon { interval + 5 } else { interval };
                sqlx::query(
                    "UPDATE device_codes SET last_polled_at = $1, interval_secs = $2 WHERE device_code_hash = $3",
                )
                .bind(now)
                .bind(interval)
                .bind(&hash)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(if too_soon {
                    PollOutcome::SlowDown { interval }
                } else {
                    PollOutcome::Pending
                });
            }
        };
        Ok(outcome)
    }
}
