//! Revoking secrets reported as found in public (`POST /oauth/leaked`).

use sqlx::Row;

use super::Store;
use crate::domain::secret::{Secret, TokenKind};

/// What a leaked secret turned out to be, for the audit log. Never holds the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakHit {
    pub kind: &'static str,
    /// The app's client id, or the owning user's id for a personal access token.
    pub subject: String,
}

impl Store {
    /// Revoke `secret` if it is live. Client secrets are removed (the app must reset its
    /// secret); tokens are revoked; a refresh token takes its whole chain with it.
    pub async fn revoke_leaked(
        &self,
        kind: TokenKind,
        secret: &Secret,
        now: i64,
    ) -> Result<Option<LeakHit>, sqlx::Error> {
        let hash = secret.hash();
        let hit = match kind {
            TokenKind::ClientSecret => sqlx::query(
                "UPDATE apps SET secret_hash = NULL, updated_at = $1 WHERE secret_hash = $2 RETURNING client_id",
            )
            .bind(now)
            .bind(&hash)
            .fetch_optional(self.writer())
            .await?
            .map(|r| r.try_get::<String, _>("client_id"))
            .transpose()?
            .map(|subject| LeakHit {
                kind: "client_secret",
                subject,
            }),
            TokenKind::PersonalAccessToken => sqlx::query(
                "UPDATE personal_access_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL \
                 RETURNING user_id",
            )
            .bind(now)
            .bind(&hash)
            .fetch_optional(self.writer())
            .await?
            .map(|r| r.try_get::<String, _>("user_id"))
            .transpose()?
            .map(|subject| LeakHit {
                kind: "personal_access_token",
                subject,
            }),
            TokenKind::AccessToken | TokenKind::RefreshToken => {
                let row = sqlx::query(
                    "UPDATE tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL \
                     RETURNING family_id, kind, COALESCE(app_id, '') AS app_id",
                )
                .bind(now)
                .bind(&hash)
                .fetch_optional(self.writer())
                .await?;
                match row {
                    Some(row) => {
                        let family: String = row.try_get("family_id")?;
                        let token_kind: String = row.try_get("kind")?;
                        if token_kind == "refresh" {
                            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
                                .bind(now)
                                .bind(&family)
                                .execute(self.writer())
                                .await?;
                        }
                        let app_id: String = row.try_get("app_id")?;
                        let client_id: Option<String> = sqlx::query_scalar("SELECT client_id FROM apps WHERE id = $1")
                            .bind(&app_id)
                            .fetch_optional(&self.pool)
                            .await?;
                        Some(LeakHit {
                            kind: if token_kind == "refresh" { "refresh_token" } else { "access_token" },
                            subject: client_id.unwrap_or_default(),
                        })
                    }
                    None => None,
                }
            }
            _ => None,
        };
        Ok(hit)
    }
}
