//! Authorization codes, access tokens and refresh tokens.
//!
//! Every redemption is one conditional `UPDATE … WHERE used_at IS NULL` (or `rotated_at IS
//! NULL`), so of many concurrent requests for the same code or refresh token exactly one finds
//! the row, on SQLite and on PostgreSQL alike.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::reader::Columns;
use super::{Key, Store, flag, new_id};
use crate::domain::scope::Scopes;
use crate::domain::seal;
use crate::domain::secret::{self, Secret, TokenKind};
use crate::domain::user::User;

/// What an authorization code was bound to when it was issued.
#[derive(Debug, Clone)]
pub struct CodeGrant {
    pub app_id: String,
    pub user_id: String,
    pub grant_id: String,
    pub redirect_uri: String,
    pub redirect_uri_given: bool,
    pub scopes: Scopes,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub auth_time: i64,
}

/// What to issue.
#[derive(Debug, Clone)]
pub struct Issue<'a> {
    pub app_id: &'a str,
    pub user_id: Option<&'a str>,
    pub grant_id: Option<&'a str>,
    pub scopes: &'a Scopes,
    pub access_ttl: i64,
    /// `Some(lifetime)` to issue a refresh token too.
    pub refresh_ttl: Option<i64>,
}

/// What to issue for a redeemed code (the code itself says for whom).
#[derive(Debug, Clone)]
pub struct IssueSpec {
    pub scopes: Scopes,
    pub access_ttl: i64,
    pub refresh_ttl: Option<i64>,
}

/// An access token (and maybe a refresh token) just issued.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access: Secret,
    pub access_expires_at: i64,
    pub refresh: Option<Secret>,
    pub scopes: Scopes,
    pub created_at: i64,
}

/// The outcome of presenting an authorization code.
#[derive(Debug)]
pub enum CodeOutcome<E> {
    Issued(Box<(CodeGrant, Issued)>),
    /// The code's bindings did not match the request (the code is spent all the same).
    Refused(E),
    /// A second use: every token issued from the code was revoked.
    Replayed {
        revoked: u64,
    },
    /// Unknown or expired.
    Invalid,
}

/// The outcome of presenting a refresh token.
#[derive(Debug)]
pub enum RefreshOutcome {
    Rotated(Issued),
    /// A retry inside the grace window: the same successor pair as the first answer.
    Retried(Issued),
    /// A retired token presented after the grace window: the whole chain was revoked.
    Reused {
        family_id: String,
        user_id: Option<String>,
    },
    /// Asked for scopes the grant never had.
    ScopeTooWide,
    Invalid,
}

/// A live token as seen by the resource side (userinfo, introspection, the APIs).
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub kind: String,
    pub app_id: String,
    pub client_id: String,
    pub user_id: Option<String>,
    pub grant_id: Option<String>,
    pub family_id: String,
    pub scopes: Scopes,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub active: bool,
}

/// How long a retried refresh gets the same successor instead of tripping reuse detection.
pub const REFRESH_GRACE_SECS: i64 = 10;

#[derive(Serialize, Deserialize)]
struct SealedPair {
    access: String,
    refresh: Option<String>,
    access_expires_at: i64,
    scopes: String,
    created_at: i64,
}

/// The key that seals a refresh token's successor: derived from the token itself (domain
/// separated from the stored SHA-256), so only someone who holds the old token can read it.
fn successor_key(refresh: &Secret) -> [u8; 32] {
    seal::derive_key("latchkey refresh successor v1", refresh.expose())
}

fn seal_pair(refresh: &Secret, pair: &Issued) -> Option<Vec<u8>> {
    let plain = serde_json::to_vec(&SealedPair {
        access: pair.access.expose().to_owned(),
        refresh: pair.refresh.as_ref().map(|r| r.expose().to_owned()),
        access_expires_at: pair.access_expires_at,
        scopes: pair.scopes.to_string(),
        created_at: pair.created_at,
    })
    .ok()?;
    seal::seal(&successor_key(refresh), &plain)
}

fn unseal_pair(refresh: &Secret, sealed: &[u8]) -> Option<Issued> {
    let plain = seal::open(&successor_key(refresh), sealed)?;
    let pair: SealedPair = serde_json::from_slice(&plain).ok()?;
    Some(Issued {
        access: secret::parse(TokenKind::AccessToken, &pair.access)?,
        refresh: pair
            .refresh
            .and_then(|r| secret::parse(TokenKind::RefreshToken, &r)),
        access_expires_at: pair.access_expires_at,
        scopes: Scopes::from_stored(&pair.scopes),
        created_at: pair.created_at,
    })
}

/// Insert an access token (and a refresh token) in `family`.
pub(super) async fn insert_tokens(
    conn: &mut sqlx::AnyConnection,
    issue: &Issue<'_>,
    family_id: &str,
    code_hash: Option<&str>,
    now: i64,
) -> Result<Issued, sqlx::Error> {
    let access = secret::generate(TokenKind::AccessToken);
    let access_expires_at = now.saturating_add(issue.access_ttl);
    let insert = "INSERT INTO tokens (token_hash, kind, app_id, user_id, grant_id, family_id, code_hash, scopes, \
                  created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    sqlx::query(insert)
        .bind(access.hash())
        .bind("access")
        .bind(issue.app_id)
        .bind(issue.user_id)
        .bind(issue.grant_id)
        .bind(family_id)
        .bind(code_hash)
        .bind(issue.scopes.to_string())
        .bind(now)
        .bind(access_expires_at)
        .execute(&mut *conn)
        .await?;
    let refresh = match issue.refresh_ttl {
        Some(ttl) => {
            let refresh = secret::generate(TokenKind::RefreshToken);
            sqlx::query(insert)
                .bind(refresh.hash())
                .bind("refresh")
                .bind(issue.app_id)
                .bind(issue.user_id)
                .bind(issue.grant_id)
                .bind(family_id)
                .bind(code_hash)
                .bind(issue.scopes.to_string())
                .bind(now)
                .bind(now.saturating_add(ttl))
                .execute(&mut *conn)
                .await?;
            Some(refresh)
        }
        None => None,
    };
    Ok(Issued {
        access,
        access_expires_at,
        refresh,
        scopes: issue.scopes.clone(),
        created_at: now,
    })
}

/// The token columns [`token_info_from_row`] reads (with `disabled`, the user's flag).
macro_rules! token_columns {
    () => {
        "SELECT t.kind, t.app_id, a.client_id, t.user_id, t.grant_id, t.family_id, t.scopes, \
         t.created_at AS token_created_at, t.expires_at, t.revoked_at, t.rotated_at"
    };
}

fn token_info_from_row(row: &(impl Columns + ?Sized), now: i64) -> Result<TokenInfo, sqlx::Error> {
    let expires_at = row.opt_int("expires_at")?;
    Ok(TokenInfo {
        kind: row.text("kind")?,
        app_id: row.text("app_id")?,
        client_id: row.text("client_id")?,
        user_id: row.opt_text("user_id")?,
        grant_id: row.opt_text("grant_id")?,
        family_id: row.text("family_id")?,
        scopes: Scopes::from_stored(&row.text("scopes")?),
        created_at: row.int("token_created_at")?,
        expires_at,
        active: row.opt_int("revoked_at")?.is_none()
            && row.opt_int("rotated_at")?.is_none()
            && expires_at.is_none_or(|e| e > now)
            && row.int("disabled")? == 0,
    })
}

impl Store {
    /// Issue a single-use authorization code.
    pub async fn create_code(
        &self,
        grant: &CodeGrant,
        now: i64,
        ttl: i64,
    ) -> Result<Secret, sqlx::Error> {
        let code = secret::generate(TokenKind::AuthorizationCode);
        sqlx::query(
            "INSERT INTO auth_codes (code_hash, app_id, user_id, grant_id, redirect_uri, redirect_uri_given, scopes, \
             code_challenge, nonce, auth_time, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(code.hash())
        .bind(&grant.app_id)
        .bind(&grant.user_id)
        .bind(&grant.grant_id)
        .bind(&grant.redirect_uri)
        .bind(flag(grant.redirect_uri_given))
        .bind(grant.scopes.to_string())
        .bind(grant.code_challenge.as_deref())
        .bind(grant.nonce.as_deref())
        .bind(grant.auth_time)
        .bind(now)
        .bind(now + ttl)
        .execute(self.writer())
        .await?;
        Ok(code)
    }

    /// Spend a code and, if `check` accepts its bindings, issue tokens, all in one transaction.
    /// A second use revokes everything the first one issued.
    pub async fn exchange_code<E>(
        &self,
        code: &Secret,
        now: i64,
        check: impl FnOnce(&CodeGrant) -> Result<IssueSpec, E>,
    ) -> Result<CodeOutcome<E>, sqlx::Error> {
        let hash = code.hash();
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE auth_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL AND expires_at > $1 \
             AND NOT EXISTS (SELECT 1 FROM users WHERE users.id = auth_codes.user_id AND users.disabled = 1) \
             RETURNING app_id, user_id, grant_id, redirect_uri, redirect_uri_given, scopes, code_challenge, nonce, auth_time",
        )
        .bind(now)
        .bind(&hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            let used: Option<Option<i64>> =
                sqlx::query_scalar("SELECT used_at FROM auth_codes WHERE code_hash = $1")
                    .bind(&hash)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(Some(_)) = used {
                let revoked = sqlx::query(
                    "UPDATE tokens SET revoked_at = $1 WHERE code_hash = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(&hash)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                return Ok(CodeOutcome::Replayed { revoked });
            }
            return Ok(CodeOutcome::Invalid);
        };
        let scopes: String = row.try_get("scopes")?;
        let grant = CodeGrant {
            app_id: row.try_get("app_id")?,
            user_id: row.try_get("user_id")?,
            grant_id: row.try_get("grant_id")?,
            redirect_uri: row.try_get("redirect_uri")?,
            redirect_uri_given: row.try_get::<i64, _>("redirect_uri_given")? != 0,
            scopes: Scopes::from_stored(&scopes),
            code_challenge: row.try_get("code_challenge")?,
            nonce: row.try_get("nonce")?,
            auth_time: row.try_get("auth_time")?,
        };
        let spec = match check(&grant) {
            Ok(spec) => spec,
            Err(e) => {
                tx.commit().await?;
                return Ok(CodeOutcome::Refused(e));
            }
        };
        let issue = Issue {
            app_id: &grant.app_id,
            user_id: Some(&grant.user_id),
            grant_id: Some(&grant.grant_id),
            scopes: &spec.scopes,
            access_ttl: spec.access_ttl,
            refresh_ttl: spec.refresh_ttl,
        };
        let issued = insert_tokens(&mut tx, &issue, &new_id(), Some(&hash), now).await?;
        tx.commit().await?;
        Ok(CodeOutcome::Issued(Box::new((grant, issued))))
    }

    /// Issue tokens outside the code flow (client credentials).
    pub async fn issue_tokens(&self, issue: &Issue<'_>, now: i64) -> Result<Issued, sqlx::Error> {
        let mut conn = self.writer().acquire().await?;
        insert_tokens(&mut conn, issue, &new_id(), None, now).await
    }

    /// Rotate a refresh token of `app_id`. `narrower` optionally asks for fewer scopes.
    pub async fn refresh(
        &self,
        refresh: &Secret,
        app_id: &str,
        narrower: Option<&Scopes>,
        access_ttl: i64,
        refresh_ttl: i64,
        now: i64,
    ) -> Result<RefreshOutcome, sqlx::Error> {
        let hash = refresh.hash();
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE tokens SET rotated_at = $1 WHERE token_hash = $2 AND kind = 'refresh' AND app_id = $3 \
             AND rotated_at IS NULL AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1) \
             AND NOT EXISTS (SELECT 1 FROM users WHERE users.id = tokens.user_id AND users.disabled = 1) \
             RETURNING user_id, grant_id, family_id, scopes",
        )
        .bind(now)
        .bind(&hash)
        .bind(app_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = row {
            let granted = Scopes::from_stored(&row.try_get::<String, _>("scopes")?);
            let scopes = match narrower {
                Some(n) if !n.is_subset_of(&granted) => return Ok(RefreshOutcome::ScopeTooWide),
                Some(n) if !n.is_empty() => n.clone(),
                _ => granted,
            };
            let user_id: Option<String> = row.try_get("user_id")?;
            let grant_id: Option<String> = row.try_get("grant_id")?;
            let family: String = row.try_get("family_id")?;
            let issue = Issue {
                app_id,
                user_id: user_id.as_deref(),
                grant_id: grant_id.as_deref(),
                scopes: &scopes,
                access_ttl,
                refresh_ttl: Some(refresh_ttl),
            };
            let issued = insert_tokens(&mut tx, &issue, &family, None, now).await?;
            sqlx::query("UPDATE tokens SET successor = $1 WHERE token_hash = $2")
                .bind(seal_pair(refresh, &issued))
                .bind(&hash)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(RefreshOutcome::Rotated(issued));
        }

        // Not rotatable: unknown, another app's, expired, revoked, or already rotated.
        let row = sqlx::query(
            "SELECT rotated_at, revoked_at, successor, family_id, user_id FROM tokens \
             WHERE token_hash = $1 AND kind = 'refresh' AND app_id = $2",
        )
        .bind(&hash)
        .bind(app_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(RefreshOutcome::Invalid);
        };
        let rotated_at: Option<i64> = row.try_get("rotated_at")?;
        let revoked_at: Option<i64> = row.try_get("revoked_at")?;
        let family_id: String = row.try_get("family_id")?;
        let Some(rotated_at) = rotated_at else {
            return Ok(RefreshOutcome::Invalid);
        };
        if now - rotated_at <= REFRESH_GRACE_SECS {
            if revoked_at.is_some() {
                return Ok(RefreshOutcome::Invalid);
            }
            let sealed: Option<Vec<u8>> = row.try_get("successor")?;
            let successor = sealed.as_deref().and_then(|s| unseal_pair(refresh, s));
            if let Some(pair) = successor {
                // Only if the successor itself is still good (not revoked meanwhile).
                let live: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM tokens WHERE token_hash = $1 AND revoked_at IS NULL",
                )
                .bind(pair.access.hash())
                .fetch_one(&mut *tx)
                .await?;
                if live == 1 {
                    return Ok(RefreshOutcome::Retried(pair));
                }
            }
            return Ok(RefreshOutcome::Invalid);
        }
        // Reuse of a retired token: someone else holds a copy. Revoke the whole chain.
        sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(&family_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(RefreshOutcome::Reused {
            family_id,
            user_id: row.try_get("user_id")?,
        })
    }

    /// Any token (access or refresh) by its value, whatever its state.
    pub async fn token_info(
        &self,
        token: &Secret,
        now: i64,
    ) -> Result<Option<TokenInfo>, sqlx::Error> {
        self.lookup(
            concat!(
                token_columns!(),
                ", COALESCE(u.disabled, 0) AS disabled \
                 FROM tokens t JOIN apps a ON a.id = t.app_id LEFT JOIN users u ON u.id = t.user_id \
                 WHERE t.token_hash = $1"
            ),
            &[Key::Text(&token.hash())],
            |r| token_info_from_row(r, now),
        )
        .await
    }

    /// A token and its user in one lookup (the resource API's every request); `None` for an
    /// unknown token or one without a user.
    pub async fn token_with_user(
        &self,
        token: &Secret,
        now: i64,
    ) -> Result<Option<(TokenInfo, User)>, sqlx::Error> {
        self.lookup(
            concat!(
                token_columns!(),
                ", u.* FROM tokens t JOIN apps a ON a.id = t.app_id JOIN users u ON u.id = t.user_id \
                 WHERE t.token_hash = $1"
            ),
            &[Key::Text(&token.hash())],
            |r| Ok((token_info_from_row(r, now)?, super::users::user_from_row(r)?)),
        )
        .await
    }

    /// Revoke one token; a refresh token takes its whole chain (and so its access tokens).
    pub async fn revoke_token(
        &self,
        info: &TokenInfo,
        token: &Secret,
        now: i64,
    ) -> Result<u64, sqlx::Error> {
        let done = if info.kind == "refresh" {
            sqlx::query(
                "UPDATE tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(&info.family_id)
            .execute(self.writer())
            .await?
        } else {
            sqlx::query(
                "UPDATE tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(token.hash())
            .execute(self.writer())
            .await?
        };
        Ok(done.rows_affected())
    }

    /// Revoke every token of a chain (reuse detection, admin action).
    pub async fn revoke_family(&self, family_id: &str, now: i64) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(family_id)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }
}
