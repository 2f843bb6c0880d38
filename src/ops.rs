//! Operations endpoints: liveness, readiness, Prometheus metrics.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::app::AppState;
use crate::http::error::json_error;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .method_not_allowed_fallback(|| async {
            json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "use GET",
            )
        })
}

/// The process is up.
async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// The database answers.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.store.ping().await {
        (
            StatusCode::OK,
            axum::Json(json!({"status": "ok", "database": "ok"})),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "unavailable", "database": "unreachable"})),
        )
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
