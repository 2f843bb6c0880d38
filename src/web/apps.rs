//! My OAuth Apps (`/oauth/applications`): list, create, show (secret once), edit, reset the
//! secret, revoke every user token, delete.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::{field_error, fmt_time, render};
use crate::app::AppState;
use crate::apps::{self, AppsError, Origin};
use crate::domain::app::{AppInput, split_lines};
use crate::domain::scope;
use crate::domain::secret::Secret;
use crate::domain::user::{FieldError, User};
use crate::http::csrf::NoFields;
use crate::http::{CsrfForm, Ctx, PageError};
use crate::store::App;
use crate::store::deliveries::Delivery;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth/applications", get(list).post(create))
        .route("/oauth/applications/new", get(new_form))
        .route("/oauth/applications/{id}", get(show).post(update))
        .route("/oauth/applications/{id}/edit", get(edit_form))
        .route(
            "/oauth/applications/{id}/secret",
            post(reset_secret).get(back_to_app),
        )
        .route(
            "/oauth/applications/{id}/revoke_tokens",
            post(revoke_tokens).get(back_to_app),
        )
        .route(
            "/oauth/applications/{id}/delete",
            get(confirm_delete).post(delete),
        )
}

impl From<AppsError> for PageError {
    fn from(e: AppsError) -> Self {
        match e {
            AppsError::NotFound => PageError::NotFound,
            AppsError::NameLocked | AppsError::NoSecret => PageError::Forbidden,
            AppsError::Invalid(_) => PageError::BadRequest,
            AppsError::Database(e) => PageError::Database(e),
        }
    }
}

async fn back_to_app(Path(id): Path<String>) -> Redirect {
    Redirect::to(&format!(
        "/oauth/applications/{}",
        crate::http::ctx::urlencode(&id)
    ))
}

#[derive(Template)]
#[template(path = "apps/list.html")]
struct ListPage {
    ctx: Ctx,
    apps: Vec<App>,
}

impl ListPage {
    fn created(&self, app: &App) -> String {
        fmt_time(app.created_at)
    }
}

async fn list(State(state): State<AppState>, ctx: Ctx) -> Result<Response, PageError> {
    let user = ctx.require_user()?;
    let apps = state.store.apps_of_owner(&user.id).await?;
    render(ListPage { ctx, apps })
}

/// One checkbox of the scopes field.
struct ScopeChoice {
    name: &'static str,
    description: String,
    checked: bool,
}

/// The form's values as typed (kept when validation fails).
struct FormValues {
    name: String,
    homepage_url: String,
    redirect_uris: String,
    scopes: Vec<String>,
    confidential: bool,
    access_token_ttl: String,
    issue_refresh: bool,
    device_flow: bool,
    require_par: bool,
    dpop_bound: bool,
    post_logout_redirect_uris: String,
    backchannel_logout_uri: String,
    webhook_url: String,
}

#[derive(Template)]
#[template(path = "apps/form.html")]
struct FormPage {
    ctx: Ctx,
    /// `None` for a new app.
    app: Option<App>,
    values: FormValues,
    /// A verified app's name is locked for its owner.
    name_locked: bool,
    errors: Vec<FieldError>,
}

impl FormPage {
    fn error(&self, field: &str) -> Option<String> {
        field_error(&self.ctx, &self.errors, field)
    }

    fn scope_choices(&self) -> Vec<ScopeChoice> {
        scope::KNOWN
            .iter()
            .map(|&name| ScopeChoice {
                name,
                description: self.ctx.t(scope::description_key(name)),
                checked: self.values.scopes.iter().any(|s| s == name),
            })
            .collect()
    }

    fn action(&self) -> String {
        match &self.app {
            Some(app) => format!("/oauth/applications/{}", app.id),
            None => "/oauth/applications".to_owned(),
        }
    }
}

fn values_of(app: &App) -> FormValues {
    FormValues {
        name: app.name.clone(),
        homepage_url: app.homepage_url.clone(),
        redirect_uris: app.redirect_uris.join("\n"),
        scopes: app.scopes.to_vec(),
        confidential: app.confidential,
        access_token_ttl: app.access_token_ttl.to_string(),
        issue_refresh: app.issue_refresh,
        device_flow: app.device_flow,
        require_par: app.require_par,
        dpop_bound: app.dpop_bound,
        post_logout_redirect_uris: app.post_logout_redirect_uris.join("\n"),
        backchannel_logout_uri: app.backchannel_logout_uri.clone(),
        webhook_url: app.webhook_url.clone(),
    }
}

async fn new_form(State(state): State<AppState>, ctx: Ctx) -> Result<Response, PageError> {
    ctx.require_user()?;
    let values = FormValues {
        name: String::new(),
        homepage_url: String::new(),
        redirect_uris: String::new(),
        scopes: vec![scope::DEFAULT.to_owned()],
        confidential: true,
        access_token_ttl: state.config.access_token_ttl.as_secs().to_string(),
        issue_refresh: true,
        device_flow: false,
        require_par: false,
        dpop_bound: false,
        post_logout_redirect_uris: String::new(),
        backchannel_logout_uri: String::new(),
        webhook_url: String::new(),
    };
    render(FormPage {
        ctx,
        app: None,
        values,
        name_locked: false,
        errors: Vec::new(),
    })
}

/// Read the app form. Fields repeat (`scopes`), so it arrives as pairs.
fn read_form(
    pairs: &[(String, String)],
    locked_name: Option<&str>,
) -> (FormValues, AppInput, Vec<FieldError>) {
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let values = FormValues {
        // A disabled (locked) name field is not submitted: keep the app's name.
        name: locked_name
            .map(str::to_owned)
            .or_else(|| get("name").map(str::to_owned))
            .unwrap_or_default(),
        homepage_url: get("homepage_url").unwrap_or("").to_owned(),
        redirect_uris: get("redirect_uris").unwrap_or("").to_owned(),
        scopes: pairs
            .iter()
            .filter(|(k, _)| k == "scopes")
            .map(|(_, v)| v.clone())
            .collect(),
        confidential: get("confidential").is_some(),
        access_token_ttl: get("access_token_ttl").unwrap_or("").trim().to_owned(),
        issue_refresh: get("issue_refresh").is_some(),
        device_flow: get("device_flow").is_some(),
        require_par: get("require_par").is_some(),
        dpop_bound: get("dpop_bound").is_some(),
        post_logout_redirect_uris: get("post_logout_redirect_uris").unwrap_or("").to_owned(),
        backchannel_logout_uri: get("backchannel_logout_uri")
            .unwrap_or("")
            .trim()
            .to_owned(),
        webhook_url: get("webhook_url").unwrap_or("").trim().to_owned(),
    };
    let mut errors = Vec::new();
    let ttl = if values.access_token_ttl.is_empty() {
        None
    } else {
        match values.access_token_ttl.parse::<u64>() {
            Ok(ttl) => Some(ttl),
            Err(_) => {
                errors.push(FieldError::new("access_token_ttl", "error-ttl-range"));
                None
            }
        }
    };
    let input = AppInput {
        name: values.name.clone(),
        homepage_url: values.homepage_url.clone(),
        redirect_uris: split_lines(&values.redirect_uris),
        scopes: values.scopes.clone(),
        confidential: values.confidential,
        access_token_ttl: ttl,
        issue_refresh: Some(values.issue_refresh),
        device_flow: Some(values.device_flow),
        require_par: Some(values.require_par),
        dpop_bound: Some(values.dpop_bound),
        post_logout_redirect_uris: split_lines(&values.post_logout_redirect_uris),
        backchannel_logout_uri: values.backchannel_logout_uri.clone(),
        webhook_url: values.webhook_url.clone(),
    };
    (values, input, errors)
}

fn form_errors(
    ctx: Ctx,
    app: Option<App>,
    values: FormValues,
    name_locked: bool,
    errors: Vec<FieldError>,
) -> Result<Response, PageError> {
    let page = FormPage {
        ctx,
        app,
        values,
        name_locked,
        errors,
    };
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(page)?).into_response())
}

async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let user = ctx.require_user()?.clone();
    let (values, input, mut errors) = read_form(&pairs, None);
    if !errors.is_empty() {
        return form_errors(ctx, None, values, false, errors);
    }
    match apps::create(
        &state.store,
        &user,
        &input,
        state.config.access_token_ttl.as_secs(),
        Origin::from(&ctx),
    )
    .await
    {
        Ok((app, secret)) => show_page(&state, ctx, app, secret, None, StatusCode::CREATED).await,
        Err(AppsError::Invalid(fields)) => {
            errors.extend(fields);
            form_errors(ctx, None, values, false, errors)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "apps/show.html")]
struct ShowPage {
    ctx: Ctx,
    app: App,
    /// Present only right after creation or a reset.
    secret: Option<String>,
    notice: Option<String>,
    created: String,
    /// The key its webhooks are signed with, when it has a webhook URL.
    webhook_secret: Option<String>,
    /// The newest deliveries to it (webhooks, logout tokens).
    deliveries: Vec<Delivery>,
}

impl ShowPage {
    fn scope_text(&self, name: &str) -> String {
        self.ctx.t(scope::description_key(name))
    }

    fn when(&self, unix: &i64) -> String {
        fmt_time(*unix)
    }
}

async fn show_page(
    state: &AppState,
    ctx: Ctx,
    app: App,
    secret: Option<Secret>,
    notice: Option<String>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let webhook_secret = if app.webhook_url.is_empty() {
        None
    } else {
        Some(crate::outbox::webhook_secret(state, &app.id).await?)
    };
    let page = ShowPage {
        deliveries: state.store.deliveries_of_app(&app.id, 20).await?,
        webhook_secret,
        ctx,
        created: fmt_time(app.created_at),
        secret: secret.map(|s| s.expose().to_owned()),
        app,
        notice,
    };
    Ok((status, render(page)?).into_response())
}

/// The app behind `id`, if the signed-in user may manage it (404 otherwise).
async fn load(state: &AppState, ctx: &Ctx, id: &str) -> Result<(User, App), PageError> {
    let user = ctx.require_user()?.clone();
    let app = apps::find(&state.store, &user, id).await?;
    Ok((user, app))
}

async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (_, app) = load(&state, &ctx, &id).await?;
    show_page(&state, ctx, app, None, None, StatusCode::OK).await
}

async fn edit_form(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (user, app) = load(&state, &ctx, &id).await?;
    let name_locked = app.verified && !user.admin;
    render(FormPage {
        ctx,
        values: values_of(&app),
        app: Some(app),
        name_locked,
        errors: Vec::new(),
    })
}

async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let (user, app) = load(&state, &ctx, &id).await?;
    let name_locked = app.verified && !user.admin;
    let (values, input, mut errors) = read_form(&pairs, name_locked.then_some(app.name.as_str()));
    if !errors.is_empty() {
        return form_errors(ctx, Some(app), values, name_locked, errors);
    }
    let ttl = state.config.access_token_ttl.as_secs();
    match apps::update(&state.store, &user, &app, &input, ttl, Origin::from(&ctx)).await {
        Ok((updated, Some(secret))) => {
            show_page(&state, ctx, updated, Some(secret), None, StatusCode::OK).await
        }
        Ok((updated, None)) => {
            Ok(Redirect::to(&format!("/oauth/applications/{}", updated.id)).into_response())
        }
        Err(AppsError::Invalid(fields)) => {
            errors.extend(fields);
            form_errors(ctx, Some(app), values, name_locked, errors)
        }
        Err(e) => Err(e.into()),
    }
}

async fn reset_secret(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    let (user, app) = load(&state, &ctx, &id).await?;
    let secret = apps::reset_secret(&state.store, &user, &app, Origin::from(&ctx)).await?;
    let notice = Some(ctx.t("apps-secret-reset-done"));
    show_page(&state, ctx, app, Some(secret), notice, StatusCode::OK).await
}

async fn revoke_tokens(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    let (user, app) = load(&state, &ctx, &id).await?;
    let revoked = apps::revoke_tokens(&state.store, &user, &app, Origin::from(&ctx)).await?;
    let notice = Some(ctx.t_args(
        "apps-revoked-done",
        &[
            ("tokens", &revoked.tokens.to_string()),
            ("grants", &revoked.grants.to_string()),
        ],
    ));
    show_page(&state, ctx, app, None, notice, StatusCode::OK).await
}

#[derive(Template)]
#[template(path = "apps/delete.html")]
struct DeletePage {
    ctx: Ctx,
    app: App,
}

async fn confirm_delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (_, app) = load(&state, &ctx, &id).await?;
    render(DeletePage { ctx, app })
}

async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    let (user, app) = load(&state, &ctx, &id).await?;
    apps::delete(&state.store, &user, &app, Origin::from(&ctx)).await?;
    Ok(Redirect::to("/oauth/applications").into_response())
}
