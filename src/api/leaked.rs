//! `POST /oauth/leaked`: report secrets found in public (a code host's secret scanning, a
//! person who found one). Every live token or secret in the list is revoked at once. The answer
//! is the same whatever was found, so the endpoint cannot be used to test whether a token is live.

use axum::extract::State;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::domain::secret;
use crate::http::api::{ApiError, ApiJson};
use crate::http::client_ip;
use crate::store::{AuditEvent, AuditKind, now};

/// At most this many strings per report.
const MAX_ITEMS: usize = 1000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(report))
}

/// A found string, bare or in the secret-scanning object form `{"token": "...", "url": "..."}`.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
enum Item {
    Bare(String),
    Object { token: String, url: Option<String> },
}

/// A list of found strings, bare or as objects, or `{"tokens": [...]}`.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
enum Report {
    List(Vec<Item>),
    Wrapped { tokens: Vec<Item> },
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct Received {
    /// How many strings the report held (the same whether any was live).
    received: u64,
}

/// Report secrets found in public: every live one among them is revoked at once.
#[utoipa::path(post, path = "/oauth/leaked", tag = "oauth", request_body = Report,
    responses((status = 200, description = "Received", body = Received), crate::api::openapi::ApiErrors))]
async fn report(
    State(state): State<AppState>,
    parts: Parts,
    ApiJson(report): ApiJson<Report>,
) -> Result<Response, ApiError> {
    let ip = client_ip(&parts, state.config.trust_proxy);
    state
        .limits
        .token
        .check(&[&format!("ip:{ip}")])
        .await
        .map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
    let items = match report {
        Report::List(items) | Report::Wrapped { tokens: items } => items,
    };
    if items.len() > MAX_ITEMS {
        return Err(ApiError::BadRequest(format!(
            "report at most {MAX_ITEMS} strings at a time"
        )));
    }
    let received = items.len();
    for item in items {
        let (text, url) = match item {
            Item::Bare(text) => (text, None),
            Item::Object { token, url } => (token, url),
        };
        // Shape and checksum first: random strings never reach the database.
        let Some((kind, found)) = secret::classify(text.trim()) else {
            continue;
        };
        if let Some(hit) = state.store.revoke_leaked(kind, &found, now()).await? {
            tracing::warn!(kind = hit.kind, subject = %hit.subject, "revoked a secret reported as leaked");
            let url = url.unwrap_or_default();
            let event = AuditEvent::new(AuditKind::LeakRevoked, &hit.subject)
                .details(json!({"kind": hit.kind, "url": url}));
            state.store.audit(event, now()).await?;
            // The app whose secret or token it was hears of it.
            if hit.kind != "personal_access_token"
                && let Some(app) = state.store.app_by_client_id(&hit.subject).await?
            {
                let (kind, data) = if hit.kind == "client_secret" {
                    (
                        "client_secret.revoked",
                        json!({"reason": "leak_report", "url": url}),
                    )
                } else {
                    let data = json!({"reason": "leak_report", "kind": hit.kind, "url": url});
                    ("tokens.revoked", data)
                };
                crate::outbox::queue_event(&state, &app, kind, data).await?;
            }
        }
    }
    Ok(axum::Json(json!({ "received": received })).into_response())
}
