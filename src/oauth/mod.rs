//! The authorization server: metadata, JWKS, authorize + consent, token, revocation,
//! introspection, userinfo.

mod authorize;
mod device;
mod discovery;
pub mod dpop;
pub mod error;
mod exchange;
pub mod keys;
pub mod logout;
mod par;
pub mod params;
mod register;
mod revoke;
mod schema;
mod token;
mod userinfo;

use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

pub use discovery::metadata;
pub use register::REGISTRATIONS_PER_MINUTE;

/// JSON endpoints (no CSRF cookie, no HTML error pages).
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(discovery::openid_configuration))
        .routes(routes!(discovery::authorization_server_metadata))
        .routes(routes!(discovery::jwks))
        .routes(routes!(token::token))
        .routes(routes!(token::access_token))
        .routes(routes!(revoke::revoke))
        .routes(routes!(device::device_authorization))
        .routes(routes!(revoke::introspect))
        .routes(routes!(par::push))
        .routes(routes!(register::register))
        .routes(routes!(
            register::read_registration,
            register::replace_registration,
            register::delete_registration
        ))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(userinfo::userinfo, userinfo::userinfo_post))
                .layer(axum::middleware::from_fn(
                    crate::http::ratelimit::quota_headers,
                )),
        )
}

/// Browser endpoints: the authorization request and the consent decision.
pub fn page_router() -> Router<AppState> {
    authorize::router()
        .merge(device::page_router())
        .merge(logout::router())
}
