//! OAuth Apps platform operations shared by the client API, the pages and the CLI: who may see
//! and change which app, validation, and the audit trail.

use serde_json::json;

use crate::domain::app::AppInput;
use crate::domain::secret::Secret;
use crate::domain::user::{FieldError, User};
use crate::store::{App, AuditEvent, AuditKind, Revoked, Store, now};

#[derive(Debug, thiserror::Error)]
pub enum AppsError {
    /// Unknown, or not the caller's (the two are not told apart).
    #[error("no such app")]
    NotFound,
    /// A verified app's name can only be changed by an admin.
    #[error("this app is verified: only an administrator can rename it")]
    NameLocked,
    #[error("the app is not valid")]
    Invalid(Vec<FieldError>),
    /// Public apps have no secret to reset.
    #[error("public apps have no client secret")]
    NoSecret,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Where a change came from, for the audit log.
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin<'a> {
    pub ip: &'a str,
    pub user_agent: &'a str,
}

impl<'a> From<&'a crate::http::Ctx> for Origin<'a> {
    fn from(ctx: &'a crate::http::Ctx) -> Self {
        Origin {
            ip: &ctx.ip,
            user_agent: &ctx.user_agent,
        }
    }
}

impl<'a> Origin<'a> {
    pub const CLI: Origin<'static> = Origin {
        ip: "cli",
        user_agent: "",
    };

    fn event(self, kind: AuditKind, subject: &'a str, actor: &'a User) -> AuditEvent<'a> {
        let mut e = AuditEvent::new(kind, subject);
        if !actor.id.is_empty() {
            e = e.by(&actor.id);
        }
        e.ip = self.ip;
        e.user_agent = self.user_agent;
        e
    }
}

/// Owners see their own apps; admins see every app.
pub fn may_manage(user: &User, app: &App) -> bool {
    user.admin || app.owner_id.as_deref() == Some(user.id.as_str())
}

/// The app with this id (or client id), if `user` may manage it.
pub async fn find(store: &Store, user: &User, id: &str) -> Result<App, AppsError> {
    let app = match store.app_by_id(id).await? {
        Some(app) => Some(app),
        None => store.app_by_client_id(id).await?,
    };
    app.filter(|app| may_manage(user, app))
        .ok_or(AppsError::NotFound)
}

/// The apps `user` sees in lists: their own (admins use [`Store::all_apps`] on the admin page).
pub async fn list(store: &Store, user: &User) -> Result<Vec<App>, AppsError> {
    Ok(if user.admin {
        store.all_apps().await?
    } else {
        store.apps_of_owner(&user.id).await?
    })
}

pub async fn create(
    store: &Store,
    owner: &User,
    input: &AppInput,
    default_ttl: u64,
    origin: Origin<'_>,
) -> Result<(App, Option<Secret>), AppsError> {
    let draft = input.validate(default_ttl).map_err(AppsError::Invalid)?;
    let (app, secret) = store.create_app(&owner.id, &draft, now()).await?;
    let event = origin
        .event(AuditKind::AppCreated, &app.client_id, owner)
        .details(json!({"name": app.name, "confidential": app.confidential}));
    store.audit(event, now()).await?;
    Ok((app, secret))
}

pub async fn update(
    store: &Store,
    actor: &User,
    app: &App,
    input: &AppInput,
    default_ttl: u64,
    origin: Origin<'_>,
) -> Result<(App, Option<Secret>), AppsError> {
    let draft = input.validate(default_ttl).map_err(AppsError::Invalid)?;
    if app.verified && draft.name != app.name && !actor.admin {
        return Err(AppsError::NameLocked);
    }
    let (updated, secret) = store.update_app(app, &draft, now()).await?;
    let event = origin
        .event(AuditKind::AppUpdated, &app.client_id, actor)
        .details(json!({"name": updated.name, "renamed": updated.name != app.name}));
    store.audit(event, now()).await?;
    Ok((updated, secret))
}

pub async fn reset_secret(
    store: &Store,
    actor: &User,
    app: &App,
    origin: Origin<'_>,
) -> Result<Secret, AppsError> {
    let secret = store
        .reset_app_secret(&app.id, now())
        .await?
        .ok_or(AppsError::NoSecret)?;
    store
        .audit(
            origin.event(AuditKind::SecretReset, &app.client_id, actor),
            now(),
        )
        .await?;
    Ok(secret)
}

pub async fn revoke_tokens(
    store: &Store,
    actor: &User,
    app: &App,
    origin: Origin<'_>,
) -> Result<Revoked, AppsError> {
    let revoked = store.revoke_app_tokens(&app.id, now()).await?;
    let event = origin
        .event(AuditKind::TokensRevoked, &app.client_id, actor)
        .details(json!({"revoked_tokens": revoked.tokens, "revoked_grants": revoked.grants}));
    store.audit(event, now()).await?;
    Ok(revoked)
}

pub async fn delete(
    store: &Store,
    actor: &User,
    app: &App,
    origin: Origin<'_>,
) -> Result<(), AppsError> {
    store.delete_app(&app.id).await?;
    let event = origin
        .event(AuditKind::AppDeleted, &app.client_id, actor)
        .details(json!({"name": app.name}));
    store.audit(event, now()).await?;
    Ok(())
}

/// Admins only: mark an app verified (its name then locks) or not.
pub async fn set_verified(
    store: &Store,
    admin: &User,
    app: &App,
    verified: bool,
    origin: Origin<'_>,
) -> Result<(), AppsError> {
    if !admin.admin {
        return Err(AppsError::NotFound);
    }
    store.set_app_verified(&app.id, verified, now()).await?;
    let kind = if verified {
        AuditKind::AppVerified
    } else {
        AuditKind::AppUnverified
    };
    store
        .audit(origin.event(kind, &app.client_id, admin), now())
        .await?;
    Ok(())
}

/// Admins only: allow an app to exchange users' access tokens (RFC 8693), or stop it.
pub async fn set_token_exchange(
    store: &Store,
    admin: &User,
    app: &App,
    allowed: bool,
    origin: Origin<'_>,
) -> Result<(), AppsError> {
    if !admin.admin {
        return Err(AppsError::NotFound);
    }
    store.set_token_exchange(&app.id, allowed, now()).await?;
    let event = origin
        .event(AuditKind::TokenExchangeAllowed, &app.client_id, admin)
        .details(json!({"allowed": allowed}));
    store.audit(event, now()).await?;
    Ok(())
}
