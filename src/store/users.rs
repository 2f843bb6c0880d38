//! Accounts.

use sqlx::Row;

use super::exec::Param;
use super::reader::Columns;
use super::{Store, flag, is_unique_violation, new_id};
use crate::domain::user::{Profile, TrustLevel, User};

/// The columns [`user_from_row`] reads, as a literal so queries can be built with `concat!`.
macro_rules! user_columns {
    () => {
        "id, email, email_verified, name, given_name, family_name, display_name, slack_id, \
         github_username, timezone, admin, disabled, trust_level, created_at, updated_at"
    };
}

macro_rules! select_user {
    ($where:literal) => {
        concat!("SELECT ", user_columns!(), " FROM users ", $where)
    };
}

pub(super) fn user_from_row(row: &(impl Columns + ?Sized)) -> Result<User, sqlx::Error> {
    let trust = row.text("trust_level")?;
    Ok(User {
        id: row.text("id")?,
        email: row.text("email")?,
        email_verified: row.int("email_verified")? != 0,
        name: row.text("name")?,
        given_name: row.text("given_name")?,
        family_name: row.text("family_name")?,
        display_name: row.text("display_name")?,
        slack_id: row.text("slack_id")?,
        github_username: row.text("github_username")?,
        timezone: row.text("timezone")?,
        admin: row.int("admin")? != 0,
        disabled: row.int("disabled")? != 0,
        trust_level: TrustLevel::parse(&trust).unwrap_or(TrustLevel::Blue),
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

pub struct NewUser {
    pub email: String,
    pub name: String,
    pub password_hash: Option<String>,
    pub admin: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl Store {
    pub async fn create_user(&self, new: NewUser, now: i64) -> Result<User, CreateUserError> {
        let mut conn = self.writer().acquire().await?;
        create_user_on(&mut conn, new, now).await
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>, sqlx::Error> {
        self.lookup(select_user!("WHERE id = $1"), &[Param::Text(id)], |r| {
            user_from_row(r)
        })
        .await
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, sqlx::Error> {
        let row = sqlx::query(select_user!("WHERE email_lower = $1"))
            .bind(email.trim().to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// The user and their password hash, for signing in.
    pub async fn user_credentials(
        &self,
        email: &str,
    ) -> Result<Option<(User, Option<String>)>, sqlx::Error> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            ", password_hash FROM users WHERE email_lower = $1"
        ))
        .bind(email.trim().to_lowercase())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Some((user_from_row(&row)?, row.try_get("password_hash")?))),
            None => Ok(None),
        }
    }

    pub async fn password_hash(&self, user_id: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map(Option::flatten)
    }

    pub async fn list_users(&self) -> Result<Vec<User>, sqlx::Error> {
        let rows = sqlx::query(select_user!("ORDER BY created_at, email_lower"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    pub async fn admin_exists(&self) -> Result<bool, sqlx::Error> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE admin = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// Returns false when no such user exists.
    pub async fn set_admin(
        &self,
        user_id: &str,
        admin: bool,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("UPDATE users SET admin = $1, updated_at = $2 WHERE id = $3")
            .bind(flag(admin))
            .bind(now)
            .bind(user_id)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A disabled user cannot sign in, and their sessions and tokens stop working.
    pub async fn set_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("UPDATE users SET disabled = $1, updated_at = $2 WHERE id = $3")
            .bind(flag(disabled))
            .bind(now)
            .bind(user_id)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_trust_level(
        &self,
        user_id: &str,
        level: TrustLevel,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("UPDATE users SET trust_level = $1, updated_at = $2 WHERE id = $3")
            .bind(level.as_str())
            .bind(now)
            .bind(user_id)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn update_profile(
        &self,
        user_id: &str,
        p: &Profile,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE users SET name = $1, given_name = $2, family_name = $3, display_name = $4, \
             slack_id = $5, github_username = $6, timezone = $7, updated_at = $8 WHERE id = $9",
        )
        .bind(&p.name)
        .bind(&p.given_name)
        .bind(&p.family_name)
        .bind(&p.display_name)
        .bind(&p.slack_id)
        .bind(&p.github_username)
        .bind(&p.timezone)
        .bind(now)
        .bind(user_id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    pub async fn set_password_hash(
        &self,
        user_id: &str,
        hash: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(hash)
            .bind(now)
            .bind(user_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}

/// Insert a user on any connection (a pooled one or a transaction).
pub(crate) async fn create_user_on(
    conn: &mut sqlx::AnyConnection,
    new: NewUser,
    now: i64,
) -> Result<User, CreateUserError> {
    let id = new_id();
    let result = sqlx::query(
        "INSERT INTO users (id, email, email_lower, name, password_hash, admin, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(&id)
    .bind(&new.email)
    .bind(new.email.to_lowercase())
    .bind(&new.name)
    .bind(new.password_hash.as_deref())
    .bind(flag(new.admin))
    .bind(now)
    .execute(&mut *conn)
    .await;
    match result {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e, "users_email_lower_key", "email_lower") => {
            return Err(CreateUserError::EmailTaken);
        }
        Err(e) => return Err(e.into()),
    }
    let row = sqlx::query(select_user!("WHERE id = $1"))
        .bind(&id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(user_from_row(&row)?)
}
