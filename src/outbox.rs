//! Sends what the outbox holds: back-channel logout tokens (OpenID Connect Back-Channel Logout
//! 1.0) and webhook events, to the apps that asked for them. Every node runs a sender; each delivery is leased
//! before it is sent, so one node sends it. A failed attempt is retried after 5 s, 30 s, 5 min
//! and 30 min, then given up; every attempt is recorded.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use aws_lc_rs::hmac;
use base64::Engine;

use crate::app::AppState;
use crate::store::App;
use crate::store::deliveries::{Attempt, Delivery};
use crate::store::now;

pub const BACKCHANNEL_LOGOUT: &str = "backchannel_logout";
pub const WEBHOOK: &str = "webhook";
/// The header carrying a webhook's signature: `t=<unix time>,v1=<hex HMAC-SHA256 of
/// "<t>.<body>">`.
pub const SIGNATURE_HEADER: &str = "Latchkey-Signature";
/// Seconds to wait after the first, second… failed attempt; after the last, give up.
const BACKOFF: [i64; 4] = [5, 30, 300, 1800];
/// How long a node holds a delivery it is sending.
const LEASE: i64 = 60;
/// How long an app has to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What a back-channel logout delivery carries: the logout token is signed at each attempt,
/// so that a retry is not refused as expired.
#[derive(Debug, Serialize, Deserialize)]
pub struct LogoutPayload {
    /// The app's client ID (the token's audience).
    pub aud: String,
    /// The user who signed out.
    pub sub: String,
    /// The same for every attempt, so an app can tell a retry from a replay.
    pub jti: String,
}

/// Queue a logout token for every app `user_id` has authorized that takes them.
pub async fn queue_logouts(state: &AppState, user_id: &str) -> Result<usize, sqlx::Error> {
    let t = now();
    let mut queued = 0;
    for grant in state.store.grants_of_user(user_id).await? {
        let Some(app) = state.store.app_by_id(&grant.app_id).await? else {
            continue;
        };
        if app.backchannel_logout_uri.is_empty() {
            continue;
        }
        let payload = LogoutPayload {
            aud: app.client_id.clone(),
            sub: user_id.to_owned(),
            jti: crate::domain::secret::random_base62(32),
        };
        let payload = serde_json::to_string(&payload).unwrap_or_default();
        state
            .store
            .enqueue_delivery(
                &app.id,
                BACKCHANNEL_LOGOUT,
                &app.backchannel_logout_uri,
                &payload,
                t,
            )
            .await?;
        queued += 1;
    }
    Ok(queued)
}

/// Queue the webhook event `kind` (`grant.revoked`, `tokens.revoked`, `client_secret.revoked`)
/// for `app`, if it has a webhook URL. The event's `id` stays the same across retries.
pub async fn queue_event(
    state: &AppState,
    app: &App,
    kind: &str,
    data: serde_json::Value,
) -> Result<(), sqlx::Error> {
    if app.webhook_url.is_empty() {
        return Ok(());
    }
    let t = now();
    let event = json!({
        "id": crate::domain::secret::random_base62(24),
        "type": kind,
        "created_at": t,
        "client_id": app.client_id,
        "data": data,
    });
    state
        .store
        .enqueue_delivery(&app.id, WEBHOOK, &app.webhook_url, &event.to_string(), t)
        .await?;
    Ok(())
}

/// The key an app's webhooks are signed with: derived from a server key and the app, so it
/// is never stored; shown to the app's owner on its page.
pub async fn webhook_secret(state: &AppState, app_id: &str) -> Result<String, sqlx::Error> {
    let key = state.store.server_key("webhooks").await?;
    let mac = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &key),
        format!("latchkey webhook v1\0{app_id}").as_bytes(),
    );
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.as_ref())
    ))
}

/// The signature header's value for `body` sent at `t` with `secret`.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let mac = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        format!("{t}.{body}").as_bytes(),
    );
    let hex: String = mac.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// Run the sender on this node until the process ends.
pub fn spawn(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move {
        // Made at the first delivery: most servers send none, and an HTTP client with its TLS
        // roots costs memory for as long as the process runs.
        let mut client = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if let Err(e) = send_due(&state, &mut client).await {
                tracing::warn!(error = %e, "sending deliveries failed");
            }
        }
    });
}

fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("latchkey/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("the HTTP client could not start: {e}"))
}

async fn send_due(
    state: &AppState,
    client: &mut Option<reqwest::Client>,
) -> Result<(), sqlx::Error> {
    let t = now();
    for delivery in state.store.claim_due_deliveries(t, t + LEASE, 20).await? {
        let ready = match client {
            Some(client) => Ok(&*client),
            None => http_client().map(|made| &*client.insert(made)),
        };
        let outcome = match ready {
            Ok(client) => attempt(state, client, &delivery).await,
            Err(error) => Err(error),
        };
        let attempt = match outcome {
            Ok(status) if (200..300).contains(&status) => Attempt::Delivered {
                status: i64::from(status),
            },
            outcome => {
                let (status, error) = match outcome {
                    Ok(status) => (Some(i64::from(status)), format!("answered {status}")),
                    Err(error) => (None, error),
                };
                let retry_at = usize::try_from(delivery.attempts)
                    .ok()
                    .and_then(|n| BACKOFF.get(n))
                    .map(|wait| now() + wait);
                tracing::info!(delivery = %delivery.id, app = %delivery.app_id, %error, retry = retry_at.is_some(), "a delivery to an app failed");
                Attempt::Failed {
                    status,
                    error,
                    retry_at,
                }
            }
        };
        state
            .store
            .record_attempt(&delivery.id, &attempt, now())
            .await?;
    }
    Ok(())
}

/// One attempt: the app's HTTP status, or why there was none.
async fn attempt(
    state: &AppState,
    client: &reqwest::Client,
    delivery: &Delivery,
) -> Result<u16, String> {
    if delivery.kind == WEBHOOK {
        let secret = webhook_secret(state, &delivery.app_id)
            .await
            .map_err(|e| format!("reading the signing key failed: {e}"))?;
        let kind = serde_json::from_str::<serde_json::Value>(&delivery.payload)
            .ok()
            .and_then(|e| e["type"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let response = client
            .post(&delivery.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                SIGNATURE_HEADER,
                signature(&secret, now(), &delivery.payload),
            )
            .header("Latchkey-Event", kind)
            .header("Latchkey-Delivery", &delivery.id)
            .body(delivery.payload.clone())
            .send()
            .await
            .map_err(|e| format!("{e}"))?;
        return Ok(response.status().as_u16());
    }
    if delivery.kind != BACKCHANNEL_LOGOUT {
        return Err(format!("unknown delivery kind {}", delivery.kind));
    }
    let payload: LogoutPayload =
        serde_json::from_str(&delivery.payload).map_err(|e| format!("damaged payload: {e}"))?;
    let t = now();
    // OpenID Connect Back-Channel Logout 1.0 §2.4.
    let claims = json!({
        "iss": state.config.issuer,
        "aud": payload.aud,
        "sub": payload.sub,
        "iat": t,
        "exp": t + 120,
        "jti": payload.jti,
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    });
    let token = state
        .keys
        .sign(&state.store, &claims, "logout+jwt")
        .await
        .map_err(|e| format!("signing the logout token failed: {e}"))?;
    let response = client
        .post(&delivery.url)
        .form(&[("logout_token", token.as_str())])
        .send()
        .await
        .map_err(|e| format!("{e}"))?;
    Ok(response.status().as_u16())
}
