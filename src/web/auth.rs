//! Sign-up, sign-in, sign-out and the first-admin setup link.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde_json::json;

use super::{MessagePage, field_error, render};
use crate::app::AppState;
use crate::domain::password;
use crate::domain::secret::{self, TokenKind};
use crate::domain::user::{FieldError, User, parse_email, parse_text};
use crate::http::csrf::NoFields;
use crate::http::{CsrfForm, Ctx, PageError, safe_return_to};
use crate::store::setup::SetupError;
use crate::store::{AuditEvent, AuditKind, CreateUserError, NewUser, now};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/signup", get(signup_page).post(signup))
        .route("/logout", get(|| async { Redirect::to("/") }).post(logout))
        .route("/setup", get(setup_page).post(setup))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    ctx: Ctx,
    email: String,
    return_to: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct ReturnTo {
    return_to: Option<String>,
    /// `login` when an app asked for a fresh sign-in (OpenID Connect `prompt=login`).
    prompt: Option<String>,
}

async fn login_page(ctx: Ctx, Query(q): Query<ReturnTo>) -> Result<Response, PageError> {
    let return_to = safe_return_to(q.return_to.as_deref());
    if ctx.user.is_some() && q.prompt.as_deref() != Some("login") {
        return Ok(Redirect::to(&return_to).into_response());
    }
    render(LoginPage {
        ctx,
        email: String::new(),
        return_to,
        error: None,
    })
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    return_to: Option<String>,
}

/// Start a fresh session (a new id at every sign-in, so a planted cookie is worthless) and go on.
async fn start_session(
    state: &AppState,
    ctx: &Ctx,
    jar: CookieJar,
    user: &User,
    return_to: &str,
) -> Result<Response, PageError> {
    if let Some(old) = &ctx.session_hash {
        state.store.delete_session(old).await?;
    }
    let ttl = i64::try_from(state.config.session_ttl.as_secs()).unwrap_or(i64::MAX / 2);
    let raw = state
        .store
        .create_session(&user.id, now(), ttl, &ctx.ip, &ctx.user_agent)
        .await?;
    let cookie = state
        .cookies
        .build(state.cookies.session, raw.expose().to_owned(), Some(ttl));
    Ok((jar.add(cookie), Redirect::to(return_to)).into_response())
}

async fn login(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Result<Response, PageError> {
    let return_to = safe_return_to(form.return_to.as_deref());
    let email = form.email.trim().to_lowercase();
    state
        .limits
        .login
        .check(&[&format!("ip:{}", ctx.ip), &format!("email:{email}")])
        .await
        .map_err(|retry_after| PageError::TooManyRequests { retry_after })?;

    let found = if email.is_empty() || email.len() > 320 {
        None
    } else {
        state.store.user_credentials(&email).await?
    };
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, None),
    };
    // Always run one argon2 verification, so an unknown email costs as long as a wrong password.
    let password_ok = password::verify_blocking(form.password.clone(), hash).await;
    match user {
        Some(user) if password_ok && !user.disabled => {
            let event = AuditEvent::new(AuditKind::SignIn, &user.email)
                .from(&ctx)
                .by(&user.id);
            state.store.audit(event, now()).await?;
            tracing::info!(user.id = %user.id, "signed in");
            start_session(&state, &ctx, jar, &user, &return_to).await
        }
        _ => {
            let event = AuditEvent::new(AuditKind::SignInFailed, &email).from(&ctx);
            state.store.audit(event, now()).await?;
            let error = Some(ctx.t("login-failed"));
            let page = LoginPage {
                ctx,
                email: form.email.trim().to_owned(),
                return_to,
                error,
            };
            Ok((StatusCode::UNAUTHORIZED, render(page)?).into_response())
        }
    }
}

async fn logout(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    let jar = crate::oauth::logout::end_session(&state, &ctx, jar).await?;
    Ok((jar, Redirect::to("/")).into_response())
}

/// The sign-up page, also used (with a token) for the first-admin setup.
#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage {
    ctx: Ctx,
    title_key: &'static str,
    submit_key: &'static str,
    action: &'static str,
    setup_token: Option<String>,
    email: String,
    name: String,
    return_to: String,
    errors: Vec<FieldError>,
}

impl SignupPage {
    fn signup(ctx: Ctx, return_to: String) -> Self {
        SignupPage {
            ctx,
            title_key: "signup-title",
            submit_key: "signup-submit",
            action: "/signup",
            setup_token: None,
            email: String::new(),
            name: String::new(),
            return_to,
            errors: Vec::new(),
        }
    }

    fn setup(ctx: Ctx, token: String) -> Self {
        SignupPage {
            title_key: "setup-title",
            submit_key: "setup-submit",
            action: "/setup",
            setup_token: Some(token),
            ..SignupPage::signup(ctx, "/".to_owned())
        }
    }

    fn error(&self, field: &str) -> Option<String> {
        field_error(&self.ctx, &self.errors, field)
    }

    fn rerender(
        mut self,
        form: &AccountForm,
        errors: Vec<FieldError>,
    ) -> Result<Response, PageError> {
        self.email = form.email.trim().to_owned();
        self.name = form.name.trim().to_owned();
        self.errors = errors;
        Ok((StatusCode::UNPROCESSABLE_ENTITY, render(self)?).into_response())
    }
}

async fn signup_page(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(q): Query<ReturnTo>,
) -> Result<Response, PageError> {
    if !state.config.registration_open {
        return Err(PageError::RegistrationClosed);
    }
    render(SignupPage::signup(
        ctx,
        safe_return_to(q.return_to.as_deref()),
    ))
}

#[derive(Deserialize)]
struct AccountForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    return_to: Option<String>,
    token: Option<String>,
}

/// Check the fields of a new account; on success, the account with its password hashed.
async fn validate_account(
    form: &AccountForm,
) -> Result<Result<NewUser, Vec<FieldError>>, PageError> {
    let mut errors = Vec::new();
    let email = parse_email(&form.email).map_err(|e| errors.push(e)).ok();
    let name = parse_text("name", &form.name, 200)
        .map_err(|e| errors.push(e))
        .ok();
    match password::check_new(&form.password) {
        Ok(()) => {}
        Err(password::Weakness::TooShort) => {
            errors.push(FieldError::new("password", "error-password-short"))
        }
        Err(password::Weakness::TooLong) => {
            errors.push(FieldError::new("password", "error-password-long"))
        }
    }
    let (Some(email), Some(name), true) = (email, name, errors.is_empty()) else {
        return Ok(Err(errors));
    };
    let hash = password::hash_blocking(form.password.clone()).await?;
    Ok(Ok(NewUser {
        email,
        name,
        password_hash: Some(hash),
        admin: false,
    }))
}

async fn signup(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    CsrfForm(form): CsrfForm<AccountForm>,
) -> Result<Response, PageError> {
    if !state.config.registration_open {
        return Err(PageError::RegistrationClosed);
    }
    state
        .limits
        .login
        .check(&[&format!("signup-ip:{}", ctx.ip)])
        .await
        .map_err(|retry_after| PageError::TooManyRequests { retry_after })?;
    let return_to = safe_return_to(form.return_to.as_deref());
    let page = SignupPage::signup(ctx.clone(), return_to.clone());
    let new = match validate_account(&form).await? {
        Ok(new) => new,
        Err(errors) => return page.rerender(&form, errors),
    };
    let user = match state.store.create_user(new, now()).await {
        Ok(user) => user,
        Err(CreateUserError::EmailTaken) => {
            return page.rerender(&form, vec![FieldError::new("email", "error-email-taken")]);
        }
        Err(CreateUserError::Database(e)) => return Err(e.into()),
    };
    let event = AuditEvent::new(AuditKind::SignUp, &user.email)
        .from(&ctx)
        .by(&user.id);
    state.store.audit(event, now()).await?;
    start_session(&state, &ctx, jar, &user, &return_to).await
}

#[derive(Deserialize)]
struct SetupQuery {
    token: Option<String>,
}

/// A setup link is shown as an error page when it cannot be used.
fn setup_invalid(ctx: &Ctx) -> Result<Response, PageError> {
    let page = MessagePage {
        ctx: ctx.clone(),
        title: ctx.t("setup-title"),
        message: ctx.t("setup-invalid"),
    };
    Ok((StatusCode::NOT_FOUND, render(page)?).into_response())
}

async fn setup_page(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(q): Query<SetupQuery>,
) -> Result<Response, PageError> {
    let token = q
        .token
        .as_deref()
        .and_then(|t| secret::parse(TokenKind::Setup, t));
    match token {
        Some(token) if state.store.setup_token_usable(&token, now()).await? => {
            render(SignupPage::setup(ctx, token.expose().to_owned()))
        }
        _ => setup_invalid(&ctx),
    }
}

async fn setup(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    CsrfForm(form): CsrfForm<AccountForm>,
) -> Result<Response, PageError> {
    state
        .limits
        .login
        .check(&[&format!("setup-ip:{}", ctx.ip)])
        .await
        .map_err(|retry_after| PageError::TooManyRequests { retry_after })?;
    let Some(token) = form
        .token
        .as_deref()
        .and_then(|t| secret::parse(TokenKind::Setup, t))
    else {
        return setup_invalid(&ctx);
    };
    let page = SignupPage::setup(ctx.clone(), token.expose().to_owned());
    let new = match validate_account(&form).await? {
        Ok(new) => new,
        Err(errors) => return page.rerender(&form, errors),
    };
    let user = match state.store.complete_setup(&token, new, now()).await {
        Ok(user) => user,
        Err(SetupError::InvalidToken) => return setup_invalid(&ctx),
        Err(SetupError::CreateUser(CreateUserError::EmailTaken)) => {
            return page.rerender(&form, vec![FieldError::new("email", "error-email-taken")]);
        }
        Err(SetupError::CreateUser(CreateUserError::Database(e)) | SetupError::Database(e)) => {
            return Err(e.into());
        }
    };
    let event = AuditEvent::new(AuditKind::Setup, &user.email)
        .from(&ctx)
        .by(&user.id)
        .details(json!({"admin": true}));
    state.store.audit(event, now()).await?;
    tracing::info!(user.id = %user.id, "first administrator created through the setup link");
    start_session(&state, &ctx, jar, &user, "/").await
}
