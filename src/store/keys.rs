//! ID-token signing keys, shared by every node through the database.

use super::reader::Columns;

use super::{Store, flag};

#[derive(Debug, Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: String,
    pub private_pem: String,
    pub public_jwk: String,
    pub created_at: i64,
    pub active: bool,
    pub retired_at: Option<i64>,
}

const KEY_COLUMNS: &str = "kid, alg, private_pem, public_jwk, created_at, active, retired_at";

fn key_from_row(row: &(impl Columns + ?Sized)) -> Result<SigningKey, sqlx::Error> {
    Ok(SigningKey {
        kid: row.text("kid")?,
        alg: row.text("alg")?,
        private_pem: row.text("private_pem")?,
        public_jwk: row.text("public_jwk")?,
        created_at: row.int("created_at")?,
        active: row.int("active")? != 0,
        retired_at: row.opt_int("retired_at")?,
    })
}

impl Store {
    /// Store a new key. With `make_active`, it becomes the one that signs and every other key
    /// stops signing (their public halves stay published until retired).
    pub async fn add_signing_key(
        &self,
        key: &SigningKey,
        make_active: bool,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.begin().await?;
        if make_active {
            sqlx::query("UPDATE signing_keys SET active = 0 WHERE active = 1")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_pem, public_jwk, created_at, active) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(&key.private_pem)
        .bind(&key.public_jwk)
        .bind(key.created_at)
        .bind(flag(make_active))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Store `key` as the signing key only if there is none yet (first start). Returns whether
    /// it was stored: when several nodes start at once, the first one's key is kept.
    pub async fn add_first_signing_key(&self, key: &SigningKey) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin().await?;
        // A NOT EXISTS check alone lets two transactions both insert (each sees no key yet);
        // a marker row under a primary key makes the second wait for the first and give way.
        let first = sqlx::query(
            "INSERT INTO server_secrets (name, value, created_at) VALUES ('first_signing_key', $1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(key.kid.as_bytes().to_vec())
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?;
        if first.rows_affected() == 0 {
            return Ok(false);
        }
        let done = sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_pem, public_jwk, created_at, active) \
             SELECT $1, $2, $3, $4, $5, 1 WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE active = 1)",
        )
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(&key.private_pem)
        .bind(&key.public_jwk)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// The key that signs now: the newest active one (if two nodes created one at the same
    /// first start, both agree on this choice).
    pub async fn active_signing_key(&self) -> Result<Option<SigningKey>, sqlx::Error> {
        self.lookup(
            "SELECT kid, alg, private_pem, public_jwk, created_at, active, retired_at FROM signing_keys \
             WHERE active = 1 AND retired_at IS NULL ORDER BY created_at DESC, kid DESC LIMIT 1",
            &[],
            |r| key_from_row(r),
        )
        .await
    }

    /// Every key, newest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKey>, sqlx::Error> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at DESC, kid DESC"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Stop publishing a key that no longer signs. The key that signs cannot be retired.
    pub async fn retire_signing_key(&self, kid: &str, now: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE kid = $2 AND active = 0 AND retired_at IS NULL")
            .bind(now)
            .bind(kid)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The server-wide 256-bit key called `name` (sealing, DPoP nonces, webhooks), made by the
    /// first node that asks for it; every node then reads the same value, once.
    pub async fn server_key(&self, name: &str) -> Result<[u8; 32], sqlx::Error> {
        if let Some(key) = self
            .server_keys
            .lock()
            .ok()
            .and_then(|k| k.get(name).copied())
        {
            return Ok(key);
        }
        let mut fresh = [0u8; 32];
        rand::Rng::fill_bytes(&mut rand::rng(), &mut fresh);
        sqlx::query(
            "INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(fresh.to_vec())
        .bind(super::now())
        .execute(self.writer())
        .await?;
        let value: Vec<u8> = sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(self.writer())
            .await?;
        let key: [u8; 32] = value
            .try_into()
            .map_err(|_| sqlx::Error::Protocol(format!("the server key `{name}` is damaged")))?;
        if let Ok(mut keys) = self.server_keys.lock() {
            keys.insert(name.to_owned(), key);
        }
        Ok(key)
    }
}
