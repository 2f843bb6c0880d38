//! Personal access tokens: a user's own bearer tokens for the client API and resource API.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, new_id};
use crate::domain::scope::Scopes;
use crate::domain::secret::{self, Secret, TokenKind};
use crate::domain::user::User;

#[derive(Debug, Clone)]
pub struct Pat {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub scopes: Scopes,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl Pat {
    pub fn live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

const PAT_COLUMNS: &str =
    "id, user_id, name, scopes, created_at, expires_at, last_used_at, revoked_at";

fn pat_from_row(row: &AnyRow) -> Result<Pat, sqlx::Error> {
    let scopes: String = row.try_get("scopes")?;
    Ok(Pat {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        scopes: Scopes::from_stored(&scopes),
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// `last_used_at` is written at most this often per token, not on every request.
const TOUCH_EVERY_SECS: i64 = 60;

impl Store {
    pub async fn create_pat(
        &self,
        user_id: &str,
        name: &str,
        scopes: &Scopes,
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<(Pat, Secret), sqlx::Error> {
        let id = new_id();
        let token = secret::generate(TokenKind::PersonalAccessToken);
        sqlx::query(
            "INSERT INTO personal_access_tokens (id, user_id, name, token_hash, scopes, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(user_id)
        .bind(name)
        .bind(token.hash())
        .bind(scopes.to_string())
        .bind(now)
        .bind(expires_at)
        .execute(self.writer())
        .await?;
        let pat = Pat {
            id,
            user_id: user_id.to_owned(),
            name: name.to_owned(),
            scopes: scopes.clone(),
            created_at: now,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        Ok((pat, token))
    }

    /// A user's tokens, newest first (revoked ones included, marked).
    pub async fn pats_of_user(&self, user_id: &str) -> Result<Vec<Pat>, sqlx::Error> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PAT_COLUMNS} FROM personal_access_tokens WHERE user_id = $1 ORDER BY created_at DESC, id"
        )))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(pat_from_row).collect()
    }

    pub async fn revoke_pat(
        &self,
        user_id: &str,
        pat_id: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE personal_access_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(pat_id)
        .bind(user_id)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The live token and its (enabled) user behind a presented PAT.
    pub async fn authenticate_pat(
        &self,
        token: &Secret,
        now: i64,
    ) -> Result<Option<(Pat, User)>, sqlx::Error> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PAT_COLUMNS} FROM personal_access_tokens WHERE token_hash = $1"
        )))
        .bind(token.hash())
        .fetch_optional(&self.pool)
        .await?;
        let Some(pat) = row.as_ref().map(pat_from_row).transpose()? else {
            return Ok(None);
        };
        if !pat.live(now) {
            return Ok(None);
        }
        let Some(user) = self.user_by_id(&pat.user_id).await? else {
            return Ok(None);
        };
        if user.disabled {
            return Ok(None);
        }
        if pat.last_used_at.is_none_or(|t| now - t >= TOUCH_EVERY_SECS) {
            sqlx::query("UPDATE personal_access_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&pat.id)
                .execute(self.writer())
                .await?;
        }
        Ok(Some((pat, user)))
    }
}
