//! `/oauth/authorized_applications`: every app the user granted, and Revoke.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::{fmt_time, render};
use crate::app::AppState;
use crate::domain::scope;
use crate::http::csrf::NoFields;
use crate::http::{CsrfForm, Ctx, PageError};
use crate::store::{AuditEvent, AuditKind, now};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth/authorized_applications", get(list))
        .route(
            "/oauth/authorized_applications/{id}/revoke",
            post(revoke).get(back),
        )
}

async fn back() -> Redirect {
    Redirect::to("/oauth/authorized_applications")
}

struct Row {
    id: String,
    app_name: String,
    verified: bool,
    scopes: Vec<String>,
    granted: String,
    last_used: String,
    from: String,
    user_agent: String,
}

#[derive(Template)]
#[template(path = "authorized.html")]
struct AuthorizedPage {
    ctx: Ctx,
    rows: Vec<Row>,
    notice: Option<String>,
}

#[derive(Deserialize)]
struct Notice {
    revoked: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let user = ctx.require_user()?;
    let never = ctx.t("never");
    let rows = state
        .store
        .grants_of_user(&user.id)
        .await?
        .into_iter()
        .map(|g| Row {
            scopes: g
                .scopes
                .iter()
                .map(|s| ctx.t(scope::description_key(s)))
                .collect(),
            granted: fmt_time(g.created_at),
            last_used: g
                .last_used_at
                .map(fmt_time)
                .unwrap_or_else(|| never.clone()),
            from: if g.last_used_ip.is_empty() {
                String::new()
            } else {
                ctx.t_args("authorized-from", &[("ip", &g.last_used_ip)])
            },
            user_agent: g.last_used_ua,
            id: g.id,
            app_name: g.app_name,
            verified: g.verified,
        })
        .collect();
    let notice = q
        .revoked
        .map(|app| ctx.t_args("authorized-revoked", &[("app", &app)]));
    render(AuthorizedPage { ctx, rows, notice })
}

/// Remove the grant and every token issued under it, in one transaction.
async fn revoke(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    let user = ctx.require_user()?.clone();
    let grant = state
        .store
        .grants_of_user(&user.id)
        .await?
        .into_iter()
        .find(|g| g.id == id)
        .ok_or(PageError::NotFound)?;
    let revoked = state
        .store
        .revoke_grant(&user.id, &id, now())
        .await?
        .ok_or(PageError::NotFound)?;
    let event = AuditEvent::new(AuditKind::GrantRevoked, &grant.client_id)
        .from(&ctx)
        .by(&user.id)
        .details(json!({"revoked_tokens": revoked}));
    state.store.audit(event, now()).await?;
    if let Some(app) = state.store.app_by_id(&grant.app_id).await? {
        let data = json!({"user": user.id, "revoked_tokens": revoked});
        crate::outbox::queue_event(&state, &app, "grant.revoked", data).await?;
    }
    Ok(Redirect::to(&format!(
        "/oauth/authorized_applications?revoked={}",
        crate::http::ctx::urlencode(&grant.app_name)
    ))
    .into_response())
}
