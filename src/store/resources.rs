//! Resource servers (RFC 8707): the audiences tokens may be restricted to.

use sqlx::Row;

use super::{Store, new_id};

/// A resource server an admin registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceServer {
    pub id: String,
    /// The audience of its tokens: an absolute URI, matched exactly.
    pub identifier: String,
    pub name: String,
    /// Its access tokens are RFC 9068 JWTs rather than opaque tokens.
    pub jwt: bool,
    pub created_at: i64,
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<ResourceServer, sqlx::Error> {
    Ok(ResourceServer {
        id: row.try_get("id")?,
        identifier: row.try_get("identifier")?,
        name: row.try_get("name")?,
        jwt: row.try_get::<String, _>("token_format")? == "jwt",
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// Register a resource server; `None` when its identifier is taken.
    pub async fn create_resource_server(
        &self,
        identifier: &str,
        name: &str,
        jwt: bool,
        now: i64,
    ) -> Result<Option<ResourceServer>, sqlx::Error> {
        let server = ResourceServer {
            id: new_id(),
            identifier: identifier.to_owned(),
            name: name.to_owned(),
            jwt,
            created_at: now,
        };
        let done = sqlx::query(
            "INSERT INTO resource_servers (id, identifier, name, token_format, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&server.id)
        .bind(&server.identifier)
        .bind(&server.name)
        .bind(if jwt { "jwt" } else { "opaque" })
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok((done.rows_affected() == 1).then_some(server))
    }

    pub async fn resource_servers(&self) -> Result<Vec<ResourceServer>, sqlx::Error> {
        let rows = sqlx::query("SELECT * FROM resource_servers ORDER BY identifier")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// The resource server whose identifier is exactly `identifier`.
    pub async fn resource_server(
        &self,
        identifier: &str,
    ) -> Result<Option<ResourceServer>, sqlx::Error> {
        let row = sqlx::query("SELECT * FROM resource_servers WHERE identifier = $1")
            .bind(identifier)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Remove a resource server (by ID or identifier); tokens already issued for it keep their
    /// audience and stay refused by latchkey's own API.
    pub async fn delete_resource_server(&self, id: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM resource_servers WHERE id = $1 OR identifier = $1")
            .bind(id)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
