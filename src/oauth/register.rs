//! Dynamic client registration (RFC 7591) at `POST /oauth/register`, and its management
//! (RFC 7592) at `GET|PUT|DELETE /oauth/register/{client_id}` with the registration access
//! token the registration answered.
//!
//! Who may register is the operator's choice (`client_registration`): nobody, anyone (the app
//! then has no owner: its consent page says it was registered by software, and registrations
//! and its token requests are limited more tightly), or holders of a personal access token with
//! scope `apps` (the token's user owns the app, as if made on the apps page). The body is RFC
//! 7591's metadata, or the client API's (`name`, `redirect_uri(s)`, `scopes`, `confidential`).
//!
//! The client secret and the registration access token are stored only as hashes, so reads
//! answer neither the secret (RFC 7592 allows leaving it out) nor a token other than the one
//! presented.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::config::ClientRegistration;
use crate::domain::app::AppInput;
use crate::domain::secret::{self, Secret, TokenKind};
use crate::domain::user::{FieldError, User};
use crate::http::api::{ApiError, bearer_token, presented_token};
use crate::http::client_ip;
use crate::http::error::json_error;
use crate::store::{App, AuditEvent, AuditKind, Registration, now};

/// Registrations allowed per minute and client IP when rate limits are on.
pub const REGISTRATIONS_PER_MINUTE: u32 = 10;

/// Metadata kept as given and answered back; each a string (a URI or a version) except
/// `contacts`, a list of strings.
const KEPT: [&str; 6] = [
    "logo_uri",
    "tos_uri",
    "policy_uri",
    "software_id",
    "software_version",
    "contacts",
];

/// RFC 7591 §2 client metadata, or the client API's body (`name`, `redirect_uri`, `scopes`,
/// `confidential`). Unknown members are ignored.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ClientMetadata {
    redirect_uris: Option<Vec<String>>,
    /// `client_secret_basic` (the default), `client_secret_post`, or `none` (a public app).
    token_endpoint_auth_method: Option<String>,
    /// `authorization_code` (always), `refresh_token`, `client_credentials` (confidential apps),
    /// `urn:ietf:params:oauth:grant-type:device_code`.
    grant_types: Option<Vec<String>>,
    /// Only `code`.
    response_types: Option<Vec<String>>,
    client_name: Option<String>,
    client_uri: Option<String>,
    /// Space-separated scopes the app may ask for.
    scope: Option<String>,
    logo_uri: Option<String>,
    tos_uri: Option<String>,
    policy_uri: Option<String>,
    contacts: Option<Vec<String>>,
    software_id: Option<String>,
    software_version: Option<String>,
    /// RFC 9449 §5.2: every token must be DPoP-bound.
    dpop_bound_access_tokens: Option<bool>,
    /// RFC 9126 §6: authorization requests must be pushed.
    require_pushed_authorization_requests: Option<bool>,
    /// OpenID Connect RP-Initiated Logout: where the browser may go after a logout.
    post_logout_redirect_uris: Option<Vec<String>>,
    /// OpenID Connect Back-Channel Logout: where logout tokens are POSTed.
    backchannel_logout_uri: Option<String>,
    /// On update (RFC 7592 §2.2): must be the app's.
    client_id: Option<String>,
    /// On update: if given, must be the app's current secret.
    client_secret: Option<String>,
    /// The client API's names.
    name: Option<String>,
    redirect_uri: Option<String>,
    homepage_url: Option<String>,
    scopes: Option<Value>,
    confidential: Option<bool>,
}

/// An RFC 7591 §3.2.1 answer: the app's client ID, its secret (only when just made), the token
/// and URL that manage it, and its metadata.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ClientInformation {
    client_id: String,
    client_secret: Option<String>,
    client_id_issued_at: i64,
    /// 0: the secret does not expire.
    client_secret_expires_at: Option<i64>,
    /// `lk_rat_…`: the bearer token for the registration client URI.
    registration_access_token: String,
    registration_client_uri: String,
    client_name: String,
    redirect_uris: Vec<String>,
    token_endpoint_auth_method: String,
    grant_types: Vec<String>,
    response_types: Vec<String>,
    scope: String,
    client_uri: Option<String>,
    dpop_bound_access_tokens: Option<bool>,
    require_pushed_authorization_requests: Option<bool>,
}

/// Any answer but success: an RFC 7591 §3.2.2 error, `invalid_token`, or another refusal.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl Refusal {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Refusal {
        Refusal {
            status,
            error,
            description: description.into(),
        }
    }

    /// `400` with `error` (`invalid_client_metadata`, `invalid_redirect_uri`).
    fn bad(error: &'static str, description: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, error, description)
    }

    fn metadata(description: impl Into<String>) -> Refusal {
        Refusal::bad("invalid_client_metadata", description)
    }

    fn invalid_token() -> Refusal {
        Refusal::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the registration access token is invalid",
        )
    }
}

impl From<sqlx::Error> for Refusal {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database error at the registration endpoint");
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal error",
        )
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = json_error(self.status, self.error, &self.description);
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"latchkey\", error=\"invalid_token\""),
            );
        }
        response
    }
}

fn parse(parts: &Parts, body: &Bytes) -> Result<ClientMetadata, Refusal> {
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_client_metadata",
            "send the client metadata as application/json",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| Refusal::metadata(format!("the client metadata is not valid: {e}")))
}

const DEVICE_CODE: &str = super::device::GRANT_TYPE;

/// The app input and kept metadata `body` describes, or the RFC 7591 error.
fn input_of(body: ClientMetadata) -> Result<(AppInput, Map<String, Value>), Refusal> {
    let bad = |description: &str| Refusal::metadata(description);
    let confidential = match body.token_endpoint_auth_method.as_deref() {
        None => body.confidential.unwrap_or(true),
        Some("client_secret_basic" | "client_secret_post") => true,
        Some("none") => false,
        Some(_) => {
            return Err(bad(
                "token_endpoint_auth_method must be client_secret_basic, client_secret_post or none",
            ));
        }
    };
    if body
        .response_types
        .as_ref()
        .is_some_and(|r| r.iter().any(|t| t != "code"))
    {
        return Err(bad("response_types may only be code"));
    }
    let grants = body
        .grant_types
        .unwrap_or_else(|| vec!["authorization_code".to_owned(), "refresh_token".to_owned()]);
    for grant in &grants {
        match grant.as_str() {
            "authorization_code" | "refresh_token" => {}
            "client_credentials" if confidential => {}
            "client_credentials" => return Err(bad("client_credentials needs a confidential app")),
            g if g == DEVICE_CODE => {}
            _ => return Err(bad("grant_types has a grant latchkey does not support")),
        }
    }
    let mut redirect_uris: Vec<String> = body.redirect_uri.into_iter().collect();
    redirect_uris.extend(body.redirect_uris.unwrap_or_default());
    let scopes = match (body.scope, body.scopes) {
        (Some(scope), _) => scope.split_whitespace().map(str::to_owned).collect(),
        (None, Some(Value::String(s))) => s.split_whitespace().map(str::to_owned).collect(),
        (None, Some(Value::Array(list))) => list
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| bad("scopes must be strings"))?,
        (None, Some(_)) => return Err(bad("scopes must be a list or a string")),
        (None, None) => Vec::new(),
    };
    let name = body.client_name.or(body.name).unwrap_or_else(|| {
        redirect_uris
            .first()
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "Unnamed app".to_owned())
    });
    let mut kept = Map::new();
    for (key, value) in [
        ("logo_uri", body.logo_uri),
        ("tos_uri", body.tos_uri),
        ("policy_uri", body.policy_uri),
        ("software_id", body.software_id),
        ("software_version", body.software_version),
    ] {
        if let Some(value) = value {
            if value.len() > 2000 || value.chars().any(char::is_control) {
                return Err(bad(&format!("{key} is too long or not text")));
            }
            if key.ends_with("_uri")
                && !url::Url::parse(&value).is_ok_and(|u| matches!(u.scheme(), "https" | "http"))
            {
                return Err(bad(&format!("{key} must be an http(s) URL")));
            }
            kept.insert(key.to_owned(), Value::String(value));
        }
    }
    if let Some(contacts) = body.contacts {
        if contacts.len() > 10 || contacts.iter().any(|c| c.len() > 320) {
            return Err(bad("contacts: at most 10, each at most 320 characters"));
        }
        kept.insert("contacts".to_owned(), json!(contacts));
    }
    let input = AppInput {
        name,
        homepage_url: body.client_uri.or(body.homepage_url).unwrap_or_default(),
        redirect_uris,
        scopes,
        confidential,
        access_token_ttl: None,
        issue_refresh: Some(grants.iter().any(|g| g == "refresh_token")),
        device_flow: Some(grants.iter().any(|g| g == DEVICE_CODE)),
        require_par: body.require_pushed_authorization_requests,
        dpop_bound: body.dpop_bound_access_tokens,
        post_logout_redirect_uris: body.post_logout_redirect_uris.unwrap_or_default(),
        backchannel_logout_uri: body.backchannel_logout_uri.unwrap_or_default(),
        webhook_url: String::new(),
    };
    Ok((input, kept))
}

/// Field errors as RFC 7591 answers: a redirect URI problem is `invalid_redirect_uri`.
fn invalid(errors: Vec<FieldError>) -> Refusal {
    let describe = |e: &FieldError| format!("{}: {}", e.field, crate::i18n::Lang::En.t(e.message));
    match errors.iter().find(|e| e.field == "redirect_uris") {
        Some(e) => Refusal::bad("invalid_redirect_uri", describe(e)),
        None => Refusal::metadata(errors.iter().map(describe).collect::<Vec<_>>().join("; ")),
    }
}

/// The app's client information, with `token` (the registration access token the caller has).
fn information(state: &AppState, app: &App, token: &str, secret: Option<&Secret>) -> Value {
    let mut grants = vec!["authorization_code"];
    if app.issue_refresh {
        grants.push("refresh_token");
    }
    if app.confidential {
        grants.push("client_credentials");
    }
    if app.device_flow {
        grants.push(DEVICE_CODE);
    }
    let mut info = json!({
        "client_id": app.client_id,
        "client_id_issued_at": app.created_at,
        "registration_access_token": token,
        "registration_client_uri": format!("{}/oauth/register/{}", state.config.issuer, app.client_id),
        "client_name": app.name,
        "redirect_uris": app.redirect_uris,
        "token_endpoint_auth_method": if app.confidential { "client_secret_basic" } else { "none" },
        "grant_types": grants,
        "response_types": ["code"],
        "scope": app.scopes.to_string(),
    });
    if !app.homepage_url.is_empty() {
        info["client_uri"] = json!(app.homepage_url);
    }
    if app.dpop_bound {
        info["dpop_bound_access_tokens"] = json!(true);
    }
    if app.require_par {
        info["require_pushed_authorization_requests"] = json!(true);
    }
    if !app.post_logout_redirect_uris.is_empty() {
        info["post_logout_redirect_uris"] = json!(app.post_logout_redirect_uris);
    }
    if !app.backchannel_logout_uri.is_empty() {
        info["backchannel_logout_uri"] = json!(app.backchannel_logout_uri);
    }
    if let Some(secret) = secret {
        info["client_secret"] = json!(secret.expose());
        info["client_secret_expires_at"] = json!(0);
    }
    for (key, value) in &app.client_metadata {
        if KEPT.contains(&key.as_str()) {
            info[key] = value.clone();
        }
    }
    info
}

fn answer(status: StatusCode, info: Value) -> Response {
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        axum::Json(info),
    )
        .into_response()
}

/// The user behind a personal access token with scope `apps` in the request, if any;
/// `Err` for a token that is not one.
async fn token_owner(state: &AppState, parts: &Parts) -> Result<Option<User>, Refusal> {
    if presented_token(parts).is_none() {
        return Ok(None);
    }
    let pat = bearer_token(parts)
        .and_then(|text| secret::parse(TokenKind::PersonalAccessToken, text))
        .ok_or_else(Refusal::invalid_token)?;
    match state.store.authenticate_pat(&pat, now()).await? {
        Some((pat, user)) if pat.scopes.contains("apps") => Ok(Some(user)),
        _ => Err(Refusal::invalid_token()),
    }
}

/// Register an app (RFC 7591 §3.1).
#[utoipa::path(post, path = "/oauth/register", tag = "oauth",
    request_body(content = ClientMetadata, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "Registered: keep `client_secret` and `registration_access_token`, they are shown only now", body = ClientInformation),
        (status = 400, description = "`invalid_redirect_uri` or `invalid_client_metadata`", body = crate::api::openapi::ErrorBody),
        (status = 401, description = "`invalid_token`: this server registers only with a personal access token with scope `apps`", body = crate::api::openapi::ErrorBody),
        (status = 403, description = "`access_denied`: registration is off on this server", body = crate::api::openapi::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::api::openapi::ErrorBody),
        (status = 429, description = "`rate_limited`; see `Retry-After`", body = crate::api::openapi::ErrorBody),
    ))]
pub async fn register(
    State(state): State<AppState>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, Refusal> {
    let mode = state.config.client_registration;
    if mode == ClientRegistration::Off {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            "dynamic client registration is off on this server",
        ));
    }
    let ip = client_ip(&parts, state.config.trust_proxy);
    if let Err(wait) = state.limits.register.check(&[&format!("ip:{ip}")]).await {
        return Ok(ApiError::TooManyRequests { retry_after: wait }.into_response());
    }
    let owner = token_owner(&state, &parts).await?;
    if owner.is_none() && mode == ClientRegistration::Token {
        return Err(Refusal::invalid_token());
    }
    let (input, kept) = input_of(parse(&parts, &body)?)?;
    let draft = input
        .validate(state.config.access_token_ttl.as_secs())
        .map_err(invalid)?;
    let token = secret::generate(TokenKind::RegistrationAccessToken);
    let registration = Registration {
        token_hash: &token.hash(),
        metadata: &kept,
    };
    let t = now();
    let owner_id = owner.as_ref().map(|u| u.id.as_str());
    let (app, client_secret) = state
        .store
        .register_app(owner_id, &draft, &registration, t)
        .await?;
    let mut event = AuditEvent::new(AuditKind::AppCreated, &app.client_id).details(json!({
        "name": app.name,
        "confidential": app.confidential,
        "dynamic": true,
    }));
    event.ip = &ip;
    if let Some(owner) = &owner {
        event = event.by(&owner.id);
    }
    state.store.audit(event, t).await?;
    let info = information(&state, &app, token.expose(), client_secret.as_ref());
    Ok(answer(StatusCode::CREATED, info))
}

/// The app `client_id` names, if `parts` carries its registration access token.
async fn registered(
    state: &AppState,
    parts: &Parts,
    client_id: &str,
) -> Result<(App, String), Refusal> {
    let text = bearer_token(parts).ok_or_else(Refusal::invalid_token)?;
    let token = secret::parse(TokenKind::RegistrationAccessToken, text)
        .ok_or_else(Refusal::invalid_token)?;
    let app = state
        .store
        .app_by_registration_token(&token.hash())
        .await?
        .filter(|app| app.client_id == client_id)
        .ok_or_else(Refusal::invalid_token)?;
    Ok((app, token.expose().to_owned()))
}

/// Read a registered app's metadata (RFC 7592 §2.1).
#[utoipa::path(get, path = "/oauth/register/{client_id}", tag = "oauth",
    params(("client_id" = String, Path, description = "The app's client ID")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The app's metadata (never its secret)", body = ClientInformation),
        (status = 401, description = "`invalid_token`", body = crate::api::openapi::ErrorBody),
    ))]
pub async fn read_registration(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    parts: Parts,
) -> Result<Response, Refusal> {
    let (app, token) = registered(&state, &parts, &client_id).await?;
    Ok(answer(
        StatusCode::OK,
        information(&state, &app, &token, None),
    ))
}

/// Replace a registered app's metadata (RFC 7592 §2.2): what the body leaves out takes its
/// default.
#[utoipa::path(put, path = "/oauth/register/{client_id}", tag = "oauth",
    params(("client_id" = String, Path, description = "The app's client ID")),
    request_body(content = ClientMetadata, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated; `client_secret` only if the app just became confidential", body = ClientInformation),
        (status = 400, description = "`invalid_redirect_uri`, `invalid_client_metadata`, or a `client_id`/`client_secret` that is not the app's", body = crate::api::openapi::ErrorBody),
        (status = 401, description = "`invalid_token`", body = crate::api::openapi::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::api::openapi::ErrorBody),
    ))]
pub async fn replace_registration(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, Refusal> {
    let (app, token) = registered(&state, &parts, &client_id).await?;
    let body = parse(&parts, &body)?;
    if body
        .client_id
        .as_deref()
        .is_some_and(|id| id != app.client_id)
    {
        return Err(Refusal::metadata("client_id is not this app's"));
    }
    if let Some(secret) = &body.client_secret
        && !crate::store::Store::client_secret_matches(&app, secret)
    {
        return Err(Refusal::metadata("client_secret is not this app's"));
    }
    let (input, kept) = input_of(body)?;
    let draft = input
        .validate(state.config.access_token_ttl.as_secs())
        .map_err(invalid)?;
    if app.verified && draft.name != app.name {
        return Err(Refusal::metadata(
            "this app is verified: only an administrator can rename it",
        ));
    }
    let t = now();
    let (updated, secret) = state.store.update_app(&app, &draft, t).await?;
    state.store.set_client_metadata(&updated.id, &kept).await?;
    let event = AuditEvent::new(AuditKind::AppUpdated, &app.client_id)
        .details(json!({"name": updated.name, "dynamic": true}));
    state.store.audit(event, t).await?;
    let updated = App {
        client_metadata: kept,
        ..updated
    };
    Ok(answer(
        StatusCode::OK,
        information(&state, &updated, &token, secret.as_ref()),
    ))
}

/// Delete a registered app, and with it every token and grant (RFC 7592 §2.3).
#[utoipa::path(delete, path = "/oauth/register/{client_id}", tag = "oauth",
    params(("client_id" = String, Path, description = "The app's client ID")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "`invalid_token`", body = crate::api::openapi::ErrorBody),
    ))]
pub async fn delete_registration(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    parts: Parts,
) -> Result<Response, Refusal> {
    let (app, _) = registered(&state, &parts, &client_id).await?;
    state.store.delete_app(&app.id).await?;
    let event = AuditEvent::new(AuditKind::AppDeleted, &app.client_id)
        .details(json!({"name": app.name, "dynamic": true}));
    state.store.audit(event, now()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
