//! `/settings`: profile and password.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::{field_error, render};
use crate::app::AppState;
use crate::domain::password;
use crate::domain::user::{FieldError, Profile, User, parse_text, parse_timezone};
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

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    ctx: Ctx,
    email: String,
    notice: Option<String>,
    profile_fields: Vec<ProfileField>,
    errors: Vec<FieldError>,
}

impl SettingsPage {
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

async fn settings_page(ctx: Ctx, Query(q): Query<Saved>) -> Result<Response, PageError> {
    let user = ctx.require_user()?.clone();
    let notice = match q.saved.as_deref() {
        Some("profile") => Some(ctx.t("settings-profile-saved")),
        Some("password") => Some(ctx.t("settings-password-changed")),
        _ => None,
    };
    let mut page = SettingsPage::new(ctx, &user, &profile_of(&user));
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
            let mut page = SettingsPage::new(ctx, &user, &typed);
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
        .login_limiter
        .check(&[format!("email:{}", user.email.to_lowercase())])
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
        let mut page = SettingsPage::new(ctx, &user, &profile_of(&user));
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
