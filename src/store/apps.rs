//! OAuth apps (clients).

use super::reader::Columns;
use super::{Store, flag, new_id};
use crate::domain::app::{AppDraft, new_client_id};
use crate::domain::scope::Scopes;
use crate::domain::secret::{self, Secret, TokenKind};

#[derive(Debug, Clone)]
pub struct App {
    pub id: String,
    pub client_id: String,
    /// SHA-256 of the client secret; `None` for public apps (or after a leak report).
    pub secret_hash: Option<String>,
    pub name: String,
    pub homepage_url: String,
    pub redirect_uris: Vec<String>,
    pub scopes: Scopes,
    pub confidential: bool,
    pub verified: bool,
    pub owner_id: Option<String>,
    /// The owner's display name and email, for pages.
    pub owner_name: String,
    pub owner_email: String,
    pub access_token_ttl: i64,
    pub issue_refresh: bool,
    pub device_flow: bool,
    /// Authorization requests must be pushed (RFC 9126 §6).
    pub require_par: bool,
    /// Every token must be DPoP-bound (RFC 9449 §5.2 `dpop_bound_access_tokens`).
    pub dpop_bound: bool,
    /// Where the browser may go after a logout the app asked for.
    pub post_logout_redirect_uris: Vec<String>,
    /// Where logout tokens are POSTed; empty for none.
    pub backchannel_logout_uri: String,
    /// Where its events are POSTed; empty for none.
    pub webhook_url: String,
    /// An admin allowed it to exchange tokens (RFC 8693).
    pub token_exchange: bool,
    /// Registered through `/oauth/register` (RFC 7591); managed with its registration token.
    pub dynamic: bool,
    /// The registration metadata latchkey keeps as given (logo, terms, contacts, software…).
    pub client_metadata: serde_json::Map<String, serde_json::Value>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl App {
    /// Registered by software, with no person behind it (open dynamic registration).
    pub fn ownerless(&self) -> bool {
        self.owner_id.is_none()
    }
}

/// How a dynamically registered app came to be: its registration token and extra metadata.
#[derive(Debug, Clone)]
pub struct Registration<'a> {
    pub token_hash: &'a str,
    pub metadata: &'a serde_json::Map<String, serde_json::Value>,
}

macro_rules! select_app {
    ($where:literal) => {
        concat!(
            "SELECT a.id, a.client_id, a.secret_hash, a.name, a.homepage_url, a.redirect_uris, a.scopes, \
             a.confidential, a.verified, a.owner_id, a.access_token_ttl, a.issue_refresh, a.device_flow, a.require_par, a.dpop_bound, a.dynamic, a.client_metadata, a.post_logout_redirect_uris, a.backchannel_logout_uri, a.webhook_url, a.token_exchange, a.created_at, \
             a.updated_at, COALESCE(u.name, '') AS owner_name, COALESCE(u.email, '') AS owner_email \
             FROM apps a LEFT JOIN users u ON u.id = a.owner_id ",
            $where
        )
    };
}

/// The gathered form of [`Store::app_by_client_id`] (see [`super::gather`]).
pub(super) fn gather_by_client_id() -> super::gather::Gather {
    super::gather::Gather::new(select_app!(""), "a.client_id", "client_id")
}

fn app_from_row(row: &(impl Columns + ?Sized)) -> Result<App, sqlx::Error> {
    Ok(App {
        id: row.text("id")?,
        client_id: row.text("client_id")?,
        secret_hash: row.opt_text("secret_hash")?,
        name: row.text("name")?,
        homepage_url: row.text("homepage_url")?,
        redirect_uris: serde_json::from_str(&row.text("redirect_uris")?).unwrap_or_default(),
        scopes: Scopes::from_stored(&row.text("scopes")?),
        confidential: row.int("confidential")? != 0,
        verified: row.int("verified")? != 0,
        owner_id: row.opt_text("owner_id")?,
        owner_name: row.text("owner_name")?,
        owner_email: row.text("owner_email")?,
        access_token_ttl: row.int("access_token_ttl")?,
        issue_refresh: row.int("issue_refresh")? != 0,
        device_flow: row.int("device_flow")? != 0,
        require_par: row.int("require_par")? != 0,
        dpop_bound: row.int("dpop_bound")? != 0,
        post_logout_redirect_uris: serde_json::from_str(&row.text("post_logout_redirect_uris")?)
            .unwrap_or_default(),
        backchannel_logout_uri: row.text("backchannel_logout_uri")?,
        webhook_url: row.text("webhook_url")?,
        token_exchange: row.int("token_exchange")? != 0,
        dynamic: row.int("dynamic")? != 0,
        client_metadata: serde_json::from_str(&row.text("client_metadata")?).unwrap_or_default(),
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

/// What revoking every user token of an app removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoked {
    pub tokens: u64,
    pub grants: u64,
}

impl Store {
    /// Register an app; a confidential app gets a secret, returned here and never again.
    pub async fn create_app(
        &self,
        owner_id: &str,
        draft: &AppDraft,
        now: i64,
    ) -> Result<(App, Option<Secret>), sqlx::Error> {
        self.insert_app(Some(owner_id), draft, None, now).await
    }

    /// Register an app through dynamic client registration: maybe without an owner, with the
    /// hash of its registration access token.
    pub async fn register_app(
        &self,
        owner_id: Option<&str>,
        draft: &AppDraft,
        registration: &Registration<'_>,
        now: i64,
    ) -> Result<(App, Option<Secret>), sqlx::Error> {
        self.insert_app(owner_id, draft, Some(registration), now)
            .await
    }

    async fn insert_app(
        &self,
        owner_id: Option<&str>,
        draft: &AppDraft,
        registration: Option<&Registration<'_>>,
        now: i64,
    ) -> Result<(App, Option<Secret>), sqlx::Error> {
        let id = new_id();
        let secret = draft
            .confidential
            .then(|| secret::generate(TokenKind::ClientSecret));
        sqlx::query(
            "INSERT INTO apps (id, client_id, secret_hash, name, homepage_url, redirect_uris, scopes, confidential, \
             owner_id, access_token_ttl, issue_refresh, created_at, updated_at, device_flow, require_par, dpop_bound, \
             dynamic, registration_token_hash, client_metadata, post_logout_redirect_uris, backchannel_logout_uri, webhook_url) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
        )
        .bind(&id)
        .bind(new_client_id())
        .bind(secret.as_ref().map(Secret::hash))
        .bind(&draft.name)
        .bind(&draft.homepage_url)
        .bind(serde_json::to_string(&draft.redirect_uris).unwrap_or_else(|_| "[]".into()))
        .bind(draft.scopes.to_string())
        .bind(flag(draft.confidential))
        .bind(owner_id)
        .bind(draft.access_token_ttl)
        .bind(flag(draft.issue_refresh))
        .bind(now)
        .bind(flag(draft.device_flow))
        .bind(flag(draft.require_par))
        .bind(flag(draft.dpop_bound))
        .bind(flag(registration.is_some()))
        .bind(registration.map(|r| r.token_hash))
        .bind(
            registration
                .map(|r| serde_json::Value::Object(r.metadata.clone()).to_string())
                .unwrap_or_else(|| "{}".into()),
        )
        .bind(serde_json::to_string(&draft.post_logout_redirect_uris).unwrap_or_else(|_| "[]".into()))
        .bind(&draft.backchannel_logout_uri)
        .bind(&draft.webhook_url)
        .execute(self.writer())
        .await?;
        let app = self.app_by_id(&id).await?.ok_or(sqlx::Error::RowNotFound)?;
        Ok((app, secret))
    }

    /// The dynamically registered app whose registration access token hashes to `hash`.
    pub async fn app_by_registration_token(&self, hash: &str) -> Result<Option<App>, sqlx::Error> {
        let row = sqlx::query(select_app!(
            "WHERE a.registration_token_hash = $1 AND a.dynamic = 1"
        ))
        .bind(hash)
        .fetch_optional(self.writer())
        .await?;
        row.as_ref().map(app_from_row).transpose()
    }

    /// Replace a dynamically registered app's extra metadata.
    pub async fn set_client_metadata(
        &self,
        app_id: &str,
        metadata: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE apps SET client_metadata = $1 WHERE id = $2")
            .bind(serde_json::Value::Object(metadata.clone()).to_string())
            .bind(app_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    pub async fn app_by_id(&self, id: &str) -> Result<Option<App>, sqlx::Error> {
        let row = sqlx::query(select_app!("WHERE a.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(app_from_row).transpose()
    }

    pub async fn app_by_client_id(&self, client_id: &str) -> Result<Option<App>, sqlx::Error> {
        let sql = select_app!("WHERE a.client_id = $1");
        self.lookup_gathered(&self.apps_by_client_id, sql, client_id, |r| app_from_row(r))
            .await
    }

    /// An owner's apps, newest first.
    pub async fn apps_of_owner(&self, owner_id: &str) -> Result<Vec<App>, sqlx::Error> {
        let rows = sqlx::query(select_app!(
            "WHERE a.owner_id = $1 ORDER BY a.created_at DESC, a.id"
        ))
        .bind(owner_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(app_from_row).collect()
    }

    /// Every app, newest first (admins).
    pub async fn all_apps(&self) -> Result<Vec<App>, sqlx::Error> {
        let rows = sqlx::query(select_app!("ORDER BY a.created_at DESC, a.id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(app_from_row).collect()
    }

    /// Replace an app's definition. Turning a public app confidential mints its first secret
    /// (returned once); turning a confidential app public drops its secret.
    pub async fn update_app(
        &self,
        app: &App,
        draft: &AppDraft,
        now: i64,
    ) -> Result<(App, Option<Secret>), sqlx::Error> {
        let new_secret = (draft.confidential && !app.confidential)
            .then(|| secret::generate(TokenKind::ClientSecret));
        let secret_hash = match (&new_secret, draft.confidential) {
            (Some(s), _) => Some(s.hash()),
            (None, true) => app.secret_hash.clone(),
            (None, false) => None,
        };
        sqlx::query(
            "UPDATE apps SET name = $1, homepage_url = $2, redirect_uris = $3, scopes = $4, confidential = $5, \
             secret_hash = $6, access_token_ttl = $7, issue_refresh = $8, updated_at = $9, device_flow = $11, \
             require_par = $12, dpop_bound = $13, post_logout_redirect_uris = $14, backchannel_logout_uri = $15, webhook_url = $16 WHERE id = $10",
        )
        .bind(&draft.name)
        .bind(&draft.homepage_url)
        .bind(serde_json::to_string(&draft.redirect_uris).unwrap_or_else(|_| "[]".into()))
        .bind(draft.scopes.to_string())
        .bind(flag(draft.confidential))
        .bind(secret_hash)
        .bind(draft.access_token_ttl)
        .bind(flag(draft.issue_refresh))
        .bind(now)
        .bind(&app.id)
        .bind(flag(draft.device_flow))
        .bind(flag(draft.require_par))
        .bind(flag(draft.dpop_bound))
        .bind(serde_json::to_string(&draft.post_logout_redirect_uris).unwrap_or_else(|_| "[]".into()))
        .bind(&draft.backchannel_logout_uri)
        .bind(&draft.webhook_url)
        .execute(self.writer())
        .await?;
        let app = self
            .app_by_id(&app.id)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        Ok((app, new_secret))
    }

    /// A new secret for a confidential app; the old one stops working at once.
    pub async fn reset_app_secret(
        &self,
        app_id: &str,
        now: i64,
    ) -> Result<Option<Secret>, sqlx::Error> {
        let secret = secret::generate(TokenKind::ClientSecret);
        let done = sqlx::query(
            "UPDATE apps SET secret_hash = $1, updated_at = $2 WHERE id = $3 AND confidential = 1",
        )
        .bind(secret.hash())
        .bind(now)
        .bind(app_id)
        .execute(self.writer())
        .await?;
        Ok((done.rows_affected() == 1).then_some(secret))
    }

    pub async fn set_app_verified(
        &self,
        app_id: &str,
        verified: bool,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("UPDATE apps SET verified = $1, updated_at = $2 WHERE id = $3")
            .bind(flag(verified))
            .bind(now)
            .bind(app_id)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Allow an app to exchange tokens, or not (admins only).
    pub async fn set_token_exchange(
        &self,
        app_id: &str,
        allowed: bool,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done =
            sqlx::query("UPDATE apps SET token_exchange = $1, updated_at = $2 WHERE id = $3")
                .bind(flag(allowed))
                .bind(now)
                .bind(app_id)
                .execute(self.writer())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Delete an app; its grants, codes and tokens go with it (`ON DELETE CASCADE`).
    pub async fn delete_app(&self, app_id: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM apps WHERE id = $1")
            .bind(app_id)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revoke every user token of an app and remove every grant, in one transaction, so users
    /// must authorize again.
    pub async fn revoke_app_tokens(&self, app_id: &str, now: i64) -> Result<Revoked, sqlx::Error> {
        let mut tx = self.begin().await?;
        let tokens = sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE app_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(app_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM auth_codes WHERE app_id = $1")
            .bind(app_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM device_codes WHERE app_id = $1")
            .bind(app_id)
            .execute(&mut *tx)
            .await?;
        let grants = sqlx::query("DELETE FROM grants WHERE app_id = $1")
            .bind(app_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(Revoked { tokens, grants })
    }

    /// Check a presented client secret (constant-time through the hash compare).
    pub fn client_secret_matches(app: &App, presented: &str) -> bool {
        let Some(secret) = secret::parse(TokenKind::ClientSecret, presented) else {
            return false;
        };
        app.secret_hash.as_deref().is_some_and(|stored| {
            secret::constant_time_eq(stored.as_bytes(), secret.hash().as_bytes())
        })
    }
}
