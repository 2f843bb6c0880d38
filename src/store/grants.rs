//! Grants: a user's consent to an app, with the scopes approved and when it was last used.

use sqlx::Row;

use std::sync::PoisonError;

use super::exec::Param;
use super::reader::Columns;
use super::{Store, new_id};
use crate::domain::scope::Scopes;

#[derive(Debug, Clone)]
pub struct Grant {
    pub id: String,
    pub user_id: String,
    pub app_id: String,
    pub scopes: Scopes,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub last_used_ip: String,
    pub last_used_ua: String,
    /// For listing: the app's name and client id.
    pub app_name: String,
    pub client_id: String,
    pub verified: bool,
}

fn grant_from_row(row: &(impl Columns + ?Sized)) -> Result<Grant, sqlx::Error> {
    Ok(Grant {
        id: row.text("id")?,
        user_id: row.text("user_id")?,
        app_id: row.text("app_id")?,
        scopes: Scopes::from_stored(&row.text("scopes")?),
        created_at: row.int("created_at")?,
        last_used_at: row.opt_int("last_used_at")?,
        last_used_ip: row.text("last_used_ip")?,
        last_used_ua: row.text("last_used_ua")?,
        app_name: row.text("app_name")?,
        client_id: row.text("client_id")?,
        verified: row.int("verified")? != 0,
    })
}

macro_rules! select_grant {
    ($where:literal) => {
        concat!(
            "SELECT g.id, g.user_id, g.app_id, g.scopes, g.created_at, g.last_used_at, g.last_used_ip, ",
            "g.last_used_ua, a.name AS app_name, a.client_id, a.verified FROM grants g JOIN apps a ON a.id = g.app_id ",
            $where
        )
    };
}

impl Store {
    pub async fn grant_for(
        &self,
        user_id: &str,
        app_id: &str,
    ) -> Result<Option<Grant>, sqlx::Error> {
        self.lookup(
            select_grant!("WHERE g.user_id = $1 AND g.app_id = $2"),
            &[Param::Text(user_id), Param::Text(app_id)],
            |r| grant_from_row(r),
        )
        .await
    }

    /// Record consent: create the grant, or widen it to include `scopes`. Returns the grant id.
    pub async fn upsert_grant(
        &self,
        user_id: &str,
        app_id: &str,
        scopes: &Scopes,
        now: i64,
    ) -> Result<String, sqlx::Error> {
        let existing = self.grant_for(user_id, app_id).await?;
        let merged = match &existing {
            Some(g) => Scopes::from_names(g.scopes.iter().chain(scopes.iter()), &all_scopes())
                .unwrap_or_else(|_| scopes.clone()),
            None => scopes.clone(),
        };
        let id = new_id();
        let row = sqlx::query(
            "INSERT INTO grants (id, user_id, app_id, scopes, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (user_id, app_id) DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at \
             RETURNING id",
        )
        .bind(&id)
        .bind(user_id)
        .bind(app_id)
        .bind(merged.to_string())
        .bind(now)
        .fetch_one(self.writer())
        .await?;
        row.try_get("id")
    }

    /// Every app a user has granted, most recently used first.
    pub async fn grants_of_user(&self, user_id: &str) -> Result<Vec<Grant>, sqlx::Error> {
        let rows = sqlx::query(select_grant!(
            "WHERE g.user_id = $1 ORDER BY COALESCE(g.last_used_at, g.created_at) DESC, g.id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grant_from_row).collect()
    }

    /// Remove a grant and revoke every token issued under it, in one transaction.
    pub async fn revoke_grant(
        &self,
        user_id: &str,
        grant_id: &str,
        now: i64,
    ) -> Result<Option<u64>, sqlx::Error> {
        let mut tx = self.begin().await?;
        let gone = sqlx::query("DELETE FROM grants WHERE id = $1 AND user_id = $2")
            .bind(grant_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if gone.rows_affected() == 0 {
            return Ok(None);
        }
        let tokens = sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE grant_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(grant_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM auth_codes WHERE grant_id = $1")
            .bind(grant_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(tokens))
    }

    /// Note a use of a grant, at most once a minute per grant (not a write per request);
    /// `client` gives the caller's IP and user agent, asked for only when the note is written.
    pub async fn touch_grant(
        &self,
        grant_id: &str,
        now: i64,
        client: impl FnOnce() -> (String, String),
    ) -> Result<(), sqlx::Error> {
        // This process remembers its own notes, so most requests skip the database.
        {
            let mut touched = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
            if touched.get(grant_id).is_some_and(|&at| at > now - 60) {
                return Ok(());
            }
            if touched.len() >= 100_000 {
                touched.retain(|_, at| *at > now - 60);
            }
            touched.insert(grant_id.to_owned(), now);
        }
        let (ip, user_agent) = client();
        sqlx::query(
            "UPDATE grants SET last_used_at = $1, last_used_ip = $2, last_used_ua = $3 \
             WHERE id = $4 AND (last_used_at IS NULL OR last_used_at < $5)",
        )
        .bind(now)
        .bind(ip)
        .bind(super::sessions::truncate(&user_agent, 512))
        .bind(grant_id)
        .bind(now - 60)
        .execute(self.writer())
        .await?;
        Ok(())
    }
}

fn all_scopes() -> Vec<&'static str> {
    crate::domain::scope::KNOWN.to_vec()
}
