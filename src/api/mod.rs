//! JSON API: the client API (`/oauth/clients`) and leak reports (`/oauth/leaked`).

mod activity;
mod clients;
mod leaked;

use axum::Router;
use axum::http::StatusCode;

use crate::app::AppState;
use crate::http::error::json_error;

pub use clients::{client_json, rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(clients::router())
        .merge(activity::router())
        .merge(leaked::router())
        .method_not_allowed_fallback(|| async {
            json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "this endpoint does not accept that method",
            )
        })
}
