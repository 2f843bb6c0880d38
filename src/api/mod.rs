//! JSON API: the client API (`/oauth/clients`), leak reports (`/oauth/leaked`), the activity
//! API, and the OpenAPI document that describes every JSON endpoint.

mod activity;
mod clients;
mod leaked;
pub mod openapi;

use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;

pub use clients::{client_json, rfc3339};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(clients::router())
        .merge(activity::router())
        .merge(leaked::router())
}
