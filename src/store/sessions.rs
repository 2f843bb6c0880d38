//! Browser sessions. The cookie carries a random value; only its SHA-256 is stored, so a copy of
//! the database does not let anyone sign in.

use super::Store;
use super::exec::Param;
use super::users::user_from_row;
use crate::domain::secret::{self, Secret};
use crate::domain::user::User;

/// A live session and its user.
#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: String,
    pub user: User,
    pub auth_time: i64,
    pub expires_at: i64,
}

impl Store {
    /// Start a session for `user_id`; returns the cookie value.
    pub async fn create_session(
        &self,
        user_id: &str,
        now: i64,
        ttl_secs: i64,
        ip: &str,
        user_agent: &str,
    ) -> Result<Secret, sqlx::Error> {
        let raw = secret::random_opaque();
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, auth_time, created_at, expires_at, last_seen_at, ip, user_agent) \
             VALUES ($1, $2, $3, $3, $4, $3, $5, $6)",
        )
        .bind(raw.hash())
        .bind(user_id)
        .bind(now)
        .bind(now + ttl_secs)
        .bind(ip)
        .bind(truncate(user_agent, 512))
        .execute(self.writer())
        .await?;
        Ok(raw)
    }

    /// The session behind a cookie value, if it is live and its user is not disabled (one
    /// read: the session with its user).
    pub async fn session(&self, raw: &str, now: i64) -> Result<Option<Session>, sqlx::Error> {
        let id_hash = secret::sha256_hex(raw.as_bytes());
        let found = self
            .lookup(
                "SELECT s.auth_time AS session_auth_time, s.expires_at AS session_expires_at, u.* \
                 FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.id_hash = $1 AND s.expires_at > $2",
                &[Param::Text(&id_hash), Param::Int(now)],
                |r| {
                    let user = user_from_row(r)?;
                    Ok((
                        user,
                        r.int("session_auth_time")?,
                        r.int("session_expires_at")?,
                    ))
                },
            )
            .await?;
        let Some((user, auth_time, expires_at)) = found.filter(|(user, ..)| !user.disabled) else {
            return Ok(None);
        };
        Ok(Some(Session {
            id_hash,
            user,
            auth_time,
            expires_at,
        }))
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// End every session of a user except `keep` (after a password change).
    pub async fn delete_other_sessions(
        &self,
        user_id: &str,
        keep: &str,
    ) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2")
            .bind(user_id)
            .bind(keep)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }

    /// Remove expired sessions; run now and then.
    pub async fn purge_expired_sessions(&self, now: i64) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }
}

/// At most `max` bytes of `s`, cut on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
