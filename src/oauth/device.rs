//! The device authorization grant (RFC 8628) for editors and command-line tools: the device
//! authorization endpoint, the `/device` pages where a signed-in person enters the code and
//! approves, and the token endpoint's polling grant.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::authorize::ConsentPage;
use super::error::{ErrorCode, OAuthError};
use super::params::{Params, authenticate_client};
use super::token::{Identity, answer, invalid_grant, refresh_ttl};
use crate::app::AppState;
use crate::domain::device::{display, generate_user_code, normalize};
use crate::domain::scope::{self, Scopes};
use crate::domain::secret::{self, TokenKind};
use crate::http::{CsrfForm, Ctx, PageError};
use crate::store::device::{PendingDevice, PollOutcome};
use crate::store::tokens::Binding;
use crate::store::{App, AuditEvent, AuditKind, now};
use crate::web::{MessagePage, render};

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// How long a device code lives, and how often the device may poll (RFC 8628 §3.2).
const EXPIRES_IN: i64 = 600;
const INTERVAL: i64 = 5;

pub fn page_router() -> Router<AppState> {
    Router::new()
        .route("/device", get(enter_page).post(enter))
        .route("/device/authorize", post(decide))
}

fn unauthorized(app: &App) -> Option<OAuthError> {
    (!app.device_flow).then(|| {
        OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the device flow is not enabled for this app",
        )
    })
}

/// `POST /oauth/device/code` (RFC 8628 §3.1–3.2).
#[utoipa::path(post, path = "/oauth/device/code", tag = "oauth",
    request_body(content(
        (super::schema::DeviceCodeRequest = "application/x-www-form-urlencoded"),
        (super::schema::DeviceCodeRequest = "application/json"),
    )),
    security((), ("client" = [])),
    responses(
        (status = 200, description = "A device code and the code the user types", body = super::schema::DeviceCodeResponse),
        super::schema::OAuthErrors,
    ))]
pub async fn device_authorization(
    State(state): State<AppState>,
    params: Params,
) -> Result<Response, OAuthError> {
    let app = authenticate_client(&state, &params).await?;
    if let Some(e) = unauthorized(&app) {
        return Err(e);
    }
    let scopes = match params.get("scope") {
        Some(text) => Scopes::parse(text, &scope::KNOWN)
            .map_err(|_| OAuthError::new(ErrorCode::InvalidScope, "unknown scope"))?,
        None => Scopes::from_stored(scope::DEFAULT),
    };
    if scopes.is_empty() || !scopes.is_subset_of(&app.scopes) {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "scope not allowed for this app",
        ));
    }
    let device_code = secret::generate(TokenKind::DeviceCode);
    let t = now();
    // 20^8 codes: a collision with a live one is rare; draw again when it happens.
    let mut user_code = None;
    for _ in 0..5 {
        let candidate = generate_user_code();
        if state
            .store
            .create_device_code(
                &device_code,
                &candidate,
                &app.id,
                &scopes,
                INTERVAL,
                t,
                t + EXPIRES_IN,
            )
            .await?
        {
            user_code = Some(candidate);
            break;
        }
    }
    let user_code =
        display(&user_code.ok_or_else(|| {
            OAuthError::new(ErrorCode::ServerError, "no free user code; try again")
        })?);
    let issuer = &state.config.issuer;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({
            "device_code": device_code.expose(),
            "user_code": user_code,
            "verification_uri": format!("{issuer}/device"),
            "verification_uri_complete": format!("{issuer}/device?user_code={user_code}"),
            "expires_in": EXPIRES_IN,
            "interval": INTERVAL,
        })),
    )
        .into_response())
}

/// The token endpoint's device-code grant (RFC 8628 §3.4–3.5).
pub async fn poll(
    state: &AppState,
    app: &App,
    params: &Params,
    binding: &Binding,
) -> Result<Response, OAuthError> {
    if let Some(e) = unauthorized(app) {
        return Err(e);
    }
    let text = params.require("device_code")?;
    let Some(code) = secret::parse(TokenKind::DeviceCode, text) else {
        return Err(invalid_grant("the device code is not valid"));
    };
    let outcome = state
        .store
        .poll_device(
            &code,
            &app.id,
            app.access_token_ttl,
            refresh_ttl(state, app),
            binding,
            now(),
        )
        .await?;
    let (code, description) = match outcome {
        PollOutcome::Issued(pair) => {
            let (issued, device) = *pair;
            let who = Identity {
                user_id: &device.user_id,
                auth_time: device.auth_time,
                nonce: None,
            };
            return answer(state, app, &issued, Some(who)).await;
        }
        PollOutcome::Pending => (
            ErrorCode::AuthorizationPending,
            "the user has not answered yet".to_owned(),
        ),
        PollOutcome::SlowDown { interval } => (
            ErrorCode::SlowDown,
            format!("polling too fast; wait {interval} seconds between requests"),
        ),
        PollOutcome::Denied => (
            ErrorCode::AccessDenied,
            "the user denied the request".to_owned(),
        ),
        PollOutcome::Expired => (
            ErrorCode::ExpiredToken,
            "the device code has expired".to_owned(),
        ),
        PollOutcome::Invalid => return Err(invalid_grant("the device code is not valid")),
    };
    Err(OAuthError::new(code, description))
}

#[derive(Template)]
#[template(path = "device.html")]
struct EnterPage {
    ctx: Ctx,
    user_code: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct CodeQuery {
    user_code: Option<String>,
}

/// `GET /device`: the form, prefilled from `verification_uri_complete`.
async fn enter_page(ctx: Ctx, Query(q): Query<CodeQuery>) -> Result<Response, PageError> {
    ctx.require_user()?;
    render(EnterPage {
        ctx,
        user_code: q.user_code.unwrap_or_default().chars().take(32).collect(),
        error: None,
    })
}

/// The pending, unexpired request behind a normalised user code, and its app.
async fn pending(state: &AppState, code: &str) -> Result<Option<(PendingDevice, App)>, PageError> {
    let Some(pending) = state.store.pending_device(code, now()).await? else {
        return Ok(None);
    };
    let app = state
        .store
        .app_by_id(&pending.app_id)
        .await?
        .ok_or(PageError::NotFound)?;
    Ok(Some((pending, app)))
}

#[derive(Deserialize)]
struct EnterForm {
    user_code: String,
}

/// `POST /device`: look the code up and show the consent page. Every attempt counts against
/// the person's and the address's sign-in limit, so codes cannot be guessed.
async fn enter(
    State(state): State<AppState>,
    ctx: Ctx,
    CsrfForm(form): CsrfForm<EnterForm>,
) -> Result<Response, PageError> {
    let user = ctx.require_user()?.clone();
    state
        .limits
        .login
        .check(&[
            &format!("device-user:{}", user.id),
            &format!("device-ip:{}", ctx.ip),
        ])
        .await
        .map_err(|retry_after| PageError::TooManyRequests { retry_after })?;
    let found = match normalize(&form.user_code) {
        Some(code) => pending(&state, &code)
            .await?
            .map(|(pending, app)| (code, pending, app)),
        None => None,
    };
    let Some((code, pending, app)) = found else {
        let page = EnterPage {
            error: Some(ctx.t("device-unknown-code")),
            user_code: form.user_code.chars().take(32).collect(),
            ctx,
        };
        let mut response = render(page)?;
        *response.status_mut() = axum::http::StatusCode::BAD_REQUEST;
        return Ok(response);
    };
    let shown = display(&code);
    render(ConsentPage {
        action: "/device/authorize",
        hidden: vec![("user_code".to_owned(), code)],
        device_line: Some(ctx.t_args("device-compare", &[("code", &shown)])),
        ..ConsentPage::new(&ctx, &app, &pending.scopes, &user)
    })
}

#[derive(Deserialize)]
struct DecideForm {
    user_code: String,
    decision: String,
}

/// `POST /device/authorize`: Authorize or Deny.
async fn decide(
    State(state): State<AppState>,
    ctx: Ctx,
    CsrfForm(form): CsrfForm<DecideForm>,
) -> Result<Response, PageError> {
    let user = ctx.require_user()?.clone();
    let code = normalize(&form.user_code).ok_or(PageError::BadRequest)?;
    let t = now();
    let gone = || MessagePage {
        title: ctx.t("device-title"),
        message: ctx.t("device-gone"),
        ctx: ctx.clone(),
    };
    let Some((pending, app)) = pending(&state, &code).await? else {
        return render(gone());
    };
    let (decided, kind, message) = match form.decision.as_str() {
        "allow" => {
            let grant_id = state
                .store
                .upsert_grant(&user.id, &app.id, &pending.scopes, t)
                .await?;
            let auth_time = ctx.auth_time.unwrap_or(t);
            let decided = state
                .store
                .decide_device(&code, Some((&user.id, &grant_id, auth_time)), t)
                .await?;
            (decided, AuditKind::Consent, "device-approved")
        }
        "deny" => {
            let decided = state.store.decide_device(&code, None, t).await?;
            (decided, AuditKind::ConsentDenied, "device-denied")
        }
        _ => return Err(PageError::BadRequest),
    };
    if !decided {
        return render(gone());
    }
    let event = AuditEvent::new(kind, &app.client_id)
        .from(&ctx)
        .by(&user.id)
        .details(json!({"scopes": pending.scopes.to_string(), "flow": "device"}));
    state.store.audit(event, t).await?;
    render(MessagePage {
        title: ctx.t("device-title"),
        message: ctx.t_args(message, &[("app", &app.name)]),
        ctx,
    })
}
