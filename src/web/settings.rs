//! `/settings`: profile and password.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::{field_error, fmt_time, render};
use crate::app::AppState;
use crate::domain::password;
use crate::domain::scope::{self, Scopes};
use crate::domain::user::{FieldError, Profile, User, parse_text, parse_timezone};
use crate::http::csrf::NoFields;
use crate::http::{CsrfForm, Ctx, PageError};
use crate::store::{AuditEvent, AuditKind, now};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings", get(settings_page))
        .route(
            "/settings/profile",
            post(save_profile).get(back_to_settings),
        )
        .route(
            "/settings/password",
            post(change_password).get(back_to_settings),
        )
        .route("/settings/tokens", post(create_token).get(back_to_settings))
        .route(
            "/settings/api_key",
            post(regenerate_api_key).get(back_to_settings),
        )
        .route(
            "/settings/projects",
            post(archive_project).get(back_to_settings),
        )
        .route(
            "/settings/tokens/{id}/revoke",
            post(revoke_token).get(back_to_settings),
        )
}

async fn back_to_settings() -> Redirect {
    Redirect::to("/settings")
}

struct ProfileField {
    name: &'static str,
    label: &'static str,
    autocomplete: &'static str,
    value: String,
}

/// A personal access token as listed on the page.
struct TokenRow {
    id: String,
    name: String,
    scopes: String,
    created: String,
    last_used: String,
    expires: String,
    live: bool,
}

struct ScopeChoice {
    name: &'static str,
    description: String,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    ctx: Ctx,
    email: String,
    notice: Option<String>,
    profile_fields: Vec<ProfileField>,
    errors: Vec<FieldError>,
    tokens: Vec<TokenRow>,
    /// A token just created: shown once.
    new_token: Option<String>,
    token_name: String,
    /// The WakaTime API key for editor plugins.
    api_key: String,
    /// Projects with heartbeats, and whether each is archived.
    projects: Vec<(String, bool)>,
}

impl SettingsPage {
    /// The page for `user`, with `profile` in the form (the stored one, or what was typed).
    async fn load(
        state: &AppState,
        ctx: Ctx,
        user: &User,
        profile: &Profile,
    ) -> Result<Self, PageError> {
        let t = now();
        let never = ctx.t("never");
        let tokens = state
            .store
            .pats_of_user(&user.id)
            .await?
            .into_iter()
            .map(|p| TokenRow {
                live: p.live(t),
                id: p.id,
                name: p.name,
                scopes: p.scopes.to_string(),
                created: fmt_time(p.created_at),
                last_used: p
                    .last_used_at
                    .map(fmt_time)
                    .unwrap_or_else(|| never.clone()),
                expires: p.expires_at.map(fmt_time).unwrap_or_else(|| never.clone()),
            })
            .collect();
        let mut page = SettingsPage::new(ctx, user, profile);
        page.tokens = tokens;
        page.api_key = state.store.api_key(&user.id).await?;
        page.projects = state
            .store
            .projects(&user.id)
            .await?
            .into_iter()
            .map(|p| (p.name, p.archived))
            .collect();
        Ok(page)
    }

    fn token_scopes(&self) -> Vec<ScopeChoice> {
        scope::PAT_SCOPES
            .iter()
            .map(|&name| ScopeChoice {
                name,
                description: self.ctx.t(scope::description_key(name)),
            })
            .collect()
    }

    fn new(ctx: Ctx, user: &User, profile: &Profile) -> Self {
        let field = |name, label, autocomplete, value: &str| ProfileField {
            name,
            label,
            autocomplete,
            value: value.to_owned(),
        };
        SettingsPage {
            email: user.email.clone(),
            notice: None,
            profile_fields: vec![
                field("name", "field-name", "name", &profile.name),
                field(
                    "given_name",
                    "field-given-name",
                    "given-name",
                    &profile.given_name,
                ),
                field(
                    "family_name",
                    "field-family-name",
                    "family-name",
                    &profile.family_name,
                ),
                field(
                    "display_name",
                    "field-display-name",
                    "nickname",
                    &profile.display_name,
                ),
                field("slack_id", "field-slack-id", "off", &profile.slack_id),
                field(
                    "github_username",
                    "field-github-username",
                    "off",
                    &profile.github_username,
                ),
                field("timezone", "field-timezone", "off", &profile.timezone),
            ],
            errors: Vec::new(),
            tokens: Vec::new(),
            new_token: None,
            token_name: String::new(),
            api_key: String::new(),
            projects: Vec::new(),
            ctx,
        }
    }

    fn error(&self, field: &str) -> Option<String> {
        field_error(&self.ctx, &self.errors, field)
    }
}

fn profile_of(user: &User) -> Profile {
    Profile {
        name: user.name.clone(),
        given_name: user.given_name.clone(),
        family_name: user.family_name.clone(),
        display_name: user.display_name.clone(),
        slack_id: user.slack_id.clone(),
        github_username: user.github_username.clone(),
        timezone: user.timezone.clone(),
    }
}

#[derive(Deserialize)]
struct Saved {
    saved: Option<String>,
}

async fn settings_page(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(q): Query<Saved>,
) -> Result<Response, PageError> {
    let user = ctx.require_user()?.clone();
    let notice = match q.saved.as_deref() {
        Some("profile") => Some(ctx.t("settings-profile-saved")),
        Some("password") => Some(ctx.t("settings-password-changed")),
        Some("token-revoked") => Some(ctx.t("tokens-revoked")),
        Some("api-key") => Some(ctx.t("api-key-regenerated")),
        Some("projects") => Some(ctx.t("projects-saved")),
        _ => None,
    };
    let mut page = SettingsPage::load(&state, ctx, &user, &profile_of(&user)).await?;
    page.notice = notice;
    render(page)
}

/// Every field is required: a request missing one is malformed (400) rather than a request to
/// blank the field, so a broken client cannot wipe a profile.
#[derive(Deserialize)]
struct ProfileForm {
    name: String,
    given_name: String,
    family_name: String,
    display_name: String,
    slack_id: String,
    github_username: String,
    timezone: String,
}

fn parse_profile(form: &ProfileForm) -> Result<Profile, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut text = |field, value: &str, max| {
        parse_text(field, value, max)
            .map_err(|e| errors.push(e))
            .unwrap_or_default()
    };
    let profile = Profile {
        name: text("name", &form.name, 200),
        given_name: text("given_name", &form.given_name, 200),
        family_name: text("family_name", &form.family_name, 200),
        display_name: text("display_name", &form.display_name, 200),
        slack_id: text("slack_id", &form.slack_id, 64),
        github_username: text("github_username", &form.github_username, 39),
        timezone: parse_timezone(&form.timezone)
            .map_err(|e| errors.push(e))
            .unwrap_or_default(),
    };
    if errors.is_empty() {
        Ok(profile)
    } else {
        Err(errors)
    }
}

async fn save_profile(
    State(state): State<AppState>,
    ctx: Ctx,
    CsrfForm(form): CsrfForm<ProfileForm>,
) -> Result<Response, PageError> {
    let user = ctx.require_user()?.clone();
    match parse_profile(&form) {
        Ok(profile) => {
            state
                .store
                .update_profile(&user.id, &profile, now())
                .await?;
            Ok(Redirect::to("/settings?saved=profile").into_response())
        }
        Err(errors) => {
            // Keep what was typed, show each message beside its field.
            let typed = Profile {
                name: form.name,
                given_name: form.given_name,
                family_name: form.family_name,
                display_name: form.display_name,
                slack_id: form.slack_id,
                github_username: form.github_username,
                timezone: form.timezone,
            };
            let mut page = SettingsPage::load(&state, ctx, &user, &typed).await?;
            page.errors = errors;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(page)?).into_response())
        }
    }
}

#[derive(Deserialize)]
struct PasswordForm {
    current_password: String,
    new_password: String,
}

async fn change_password(
    State(state): State<AppState>,
    ctx: Ctx,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Result<Response, PageError> {
    let user = ctx.require_user()?.clone();
    state
        .limits
        .login
        .check(&[&format!("email:{}", user.email.to_lowercase())])
        .await
        .map_err(|retry_after| PageError::TooManyRequests { retry_after })?;
    let hash = state.store.password_hash(&user.id).await?;
    let mut errors = Vec::new();
    if !password::verify_blocking(form.current_password.clone(), hash).await {
        errors.push(FieldError::new("current_password", "error-password-wrong"));
    }
    match password::check_new(&form.new_password) {
        Ok(()) => {}
        Err(password::Weakness::TooShort) => {
            errors.push(FieldError::new("new_password", "error-password-short"))
        }
        Err(password::Weakness::TooLong) => {
            errors.push(FieldError::new("new_password", "error-password-long"))
        }
    }
    if !errors.is_empty() {
        let mut page = SettingsPage::load(&state, ctx, &user, &profile_of(&user)).await?;
        page.errors = errors;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(page)?).into_response());
    }
    let new_hash = password::hash_blocking(form.new_password).await?;
    state
        .store
        .set_password_hash(&user.id, &new_hash, now())
        .await?;
    if let Some(keep) = &ctx.session_hash {
        state.store.delete_other_sessions(&user.id, keep).await?;
    }
    state
        .store
        .audit(
            AuditEvent::new(AuditKind::PasswordChanged, &user.email)
                .from(&ctx)
                .by(&user.id),
            now(),
        )
        .await?;
    Ok(Redirect::to("/settings?saved=password").into_response())
}

/// Lifetimes offered for new tokens, in days (`0` = no expiry).
const TOKEN_LIFETIMES: [u32; 5] = [30, 90, 365, 7, 0];

async fn create_token(
    State(state): State<AppState>,
    ctx: Ctx,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let user = ctx.require_user()?.clone();
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let typed_name = get("token_name").unwrap_or("").to_owned();
    let mut errors = Vec::new();
    let name = match parse_text("token_name", &typed_name, 100) {
        Ok(name) if !name.is_empty() => name,
        Ok(_) => {
            errors.push(FieldError::new("token_name", "error-required"));
            String::new()
        }
        Err(e) => {
            errors.push(e);
            String::new()
        }
    };
    let scopes = Scopes::from_names(
        pairs
            .iter()
            .filter(|(k, _)| k == "token_scopes")
            .map(|(_, v)| v.as_str()),
        &scope::PAT_SCOPES,
    );
    let scopes = match scopes {
        Ok(s) if !s.is_empty() => s,
        _ => {
            errors.push(FieldError::new("token_scopes", "error-token-scopes"));
            Scopes::default()
        }
    };
    let days: u32 = get("expires_in_days")
        .and_then(|d| d.parse().ok())
        .unwrap_or(u32::MAX);
    if !TOKEN_LIFETIMES.contains(&days) {
        return Err(PageError::BadRequest);
    }
    if !errors.is_empty() {
        let mut page = SettingsPage::load(&state, ctx, &user, &profile_of(&user)).await?;
        page.errors = errors;
        page.token_name = typed_name;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(page)?).into_response());
    }
    let t = now();
    let expires_at = (days > 0).then(|| t + i64::from(days) * 24 * 3600);
    let (pat, token) = state
        .store
        .create_pat(&user.id, &name, &scopes, expires_at, t)
        .await?;
    let event = AuditEvent::new(AuditKind::PatCreated, &user.email)
        .from(&ctx)
        .by(&user.id)
        .details(serde_json::json!({"pat": pat.id, "scopes": pat.scopes.to_string()}));
    state.store.audit(event, t).await?;
    let mut page = SettingsPage::load(&state, ctx, &user, &profile_of(&user)).await?;
    page.new_token = Some(token.expose().to_owned());
    render(page)
}

async fn revoke_token(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    let user = ctx.require_user()?.clone();
    if !state.store.revoke_pat(&user.id, &id, now()).await? {
        return Err(PageError::NotFound);
    }
    let event = AuditEvent::new(AuditKind::PatRevoked, &user.email)
        .from(&ctx)
        .by(&user.id)
        .details(serde_json::json!({"pat": id}));
    state.store.audit(event, now()).await?;
    Ok(Redirect::to("/settings?saved=token-revoked").into_response())
}

async fn regenerate_api_key(
    State(state): State<AppState>,
    ctx: Ctx,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    let user = ctx.require_user()?.clone();
    state.store.regenerate_api_key(&user.id).await?;
    let event = AuditEvent::new(AuditKind::ApiKeyRegenerated, &user.email)
        .from(&ctx)
        .by(&user.id);
    state.store.audit(event, now()).await?;
    Ok(Redirect::to("/settings?saved=api-key#activity").into_response())
}

#[derive(Deserialize)]
struct ArchiveForm {
    project: String,
    archived: String,
}

async fn archive_project(
    State(state): State<AppState>,
    ctx: Ctx,
    CsrfForm(form): CsrfForm<ArchiveForm>,
) -> Result<Response, PageError> {
    let user = ctx.require_user()?.clone();
    if form.project.is_empty() || form.project.len() > 512 {
        return Err(PageError::BadRequest);
    }
    state
        .store
        .set_project_archived(&user.id, &form.project, form.archived == "1", now())
        .await?;
    Ok(Redirect::to("/settings?saved=projects#activity").into_response())
}
