//! Server-rendered pages: home, accounts, settings, the stylesheet and the language switcher.

mod activity;
mod admin;
mod apps;
mod auth;
mod authorized;
mod docs;
mod settings;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use crate::app::AppState;
use crate::domain::user::FieldError;
use crate::http::{Ctx, PageError, safe_return_to};
use crate::i18n::Lang;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/static/style.css", get(stylesheet))
        .route("/static/app.js", get(script))
        .route("/lang/{code}", get(switch_language))
        .merge(auth::router())
        .merge(settings::router())
        .merge(apps::router())
        .merge(admin::router())
        .merge(authorized::router())
        .merge(activity::router())
        .merge(docs::router())
        .fallback(not_found)
}

/// Render a page with status 200.
/// A page with a title and one message (setup links that cannot be used, device-flow answers).
#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct MessagePage {
    pub ctx: Ctx,
    pub title: String,
    pub message: String,
}

pub(crate) fn render(page: impl Template) -> Result<Response, PageError> {
    Ok(Html(page.render()?).into_response())
}

/// The translated message for the first error on `field`, if any.
pub(crate) fn field_error(ctx: &Ctx, errors: &[FieldError], field: &str) -> Option<String> {
    errors
        .iter()
        .find(|e| e.field == field)
        .map(|e| ctx.t(e.message))
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    ctx: Ctx,
    welcome: String,
}

async fn home(ctx: Ctx, RawQuery(query): RawQuery) -> Result<Response, PageError> {
    // `GET /?response_type=…` is an authorization request sent to the site root.
    if let Some(query) = query
        && url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "response_type")
    {
        return Ok(Redirect::to(&format!("/oauth/authorize?{query}")).into_response());
    }
    let welcome = ctx
        .user
        .as_ref()
        .map(|u| {
            let name = if u.name.is_empty() { &u.email } else { &u.name };
            ctx.t_args("home-welcome", &[("name", name)])
        })
        .unwrap_or_default();
    render(HomePage { ctx, welcome })
}

async fn not_found() -> PageError {
    PageError::NotFound
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/style.css"),
    )
}

/// Progressive enhancement only (copy buttons); every page works without it.
async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/app.js"),
    )
}

/// A unix time for pages: `2026-11-23 14:05 UTC`.
pub(crate) fn fmt_time(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

#[derive(Deserialize)]
struct ReturnTo {
    return_to: Option<String>,
}

/// The visible language switcher: remember the choice in a cookie and go back.
/// A plain link (no form): choosing a language changes nothing but how pages read.
async fn switch_language(
    State(state): State<AppState>,
    Path(code): Path<String>,
    Query(q): Query<ReturnTo>,
    jar: CookieJar,
) -> Result<(CookieJar, Redirect), PageError> {
    let lang = Lang::from_code(&code).ok_or(PageError::NotFound)?;
    let cookie = state.cookies.build(
        state.cookies.lang,
        lang.code().to_owned(),
        Some(365 * 24 * 3600),
    );
    Ok((
        jar.add(cookie),
        Redirect::to(&safe_return_to(q.return_to.as_deref())),
    ))
}
