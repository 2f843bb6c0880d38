//! The client API: `POST|GET /oauth/clients`, `GET|PATCH|DELETE /oauth/clients/{id}`,
//! `POST /oauth/clients/{id}/secret`, `POST /oauth/clients/{id}/revoke_tokens`.
//! Authenticated by a personal access token with scope `apps`, or a browser session.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::apps::{self, AppsError, Origin};
use crate::domain::app::AppInput;
use crate::domain::secret::Secret;
use crate::http::api::{ApiError, ApiJson, ApiUser};
use crate::store::App;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(show, update, remove))
        .routes(routes!(reset_secret))
        .routes(routes!(revoke_tokens))
}

/// An app, as the client API answers it.
#[derive(ToSchema)]
#[allow(dead_code)]
struct Client {
    /// The app's UUID (used in `/oauth/clients/{id}`).
    id: String,
    name: String,
    /// 32 lowercase hex digits.
    client_id: String,
    /// Only right after creation or a reset: `lk_cs_…`. Store it now; it is never shown again.
    client_secret: Option<String>,
    /// The first redirect URI.
    redirect_uri: String,
    redirect_uris: Vec<String>,
    homepage_url: String,
    scopes: Vec<String>,
    confidential: bool,
    /// Verified by an administrator (the name is then locked).
    verified: bool,
    /// Present (and true) when the app may use the device flow.
    device_flow: Option<bool>,
    /// Present (and true) when the app's authorization requests must be pushed (PAR).
    require_pushed_authorization_requests: Option<bool>,
    /// Present (and true) when every token the app gets must be DPoP-bound.
    dpop_bound_access_tokens: Option<bool>,
    /// Present when the app registered some: where the browser may go after a logout.
    post_logout_redirect_uris: Option<Vec<String>>,
    /// Present when set: where latchkey POSTs logout tokens.
    backchannel_logout_uri: Option<String>,
    /// Present when set: where latchkey POSTs the app's events.
    webhook_url: Option<String>,
    /// RFC 3339.
    created_at: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct ClientList {
    clients: Vec<Client>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct RevokedTokens {
    revoked_tokens: u64,
    revoked_grants: u64,
}

/// The client object of SPEC §8, with the secret only when one was just issued, and
/// `"device_flow": true` for apps that allow the device flow.
pub fn client_json(app: &App, secret: Option<&Secret>) -> Value {
    let mut object = json!({
        "id": app.id,
        "name": app.name,
        "client_id": app.client_id,
        "redirect_uri": app.redirect_uris.first().cloned().unwrap_or_default(),
        "redirect_uris": app.redirect_uris,
        "homepage_url": app.homepage_url,
        "scopes": app.scopes.to_vec(),
        "confidential": app.confidential,
        "verified": app.verified,
        "created_at": rfc3339(app.created_at),
    });
    // Beyond the pinned object, and only when on, so the pinned shape stays as it was.
    if app.device_flow {
        object["device_flow"] = json!(true);
    }
    if app.require_par {
        object["require_pushed_authorization_requests"] = json!(true);
    }
    if app.dpop_bound {
        object["dpop_bound_access_tokens"] = json!(true);
    }
    if !app.post_logout_redirect_uris.is_empty() {
        object["post_logout_redirect_uris"] = json!(app.post_logout_redirect_uris);
    }
    if !app.backchannel_logout_uri.is_empty() {
        object["backchannel_logout_uri"] = json!(app.backchannel_logout_uri);
    }
    if !app.webhook_url.is_empty() {
        object["webhook_url"] = json!(app.webhook_url);
    }
    if let Some(secret) = secret {
        object["client_secret"] = json!(secret.expose());
    }
    object
}

pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl From<AppsError> for ApiError {
    fn from(e: AppsError) -> Self {
        match e {
            AppsError::NotFound => ApiError::NotFound,
            AppsError::NameLocked => {
                ApiError::Forbidden("this app is verified: only an administrator can rename it")
            }
            AppsError::Invalid(fields) => ApiError::Validation(fields),
            AppsError::NoSecret => ApiError::BadRequest("public apps have no client secret".into()),
            AppsError::Database(e) => ApiError::Database(e),
        }
    }
}

/// Scopes as a JSON array or a space-separated string.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
enum ScopeList {
    List(Vec<String>),
    Text(String),
}

impl ScopeList {
    fn names(self) -> Vec<String> {
        match self {
            ScopeList::List(list) => list,
            ScopeList::Text(text) => text.split_whitespace().map(str::to_owned).collect(),
        }
    }
}

/// HitKey's body (`name`, `redirect_uri`) and the richer one; unknown fields are ignored.
#[derive(Debug, Deserialize, Default, ToSchema)]
struct ClientBody {
    /// Required on creation.
    name: Option<String>,
    redirect_uri: Option<String>,
    redirect_uris: Option<Vec<String>>,
    homepage_url: Option<String>,
    scopes: Option<ScopeList>,
    confidential: Option<bool>,
    /// Access-token lifetime in seconds (up to 16 years).
    access_token_ttl: Option<u64>,
    /// Whether refresh tokens are issued (default true).
    refresh_tokens: Option<bool>,
    /// Whether the device authorization grant is enabled (default false).
    device_flow: Option<bool>,
    /// Whether authorization requests must be pushed to `/oauth/par` first (default false).
    require_pushed_authorization_requests: Option<bool>,
    /// Whether every token request must carry a DPoP proof, so every token is bound to the
    /// app's key (RFC 9449 §5.2; default false).
    dpop_bound_access_tokens: Option<bool>,
    /// Where the browser may go after a logout the app asks for (exact URIs).
    post_logout_redirect_uris: Option<Vec<String>>,
    /// Where latchkey POSTs logout tokens (`""` for none).
    backchannel_logout_uri: Option<String>,
    /// Where latchkey POSTs the app's events, signed (`""` for none).
    webhook_url: Option<String>,
}

impl ClientBody {
    /// `redirect_uri` first, then `redirect_uris`; `None` when the body names neither.
    fn redirect_uris(&mut self) -> Option<Vec<String>> {
        let mut uris: Vec<String> = self.redirect_uri.take().into_iter().collect();
        uris.extend(self.redirect_uris.take().unwrap_or_default());
        (!uris.is_empty()).then_some(uris)
    }

    /// Apply this body over `base` (an existing app's values, or defaults for a new one).
    fn over(mut self, base: AppInput) -> AppInput {
        AppInput {
            redirect_uris: self.redirect_uris().unwrap_or(base.redirect_uris),
            name: self.name.unwrap_or(base.name),
            homepage_url: self.homepage_url.unwrap_or(base.homepage_url),
            scopes: self.scopes.map(ScopeList::names).unwrap_or(base.scopes),
            confidential: self.confidential.unwrap_or(base.confidential),
            access_token_ttl: self.access_token_ttl.or(base.access_token_ttl),
            issue_refresh: self.refresh_tokens.or(base.issue_refresh),
            device_flow: self.device_flow.or(base.device_flow),
            require_par: self
                .require_pushed_authorization_requests
                .or(base.require_par),
            dpop_bound: self.dpop_bound_access_tokens.or(base.dpop_bound),
            post_logout_redirect_uris: self
                .post_logout_redirect_uris
                .unwrap_or(base.post_logout_redirect_uris),
            backchannel_logout_uri: self
                .backchannel_logout_uri
                .unwrap_or(base.backchannel_logout_uri),
            webhook_url: self.webhook_url.unwrap_or(base.webhook_url),
        }
    }
}

/// The current values of `app`, as input for a partial update.
pub fn input_of(app: &App) -> AppInput {
    AppInput {
        name: app.name.clone(),
        homepage_url: app.homepage_url.clone(),
        redirect_uris: app.redirect_uris.clone(),
        scopes: app.scopes.to_vec(),
        confidential: app.confidential,
        access_token_ttl: u64::try_from(app.access_token_ttl).ok(),
        issue_refresh: Some(app.issue_refresh),
        device_flow: Some(app.device_flow),
        require_par: Some(app.require_par),
        dpop_bound: Some(app.dpop_bound),
        post_logout_redirect_uris: app.post_logout_redirect_uris.clone(),
        backchannel_logout_uri: app.backchannel_logout_uri.clone(),
        webhook_url: app.webhook_url.clone(),
    }
}

fn origin(headers: &HeaderMap) -> Origin<'_> {
    Origin {
        ip: "",
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    }
}

fn default_ttl(state: &AppState) -> u64 {
    state.config.access_token_ttl.as_secs()
}

/// Register an app. Confidential apps get a secret, shown in this answer only.
#[utoipa::path(post, path = "/oauth/clients", tag = "clients", request_body = ClientBody,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = Client), crate::api::openapi::ApiErrors))]
async fn create(
    State(state): State<AppState>,
    caller: ApiUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ClientBody>,
) -> Result<Response, ApiError> {
    caller.require_scope("apps")?;
    let defaults = AppInput {
        confidential: true,
        ..Default::default()
    };
    let input = body.over(defaults);
    let (app, secret) = apps::create(
        &state.store,
        &caller.user,
        &input,
        default_ttl(&state),
        origin(&headers),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(client_json(&app, secret.as_ref())),
    )
        .into_response())
}

/// The caller's apps (every app, for an administrator).
#[utoipa::path(get, path = "/oauth/clients", tag = "clients", security(("bearer" = [])),
    responses((status = 200, description = "Apps", body = ClientList), crate::api::openapi::ApiErrors))]
async fn list(State(state): State<AppState>, caller: ApiUser) -> Result<Response, ApiError> {
    caller.require_scope("apps")?;
    let apps = apps::list(&state.store, &caller.user).await?;
    let clients: Vec<Value> = apps.iter().map(|a| client_json(a, None)).collect();
    Ok(axum::Json(json!({ "clients": clients })).into_response())
}

/// The app `id`, if the caller's credential has the `apps` scope and the caller may manage it.
async fn managed(state: &AppState, caller: &ApiUser, id: &str) -> Result<App, ApiError> {
    caller.require_scope("apps")?;
    Ok(apps::find(&state.store, &caller.user, id).await?)
}

/// One app.
#[utoipa::path(get, path = "/oauth/clients/{id}", tag = "clients", security(("bearer" = [])),
    params(("id" = String, Path, description = "The app's UUID")),
    responses((status = 200, description = "The app", body = Client), crate::api::openapi::ApiErrors))]
async fn show(
    State(state): State<AppState>,
    caller: ApiUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let app = managed(&state, &caller, &id).await?;
    Ok(axum::Json(client_json(&app, None)).into_response())
}

/// Change an app: only the fields sent change. Renaming a verified app needs an administrator.
#[utoipa::path(patch, path = "/oauth/clients/{id}", tag = "clients", security(("bearer" = [])),
    params(("id" = String, Path, description = "The app's UUID")), request_body = ClientBody,
    responses((status = 200, description = "The changed app (with a new secret when it became confidential)", body = Client), crate::api::openapi::ApiErrors))]
async fn update(
    State(state): State<AppState>,
    caller: ApiUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ClientBody>,
) -> Result<Response, ApiError> {
    let app = managed(&state, &caller, &id).await?;
    let input = body.over(input_of(&app));
    let (app, secret) = apps::update(
        &state.store,
        &caller.user,
        &app,
        &input,
        default_ttl(&state),
        origin(&headers),
    )
    .await?;
    Ok(axum::Json(client_json(&app, secret.as_ref())).into_response())
}

/// Delete an app, its grants and its tokens.
#[utoipa::path(delete, path = "/oauth/clients/{id}", tag = "clients", security(("bearer" = [])),
    params(("id" = String, Path, description = "The app's UUID")),
    responses((status = 204, description = "Deleted"), crate::api::openapi::ApiErrors))]
async fn remove(
    State(state): State<AppState>,
    caller: ApiUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let app = managed(&state, &caller, &id).await?;
    apps::delete(&state.store, &caller.user, &app, origin(&headers)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A new client secret, returned once; the old one stops working at once.
#[utoipa::path(post, path = "/oauth/clients/{id}/secret", tag = "clients", security(("bearer" = [])),
    params(("id" = String, Path, description = "The app's UUID")),
    responses((status = 200, description = "The app with its new `client_secret`", body = Client), crate::api::openapi::ApiErrors))]
async fn reset_secret(
    State(state): State<AppState>,
    caller: ApiUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let app = managed(&state, &caller, &id).await?;
    let secret = apps::reset_secret(&state.store, &caller.user, &app, origin(&headers)).await?;
    Ok(axum::Json(client_json(&app, Some(&secret))).into_response())
}

/// Revoke every user token and grant of the app: users must authorize it again.
#[utoipa::path(post, path = "/oauth/clients/{id}/revoke_tokens", tag = "clients", security(("bearer" = [])),
    params(("id" = String, Path, description = "The app's UUID")),
    responses((status = 200, description = "How many were revoked", body = RevokedTokens), crate::api::openapi::ApiErrors))]
async fn revoke_tokens(
    State(state): State<AppState>,
    caller: ApiUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let app = managed(&state, &caller, &id).await?;
    let revoked = apps::revoke_tokens(&state.store, &caller.user, &app, origin(&headers)).await?;
    Ok(
        axum::Json(json!({"revoked_tokens": revoked.tokens, "revoked_grants": revoked.grants}))
            .into_response(),
    )
}
