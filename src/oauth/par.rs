//! Pushed authorization requests (RFC 9126): an app sends the authorization request's
//! parameters straight to `POST /oauth/par`, authenticated as at the token endpoint, and gets a
//! `request_uri` to send the browser with instead. The parameters never pass through the
//! browser, and are checked before the user sees anything.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::authorize::{self, Refusal};
use super::error::{ErrorCode, OAuthError};
use super::params::{Params, authenticate_client};
use crate::app::AppState;
use crate::domain::secret::{random_base62, sha256_hex};
use crate::i18n::Lang;
use crate::store::now;

/// What every request_uri starts with (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// Seconds a pushed request lives.
const EXPIRES_IN: i64 = 60;

/// The stored form of a request_uri: the SHA-256 of its random part; `None` for anything that
/// is not one of ours.
pub fn request_hash(request_uri: &str) -> Option<String> {
    let random = request_uri.strip_prefix(REQUEST_URI_PREFIX)?;
    (random.len() == 43 && random.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| sha256_hex(random.as_bytes()))
}

/// Push an authorization request; answers its `request_uri`.
#[utoipa::path(post, path = "/oauth/par", tag = "oauth",
    request_body(content(
        (super::schema::PushedAuthorizationRequest = "application/x-www-form-urlencoded"),
        (super::schema::PushedAuthorizationRequest = "application/json"),
    )),
    security((), ("client" = [])),
    params(("DPoP" = Option<String>, Header, description = "A DPoP proof (RFC 9449): the tokens issued are bound to its key")),
    responses(
        (status = 201, description = "Stored: send the browser to `/oauth/authorize?client_id=…&request_uri=…` within `expires_in` seconds", body = super::schema::PushedAuthorizationResponse),
        super::schema::OAuthErrors,
    ))]
pub async fn push(State(state): State<AppState>, params: Params) -> Result<Response, OAuthError> {
    let app = authenticate_client(&state, &params).await?;
    if params.values.contains_key("request_uri") {
        return Err(OAuthError::new(
            ErrorCode::InvalidRequest,
            "request_uri cannot be pushed",
        ));
    }
    // RFC 9449 §10.1: a DPoP proof here binds the code to its key, as `dpop_jkt` would.
    let proof = super::dpop::check_endpoint_request(&state, &params).await?;
    let mut values = params.values;
    if let Some(proof) = proof {
        if values.get("dpop_jkt").is_some_and(|j| *j != proof.jkt) {
            return Err(OAuthError::new(
                ErrorCode::InvalidDpopProof,
                "dpop_jkt is not the thumbprint of the DPoP proof's key",
            ));
        }
        values.insert("dpop_jkt".into(), proof.jkt);
    }
    values.insert("client_id".into(), app.client_id.clone());
    // The same checks as the authorization endpoint, answered here as JSON; what passes them is
    // the request's own parameters, the ones stored.
    let valid = authorize::validate(&state, values.into_iter().collect())
        .await
        .map_err(|refusal| match refusal {
            Refusal::Page(key) => OAuthError::new(ErrorCode::InvalidRequest, Lang::En.t(key)),
            Refusal::Redirect {
                code, description, ..
            } => OAuthError::new(code, description),
        })?;
    let random = random_base62(43);
    let t = now();
    state
        .store
        .push_request(
            &sha256_hex(random.as_bytes()),
            &app.id,
            &valid.raw,
            t,
            t + EXPIRES_IN,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({
            "request_uri": format!("{REQUEST_URI_PREFIX}{random}"),
            "expires_in": EXPIRES_IN,
        })),
    )
        .into_response())
}
