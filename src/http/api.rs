//! What JSON API routes need: the error type, a JSON body extractor with our error shape, and
//! the authenticated caller (personal access token or browser session).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::app::AppState;
use crate::domain::scope::Scopes;
use crate::domain::secret::{self, TokenKind};
use crate::domain::user::{FieldError, User};
use crate::http::error::json_error as body;
use crate::http::ratelimit::spend_quota;
use crate::store::now;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid request: {0}")]
    BadRequest(String),
    /// Field-level validation errors: `fields` maps each field to its message key.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("unauthorized")]
    Unauthorized,
    #[error("the token is invalid")]
    InvalidToken,
    #[error("the DPoP proof was refused")]
    Dpop(crate::oauth::dpop::Refusal),
    #[error("insufficient scope")]
    InsufficientScope(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("too many requests")]
    TooManyRequests { retry_after: u64 },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadRequest(description) => {
                body(StatusCode::BAD_REQUEST, "invalid_request", &description)
            }
            ApiError::Validation(errors) => {
                let fields: serde_json::Map<String, serde_json::Value> = errors
                    .iter()
                    .map(|e| {
                        (
                            e.field.to_owned(),
                            json!(crate::i18n::Lang::En.t(e.message)),
                        )
                    })
                    .collect();
                let description = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, crate::i18n::Lang::En.t(e.message)))
                    .collect::<Vec<_>>()
                    .join("; ");
                (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"error": "invalid_request", "error_description": description, "fields": fields})),
                )
                    .into_response()
            }
            ApiError::Unauthorized => {
                let mut r = body(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "authentication required",
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"latchkey\""),
                );
                crate::oauth::dpop::offer(r.headers_mut());
                r
            }
            ApiError::InvalidToken => {
                let mut r = body(
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "the access token is invalid, expired or revoked",
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"latchkey\", error=\"invalid_token\""),
                );
                crate::oauth::dpop::offer(r.headers_mut());
                r
            }
            ApiError::Dpop(refusal) => crate::oauth::dpop::refusal_response(&refusal),
            ApiError::InsufficientScope(scope) => {
                let mut r = body(
                    StatusCode::FORBIDDEN,
                    "insufficient_scope",
                    &format!("this token lacks the `{scope}` scope"),
                );
                if let Ok(v) = HeaderValue::from_str(&format!(
                    "Bearer realm=\"latchkey\", error=\"insufficient_scope\", scope=\"{scope}\""
                )) {
                    r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                r
            }
            ApiError::Forbidden(description) => {
                body(StatusCode::FORBIDDEN, "forbidden", description)
            }
            ApiError::NotFound => body(StatusCode::NOT_FOUND, "not_found", "no such resource"),
            ApiError::UnsupportedMediaType => body(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request",
                "send the body as application/json",
            ),
            ApiError::TooManyRequests { retry_after } => {
                let mut r = body(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many requests; retry later",
                );
                if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                r
            }
            ApiError::Database(e) => {
                tracing::error!(error = %e, "database error while serving an API request");
                body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal error",
                )
            }
            ApiError::Internal(e) => {
                tracing::error!(error = %e, "internal error while serving an API request");
                body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal error",
                )
            }
        }
    }
}

/// A JSON body, refused with our error shape: 415 without `application/json`, 400 when it
/// does not parse or lacks fields (the parser's message says where).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                let ct = ct
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                ct == "application/json"
                    || (ct.starts_with("application/") && ct.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType.into_response());
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| {
            ApiError::BadRequest(format!("the JSON body is not valid: {e}")).into_response()
        })
    }
}

/// How the request presented its token: `Authorization: Bearer …` or `Authorization: DPoP …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    Dpop,
}

/// The token in the `Authorization` header and how it was presented.
pub fn presented_token(parts: &Parts) -> Option<(Scheme, &str)> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return None;
    };
    Some((scheme, token.trim()))
}

/// The `Bearer` token of a request, if it has one.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    presented_token(parts)
        .filter(|(scheme, _)| *scheme == Scheme::Bearer)
        .map(|(_, token)| token)
}

/// Whether a browser says the request comes from our own pages: `Sec-Fetch-Site` (when sent)
/// is `same-origin` or `none`, and `Origin` (when sent) is the issuer's origin. Clients that are
/// not browsers send neither and cannot carry a victim's cookies anyway.
fn same_origin(parts: &Parts, issuer: &str) -> bool {
    let fetch_site_ok = parts
        .headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v == "same-origin" || v == "none");
    let origin_ok = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|origin| {
            url::Url::parse(issuer).is_ok_and(|i| i.origin().ascii_serialization() == origin)
        });
    fetch_site_ok && origin_ok
}

/// How the caller authenticated.
#[derive(Debug, Clone)]
pub enum Credential {
    Session,
    PersonalAccessToken { id: String, scopes: Scopes },
}

/// The user behind a request to the client API: a personal access token (Bearer) or a browser
/// session. OAuth access tokens are not accepted here.
#[derive(Debug, Clone)]
pub struct ApiUser {
    pub user: User,
    pub credential: Credential,
}

impl ApiUser {
    /// Sessions may do anything their user may; tokens only within their scopes.
    pub fn require_scope(&self, scope: &'static str) -> Result<(), ApiError> {
        match &self.credential {
            Credential::Session => Ok(()),
            Credential::PersonalAccessToken { scopes, .. } if scopes.contains(scope) => Ok(()),
            Credential::PersonalAccessToken { .. } => Err(ApiError::InsufficientScope(scope)),
        }
    }
}

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            let token = bearer_token(parts).ok_or(ApiError::InvalidToken)?;
            // The checksum is verified before any database look-up.
            let pat = secret::parse(TokenKind::PersonalAccessToken, token)
                .ok_or(ApiError::InvalidToken)?;
            let (pat, user) = state
                .store
                .authenticate_pat(&pat, now())
                .await?
                .ok_or(ApiError::InvalidToken)?;
            // The client API has its own per-user quota, apart from the resource API's.
            spend_quota(state, parts, &format!("clients:{}", user.id)).await?;
            return Ok(ApiUser {
                user,
                credential: Credential::PersonalAccessToken {
                    id: pat.id,
                    scopes: pat.scopes,
                },
            });
        }
        let jar = CookieJar::from_headers(&parts.headers);
        if !parts.method.is_safe() && !same_origin(parts, &state.config.issuer) {
            // A session cookie rides along on cross-site requests a page can make; only the
            // site itself may change things with it.
            return Err(ApiError::Forbidden(
                "cross-site requests with a session cookie are refused",
            ));
        }
        if let Some(cookie) = jar.get(state.cookies.session)
            && let Some(session) = state.store.session(cookie.value(), now()).await?
        {
            spend_quota(state, parts, &format!("clients:{}", session.user.id)).await?;
            return Ok(ApiUser {
                user: session.user,
                credential: Credential::Session,
            });
        }
        Err(ApiError::Unauthorized)
    }
}
