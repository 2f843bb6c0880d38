//! The authorization server: metadata, JWKS, authorize + consent, token, revocation,
//! introspection, userinfo.

mod authorize;
mod device;
mod discovery;
pub mod error;
pub mod keys;
pub mod params;
mod revoke;
mod token;
mod userinfo;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};

use crate::app::AppState;
use crate::http::error::json_error;

pub use discovery::metadata;

/// JSON endpoints (no CSRF cookie, no HTML error pages).
pub fn api_router() -> Router<AppState> {
    Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::openid_configuration),
        )
        .route("/oauth/jwks", get(discovery::jwks))
        .route("/oauth/token", post(token::token))
        .route("/oauth/access_token", post(token::token))
        .route("/oauth/revoke", post(revoke::revoke))
        .route("/oauth/device/code", post(device::device_authorization))
        .route("/oauth/introspect", post(revoke::introspect))
        .route(
            "/oauth/userinfo",
            get(userinfo::userinfo)
                .post(userinfo::userinfo)
                .layer(axum::middleware::from_fn(
                    crate::http::ratelimit::quota_headers,
                )),
        )
        .method_not_allowed_fallback(|| async {
            json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "this endpoint does not accept that method",
            )
        })
}

/// Browser endpoints: the authorization request and the consent decision.
pub fn page_router() -> Router<AppState> {
    authorize::router().merge(device::page_router())
}
