//! OAuth errors: variants are the RFC 6749 §5.2 / §4.1.2.1 codes (plus OpenID Connect's), and
//! `Display` is the wire code.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    UnsupportedTokenType,
    InvalidScope,
    AccessDenied,
    LoginRequired,
    ConsentRequired,
    ServerError,
    AuthorizationPending,
    SlowDown,
    ExpiredToken,
    /// RFC 8707 §2: the resource is unknown or not allowed here.
    InvalidTarget,
    /// RFC 9449 §5: the DPoP proof is missing where required, or wrong.
    InvalidDpopProof,
    /// RFC 9449 §8: retry with the server's nonce (sent in `DPoP-Nonce`).
    UseDpopNonce,
    /// Not an RFC 6749 code: too many requests (answered 429 with `Retry-After`).
    RateLimited,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::ServerError => "server_error",
            ErrorCode::AuthorizationPending => "authorization_pending",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::ExpiredToken => "expired_token",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
            ErrorCode::RateLimited => "rate_limited",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answered as JSON by the token, revocation and introspection endpoints.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
    /// Seconds to wait, for `RateLimited`.
    pub retry_after: Option<u64>,
    /// The nonce to use, for `UseDpopNonce`.
    pub dpop_nonce: Option<HeaderValue>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        OAuthError {
            code,
            description: description.into(),
            retry_after: None,
            dpop_nonce: None,
        }
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        OAuthError {
            retry_after: Some(retry_after),
            ..OAuthError::new(ErrorCode::RateLimited, "too many requests; retry later")
        }
    }
}

impl From<super::dpop::Refusal> for OAuthError {
    fn from(refusal: super::dpop::Refusal) -> Self {
        let code = match refusal {
            super::dpop::Refusal::Invalid(_) => ErrorCode::InvalidDpopProof,
            super::dpop::Refusal::UseNonce(_) => ErrorCode::UseDpopNonce,
        };
        OAuthError {
            dpop_nonce: refusal.nonce(),
            ..OAuthError::new(code, refusal.description())
        }
    }
}

impl From<sqlx::Error> for OAuthError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database error at an OAuth endpoint");
        OAuthError::new(ErrorCode::ServerError, "internal error")
    }
}

impl From<anyhow::Error> for OAuthError {
    fn from(e: anyhow::Error) -> Self {
        tracing::error!(error = %e, "internal error at an OAuth endpoint");
        OAuthError::new(ErrorCode::ServerError, "internal error")
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = match self.code {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut response = (
            status,
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::PRAGMA, "no-cache"),
            ],
            axum::Json(json!({"error": self.code.as_str(), "error_description": self.description})),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6749 §5.2: client authentication failed; say how to authenticate.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"latchkey\", charset=\"UTF-8\""),
            );
        }
        if let Some(nonce) = self.dpop_nonce {
            response.headers_mut().insert("dpop-nonce", nonce);
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
