//! One-time links that create the first admin.

use super::Store;
use super::users::{CreateUserError, NewUser, create_user_on};
use crate::domain::secret::{self, Secret, TokenKind};
use crate::domain::user::User;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The link is unknown, used, expired, or an admin already exists.
    #[error("this setup link is no longer valid")]
    InvalidToken,
    #[error(transparent)]
    CreateUser(#[from] CreateUserError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl Store {
    pub async fn create_setup_token(&self, now: i64, ttl_secs: i64) -> Result<Secret, sqlx::Error> {
        let token = secret::generate(TokenKind::Setup);
        sqlx::query(
            "INSERT INTO setup_tokens (token_hash, created_at, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(token.hash())
        .bind(now)
        .bind(now + ttl_secs)
        .execute(self.writer())
        .await?;
        Ok(token)
    }

    /// Whether a setup link can still be used (for showing the form).
    pub async fn setup_token_usable(&self, token: &Secret, now: i64) -> Result<bool, sqlx::Error> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM setup_tokens WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(token.hash())
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(n == 1 && !self.admin_exists().await?)
    }

    /// Use the link once. In one transaction: retire every outstanding link, provided the one
    /// presented is among them (one conditional statement, so of two racing uses only the first
    /// finds rows to update), check that no admin exists yet, and create the admin. If creating
    /// the account fails, the transaction rolls back and the link stays usable.
    pub async fn complete_setup(
        &self,
        token: &Secret,
        new: NewUser,
        now: i64,
    ) -> Result<User, SetupError> {
        let mut tx = self.begin().await?;
        let used = sqlx::query(
            "UPDATE setup_tokens SET used_at = $1 WHERE used_at IS NULL AND EXISTS \
             (SELECT 1 FROM setup_tokens t WHERE t.token_hash = $2 AND t.used_at IS NULL AND t.expires_at > $1)",
        )
        .bind(now)
        .bind(token.hash())
        .execute(&mut *tx)
        .await?;
        if used.rows_affected() == 0 {
            return Err(SetupError::InvalidToken);
        }
        let admins: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE admin = 1")
            .fetch_one(&mut *tx)
            .await?;
        if admins > 0 {
            return Err(SetupError::InvalidToken);
        }
        let user = create_user_on(&mut tx, NewUser { admin: true, ..new }, now).await?;
        tx.commit().await?;
        Ok(user)
    }
}
