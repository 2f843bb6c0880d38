//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at `GET|POST /oauth/logout`,
//! and what every sign-out does: end the browser session, and queue a back-channel logout token
//! (Back-Channel Logout 1.0) for each app of the user's that takes them.
//!
//! An app sends the browser here with `id_token_hint` (an ID token latchkey issued; expired ones
//! count), optionally `client_id`, `post_logout_redirect_uri` (one the app registered, matched
//! exactly) and `state`. A hint that latchkey did not sign, or for another app than
//! `client_id`, or a redirect the app did not register, gets an error page and no redirect.
//! With a valid hint for the signed-in user the session ends at once; otherwise the person is
//! asked (a CSRF-protected form), so that no page can sign anyone out by linking here.

use askama::Template;
use axum::Router;
use axum::extract::{RawForm, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;

use crate::app::AppState;
use crate::http::{CsrfForm, Ctx, PageError};
use crate::store::{App, AuditEvent, AuditKind, now};
use crate::web::{MessagePage, render};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth/logout", get(from_query).post(from_form))
        .route("/oauth/logout/confirm", post(confirm))
}

/// The request's parameters, each at most once.
#[derive(Debug, Default, Clone)]
struct LogoutRequest {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

impl LogoutRequest {
    fn parse(raw: &[u8]) -> Result<LogoutRequest, &'static str> {
        let mut request = LogoutRequest::default();
        for (key, value) in url::form_urlencoded::parse(raw) {
            let slot = match key.as_ref() {
                "id_token_hint" => &mut request.id_token_hint,
                "client_id" => &mut request.client_id,
                "post_logout_redirect_uri" => &mut request.post_logout_redirect_uri,
                "state" => &mut request.state,
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err("logout-error-request");
            }
        }
        Ok(request)
    }

    fn fields(&self) -> Vec<(&'static str, String)> {
        [
            ("id_token_hint", &self.id_token_hint),
            ("client_id", &self.client_id),
            ("post_logout_redirect_uri", &self.post_logout_redirect_uri),
            ("state", &self.state),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .collect()
    }
}

/// A request that passed its checks.
struct Checked {
    app: Option<App>,
    /// The hint's subject, when a hint was given.
    hinted_user: Option<String>,
    /// Where to send the browser afterwards (with `state`).
    redirect: Option<String>,
}

async fn check(state: &AppState, request: &LogoutRequest) -> Result<Checked, Refusal> {
    let mut client_id = request.client_id.clone();
    let mut hinted_user = None;
    if let Some(hint) = &request.id_token_hint {
        let claims = crate::oauth::keys::verified_claims(&state.store, hint, "JWT")
            .await?
            .filter(|c| c["iss"] == state.config.issuer.as_str())
            .ok_or(Refusal::Page("logout-error-hint"))?;
        let audience = claims["aud"].as_str().map(str::to_owned);
        if client_id.is_some() && client_id != audience {
            return Err(Refusal::Page("logout-error-client"));
        }
        client_id = audience;
        hinted_user = claims["sub"].as_str().map(str::to_owned);
    }
    let app = match &client_id {
        Some(id) => Some(
            state
                .store
                .app_by_client_id(id)
                .await?
                .ok_or(Refusal::Page("logout-error-client"))?,
        ),
        None => None,
    };
    let redirect = match &request.post_logout_redirect_uri {
        None => None,
        Some(uri) => {
            let registered = app
                .as_ref()
                .is_some_and(|app| app.post_logout_redirect_uris.iter().any(|r| r == uri));
            if !registered {
                return Err(Refusal::Page("logout-error-redirect"));
            }
            let mut url =
                url::Url::parse(uri).map_err(|_| Refusal::Page("logout-error-redirect"))?;
            if let Some(s) = &request.state {
                url.query_pairs_mut().append_pair("state", s);
            }
            Some(url.to_string())
        }
    };
    Ok(Checked {
        app,
        hinted_user,
        redirect,
    })
}

enum Refusal {
    /// An error page with this message (never a redirect).
    Page(&'static str),
    Error(PageError),
}

impl<E: Into<PageError>> From<E> for Refusal {
    fn from(e: E) -> Self {
        Refusal::Error(e.into())
    }
}

fn refusal_page(ctx: &Ctx, refusal: Refusal) -> Response {
    match refusal {
        Refusal::Page(key) => {
            let page = MessagePage {
                ctx: ctx.clone(),
                title: ctx.t("logout-error-title"),
                message: ctx.t(key),
            };
            match render(page) {
                Ok(page) => (StatusCode::BAD_REQUEST, page).into_response(),
                Err(e) => e.into_response(),
            }
        }
        Refusal::Error(e) => e.into_response(),
    }
}

/// The question asked when the request alone does not say the signed-in person wants out.
#[derive(Template)]
#[template(path = "logout.html")]
struct ConfirmPage {
    ctx: Ctx,
    app_name: Option<String>,
    fields: Vec<(&'static str, String)>,
}

async fn from_query(
    state: State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    let raw = query.unwrap_or_default();
    logout(state, ctx, jar, raw.as_bytes()).await
}

async fn from_form(
    state: State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    RawForm(body): RawForm,
) -> Response {
    logout(state, ctx, jar, &body).await
}

async fn logout(State(state): State<AppState>, ctx: Ctx, jar: CookieJar, raw: &[u8]) -> Response {
    let request = match LogoutRequest::parse(raw) {
        Ok(request) => request,
        Err(key) => return refusal_page(&ctx, Refusal::Page(key)),
    };
    let checked = match check(&state, &request).await {
        Ok(checked) => checked,
        Err(refusal) => return refusal_page(&ctx, refusal),
    };
    match &ctx.user {
        // The app's own ID token for the person signed in here: they asked the app to sign out.
        Some(user) if checked.hinted_user.as_deref() == Some(user.id.as_str()) => {
            finish(&state, &ctx, jar, checked.redirect).await
        }
        Some(_) => {
            let page = ConfirmPage {
                app_name: checked.app.map(|a| a.name),
                fields: request.fields(),
                ctx,
            };
            render(page).unwrap_or_else(IntoResponse::into_response)
        }
        // Nobody is signed in: nothing to end.
        None => finish(&state, &ctx, jar, checked.redirect).await,
    }
}

async fn confirm(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Response {
    let raw = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().filter(|(k, _)| k != "csrf"))
        .finish();
    let request = match LogoutRequest::parse(raw.as_bytes()) {
        Ok(request) => request,
        Err(key) => return refusal_page(&ctx, Refusal::Page(key)),
    };
    match check(&state, &request).await {
        Ok(checked) => finish(&state, &ctx, jar, checked.redirect).await,
        Err(refusal) => refusal_page(&ctx, refusal),
    }
}

/// End the session, then redirect or say so.
async fn finish(state: &AppState, ctx: &Ctx, jar: CookieJar, redirect: Option<String>) -> Response {
    let jar = match end_session(state, ctx, jar).await {
        Ok(jar) => jar,
        Err(e) => return e.into_response(),
    };
    match redirect {
        Some(url) => (jar, Redirect::to(&url)).into_response(),
        None => {
            let page = MessagePage {
                ctx: Ctx {
                    user: None,
                    ..ctx.clone()
                },
                title: ctx.t("logout-done-title"),
                message: ctx.t("logout-done"),
            };
            match render(page) {
                Ok(page) => (jar, page).into_response(),
                Err(e) => e.into_response(),
            }
        }
    }
}

/// What every sign-out does: the session ends, the event is recorded, the apps of the user's
/// that take back-channel logout tokens get one, and the cookie is cleared.
pub async fn end_session(
    state: &AppState,
    ctx: &Ctx,
    jar: CookieJar,
) -> Result<CookieJar, PageError> {
    if let (Some(hash), Some(user)) = (&ctx.session_hash, &ctx.user) {
        state.store.delete_session(hash).await?;
        let event = AuditEvent::new(AuditKind::SignOut, &user.email)
            .from(ctx)
            .by(&user.id);
        state.store.audit(event, now()).await?;
        crate::outbox::queue_logouts(state, &user.id).await?;
    }
    let gone = state
        .cookies
        .build(state.cookies.session, String::new(), Some(0));
    Ok(jar.add(gone))
}
