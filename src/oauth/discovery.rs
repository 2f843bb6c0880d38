//! Metadata (OpenID Connect Discovery 1.0, RFC 8414) and the JWKS.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::OAuthError;
use super::keys;
use crate::app::AppState;
use crate::config::{ClientRegistration, Config};
use crate::domain::scope;

pub fn metadata(config: &Config) -> Value {
    let issuer = &config.issuer;
    let mut metadata = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "userinfo_endpoint": format!("{issuer}/oauth/userinfo"),
        "jwks_uri": format!("{issuer}/oauth/jwks"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "device_authorization_endpoint": format!("{issuer}/oauth/device/code"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "pushed_authorization_request_endpoint": format!("{issuer}/oauth/par"),
        "end_session_endpoint": format!("{issuer}/oauth/logout"),
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": false,
        "require_pushed_authorization_requests": false,
        "dpop_signing_alg_values_supported": super::dpop::ALGS,
        "scopes_supported": scope::KNOWN,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", super::device::GRANT_TYPE, super::exchange::GRANT_TYPE],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp", "at_hash",
            "name", "given_name", "family_name", "display_name", "preferred_username", "zoneinfo",
            "email", "email_verified"
        ],
        "prompt_values_supported": ["none", "login", "consent"],
        "authorization_response_iss_parameter_supported": true,
        "ui_locales_supported": ["en", "ru"],
    });
    if config.client_registration != ClientRegistration::Off {
        metadata["registration_endpoint"] = json!(format!("{issuer}/oauth/register"));
    }
    metadata
}

/// OpenID Connect Discovery 1.0 metadata.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "oauth",
    responses((status = 200, description = "Provider metadata", body = super::schema::Metadata)))]
pub async fn openid_configuration(State(state): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(metadata(&state.config)),
    )
        .into_response()
}

/// RFC 8414 authorization server metadata (the same document).
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth",
    responses((status = 200, description = "Authorization server metadata", body = super::schema::Metadata)))]
pub async fn authorization_server_metadata(state: State<AppState>) -> Response {
    openid_configuration(state).await
}

/// The public keys that verify ID tokens.
#[utoipa::path(get, path = "/oauth/jwks", tag = "oauth",
    responses((status = 200, description = "JSON Web Key Set", body = super::schema::Jwks)))]
pub async fn jwks(State(state): State<AppState>) -> Result<Response, OAuthError> {
    let set = keys::jwks(&state.store).await?;
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(set),
    )
        .into_response())
}
