//! CSRF protection for every state-changing form.
//!
//! Each browser gets a random, HttpOnly, SameSite=Lax cookie on its first page view; forms carry
//! a hash of it. A cross-site page can neither read the cookie nor compute the hash, and with
//! SameSite=Lax a cross-site POST does not even send the cookie. The comparison is constant-time.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::PageError;
use super::ctx::{FreshCsrfCookie, csrf_token};
use crate::app::AppState;
use crate::domain::secret::{constant_time_eq, random_opaque};

/// Give a browser without a CSRF cookie a fresh one (on the response, and to this request's
/// handlers through [`FreshCsrfCookie`] so the page it renders already carries the right token).
pub async fn ensure_cookie(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let jar = CookieJar::from_headers(req.headers());
    if jar.get(state.cookies.csrf).is_some() {
        return next.run(req).await;
    }
    let value = random_opaque().expose().to_owned();
    req.extensions_mut().insert(FreshCsrfCookie(value.clone()));
    let mut response = next.run(req).await;
    let cookie = state.cookies.build(state.cookies.csrf, value, None);
    if let Ok(header) = cookie.to_string().parse() {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, header);
    }
    response
}

/// A form with nothing but its CSRF token (a button that does one thing).
#[derive(Deserialize)]
pub struct NoFields {}

/// A URL-encoded form whose `csrf` field matched the browser's cookie.
pub struct CsrfForm<T>(pub T);

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let retry = req.uri().path().to_owned();
        let jar = CookieJar::from_headers(req.headers());
        let cookie = jar.get(state.cookies.csrf).map(|c| c.value().to_owned());
        let is_form = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|_| PageError::BadRequest)?;
        if !is_form {
            return Err(PageError::UnsupportedMediaType);
        }
        let field: CsrfField =
            serde_urlencoded::from_bytes(&body).map_err(|_| PageError::BadRequest)?;
        let expected = cookie.as_deref().map(csrf_token);
        match expected {
            Some(expected) if constant_time_eq(expected.as_bytes(), field.csrf.as_bytes()) => {}
            _ => return Err(PageError::CsrfFailed { retry }),
        }
        let value = serde_urlencoded::from_bytes(&body).map_err(|_| PageError::BadRequest)?;
        Ok(CsrfForm(value))
    }
}
