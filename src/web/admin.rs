//! `/admin`: users (admin flag, trust level, disable), apps (verify), recent audit events.
//! Only administrators see it; everyone else gets 404.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::{fmt_time, render};
use crate::app::AppState;
use crate::apps::{self, Origin};
use crate::domain::user::{TrustLevel, User};
use crate::http::{CsrfForm, Ctx, PageError};
use crate::store::audit::StoredAuditEvent;
use crate::store::resources::ResourceServer;
use crate::store::{App, AuditEvent, AuditKind, now};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(index))
        .route("/admin/apps/{id}/verify", post(verify).get(back))
        .route(
            "/admin/apps/{id}/token-exchange",
            post(token_exchange).get(back),
        )
        .route("/admin/users/{id}", post(update_user).get(back))
        .route("/admin/resources", post(create_resource).get(back))
        .route(
            "/admin/resources/{id}/delete",
            post(delete_resource).get(back),
        )
}

async fn back() -> Redirect {
    Redirect::to("/admin")
}

fn require_admin(ctx: &Ctx) -> Result<User, PageError> {
    let user = ctx.require_user()?;
    if user.admin {
        Ok(user.clone())
    } else {
        Err(PageError::NotFound)
    }
}

#[derive(Template)]
#[template(path = "admin/index.html")]
struct AdminPage {
    ctx: Ctx,
    users: Vec<User>,
    apps: Vec<App>,
    events: Vec<StoredAuditEvent>,
    levels: [TrustLevel; 4],
    resources: Vec<ResourceServer>,
}

impl AdminPage {
    fn when(&self, unix: &i64) -> String {
        fmt_time(*unix)
    }

    fn is_me(&self, user: &User) -> bool {
        self.ctx.user.as_ref().is_some_and(|me| me.id == user.id)
    }
}

async fn index(State(state): State<AppState>, ctx: Ctx) -> Result<Response, PageError> {
    require_admin(&ctx)?;
    let page = AdminPage {
        users: state.store.list_users().await?,
        apps: state.store.all_apps().await?,
        events: state.store.recent_audit_events(50).await?,
        levels: TrustLevel::ALL,
        resources: state.store.resource_servers().await?,
        ctx,
    };
    render(page)
}

#[derive(Deserialize)]
struct VerifyForm {
    verified: String,
}

async fn verify(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<VerifyForm>,
) -> Result<Response, PageError> {
    let admin = require_admin(&ctx)?;
    let app = apps::find(&state.store, &admin, &id).await?;
    let origin = Origin::from(&ctx);
    apps::set_verified(&state.store, &admin, &app, form.verified == "1", origin).await?;
    Ok(Redirect::to("/admin").into_response())
}

#[derive(Deserialize)]
struct ExchangeForm {
    allowed: String,
}

async fn token_exchange(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ExchangeForm>,
) -> Result<Response, PageError> {
    let admin = require_admin(&ctx)?;
    let app = apps::find(&state.store, &admin, &id).await?;
    let origin = Origin::from(&ctx);
    apps::set_token_exchange(&state.store, &admin, &app, form.allowed == "1", origin).await?;
    Ok(Redirect::to("/admin").into_response())
}

#[derive(Deserialize)]
struct ResourceForm {
    identifier: String,
    name: String,
    jwt: Option<String>,
}

async fn create_resource(
    State(state): State<AppState>,
    ctx: Ctx,
    CsrfForm(form): CsrfForm<ResourceForm>,
) -> Result<Response, PageError> {
    let admin = require_admin(&ctx)?;
    let (identifier, name) = crate::domain::resource::validate(&form.identifier, &form.name)
        .map_err(|_| PageError::BadRequest)?;
    let t = now();
    state
        .store
        .create_resource_server(&identifier, &name, form.jwt.is_some(), t)
        .await?
        .ok_or(PageError::BadRequest)?;
    let event = AuditEvent::new(AuditKind::ResourceServerChanged, &identifier)
        .from(&ctx)
        .by(&admin.id)
        .details(json!({"created": true, "jwt": form.jwt.is_some()}));
    state.store.audit(event, t).await?;
    Ok(Redirect::to("/admin").into_response())
}

async fn delete_resource(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<crate::http::csrf::NoFields>,
) -> Result<Response, PageError> {
    let admin = require_admin(&ctx)?;
    if !state.store.delete_resource_server(&id).await? {
        return Err(PageError::NotFound);
    }
    let event = AuditEvent::new(AuditKind::ResourceServerChanged, &id)
        .from(&ctx)
        .by(&admin.id)
        .details(json!({"deleted": true}));
    state.store.audit(event, now()).await?;
    Ok(Redirect::to("/admin").into_response())
}

#[derive(Deserialize)]
struct UserForm {
    trust_level: String,
    admin: Option<String>,
    disabled: Option<String>,
}

async fn update_user(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<UserForm>,
) -> Result<Response, PageError> {
    let admin = require_admin(&ctx)?;
    let user = state
        .store
        .user_by_id(&id)
        .await?
        .ok_or(PageError::NotFound)?;
    let level = TrustLevel::parse(&form.trust_level).ok_or(PageError::BadRequest)?;
    let make_admin = form.admin.is_some();
    let disable = form.disabled.is_some();
    // An administrator cannot lock themselves out.
    if user.id == admin.id && (!make_admin || disable) {
        return Err(PageError::Forbidden);
    }
    let t = now();
    if level != user.trust_level {
        state.store.set_trust_level(&user.id, level, t).await?;
        let event = AuditEvent::new(AuditKind::TrustChanged, &user.email)
            .from(&ctx)
            .by(&admin.id)
            .details(json!({"trust_level": level.as_str()}));
        state.store.audit(event, t).await?;
    }
    if make_admin != user.admin {
        state.store.set_admin(&user.id, make_admin, t).await?;
        let event = AuditEvent::new(AuditKind::AdminChanged, &user.email)
            .from(&ctx)
            .by(&admin.id)
            .details(json!({"admin": make_admin}));
        state.store.audit(event, t).await?;
    }
    if disable != user.disabled {
        state.store.set_disabled(&user.id, disable, t).await?;
        let event = AuditEvent::new(AuditKind::UserDisabled, &user.email)
            .from(&ctx)
            .by(&admin.id)
            .details(json!({"disabled": disable}));
        state.store.audit(event, t).await?;
    }
    Ok(Redirect::to("/admin").into_response())
}
