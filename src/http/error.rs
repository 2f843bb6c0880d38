//! Errors on browser routes, and the middleware that turns every error answer on those routes
//! into a friendly, translated page (never a stack trace, never a bare `text/plain` rejection).

use askama::Template;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;

use super::ctx::{request_lang, urlencode};
use crate::app::AppState;
use crate::i18n::Lang;

/// A JSON error for API routes: `{"error", "error_description"}` (RFC 6749 §5.2 style).
pub fn json_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("sign-in required")]
    SignInRequired { return_to: String },
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden,
    #[error("registration closed")]
    RegistrationClosed,
    #[error("csrf check failed")]
    CsrfFailed { retry: String },
    #[error("bad request")]
    BadRequest,
    /// An authorization request that cannot be answered at the client (message key).
    #[error("authorization request refused")]
    Authorization(&'static str),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("too many requests")]
    TooManyRequests { retry_after: u64 },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        PageError::Internal(anyhow::anyhow!("rendering a page failed: {e}"))
    }
}

/// Which page to show, carried from the handler to [`render_error_pages`] as an extension.
#[derive(Debug, Clone)]
pub enum ErrorPage {
    Status,
    Authorization(&'static str),
    RegistrationClosed,
    CsrfFailed { retry: String },
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, page) = match self {
            PageError::SignInRequired { return_to } => {
                return Redirect::to(&format!("/login?return_to={}", urlencode(&return_to)))
                    .into_response();
            }
            PageError::NotFound => (StatusCode::NOT_FOUND, ErrorPage::Status),
            PageError::Forbidden => (StatusCode::FORBIDDEN, ErrorPage::Status),
            PageError::RegistrationClosed => (StatusCode::FORBIDDEN, ErrorPage::RegistrationClosed),
            PageError::CsrfFailed { retry } => {
                (StatusCode::FORBIDDEN, ErrorPage::CsrfFailed { retry })
            }
            PageError::BadRequest => (StatusCode::BAD_REQUEST, ErrorPage::Status),
            PageError::Authorization(key) => {
                (StatusCode::BAD_REQUEST, ErrorPage::Authorization(key))
            }
            PageError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, ErrorPage::Status)
            }
            PageError::TooManyRequests { retry_after } => {
                let mut response =
                    (StatusCode::TOO_MANY_REQUESTS, ErrorPage::Status).into_response();
                if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, v);
                }
                return response;
            }
            PageError::Database(e) => {
                tracing::error!(error = %e, "database error while serving a page");
                (StatusCode::INTERNAL_SERVER_ERROR, ErrorPage::Status)
            }
            PageError::Internal(e) => {
                tracing::error!(error = %e, "internal error while serving a page");
                (StatusCode::INTERNAL_SERVER_ERROR, ErrorPage::Status)
            }
        };
        (status, page).into_response()
    }
}

impl IntoResponse for ErrorPage {
    fn into_response(self) -> Response {
        let mut response = Response::new(axum::body::Body::empty());
        response.extensions_mut().insert(self);
        response
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorTemplate {
    lang: Lang,
    status: u16,
    title: String,
    message: String,
    retry: Option<String>,
}

impl ErrorTemplate {
    fn t(&self, key: &str) -> String {
        self.lang.t(key)
    }
}

/// Middleware for browser routes: every answer of 400 or more that is not already a page
/// becomes one, in the visitor's language.
pub async fn render_error_pages(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let lang = request_lang(
        req.headers(),
        &CookieJar::from_headers(req.headers()),
        state.cookies.lang,
    );
    let response = next.run(req).await;
    let status = response.status();
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/html"));
    if status.as_u16() < 400 || is_html {
        return response;
    }
    let page = response
        .extensions()
        .get::<ErrorPage>()
        .cloned()
        .unwrap_or(ErrorPage::Status);
    let (title_key, key, retry) = match page {
        ErrorPage::Authorization(key) => ("authorize-error-title", key, None),
        page => {
            let (key, retry) = status_page(page, status);
            (key, key, retry)
        }
    };
    let title_key = if title_key == key {
        format!("{key}-title")
    } else {
        title_key.to_owned()
    };
    let template = ErrorTemplate {
        lang,
        status: status.as_u16(),
        title: lang.t(&title_key),
        message: lang.t(key),
        retry,
    };
    let body = template.render().unwrap_or_else(|_| lang.t(key));
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Response::from_parts(parts, Html(body).into_response().into_body())
}

/// The message key (and retry link) for an error page chosen by kind and status.
fn status_page(page: ErrorPage, status: StatusCode) -> (&'static str, Option<String>) {
    match page {
        ErrorPage::CsrfFailed { retry } => ("error-csrf", Some(retry)),
        ErrorPage::RegistrationClosed => ("error-registration-closed", None),
        ErrorPage::Status => (
            match status.as_u16() {
                400 | 422 => "error-400",
                403 => "error-403",
                404 => "error-404",
                405 => "error-405",
                413 => "error-413",
                415 => "error-415",
                429 => "error-429",
                _ if status.is_server_error() => "error-500",
                _ => "error-400",
            },
            None,
        ),
        ErrorPage::Authorization(key) => (key, None),
    }
}
