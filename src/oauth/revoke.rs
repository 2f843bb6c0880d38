//! Token revocation (RFC 7009) and introspection (RFC 7662).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::{ErrorCode, OAuthError};
use super::params::{Params, authenticate_client};
use crate::app::AppState;
use crate::domain::secret::{self, TokenKind};
use crate::store::now;

/// The stored hash of an access or refresh token, from its value: an opaque token, or a JWT
/// access token (RFC 9068) this provider signed, whose `jti` is that hash. Personal access
/// tokens are not OAuth tokens here.
pub(super) async fn token_hash(state: &AppState, text: &str) -> Result<Option<String>, OAuthError> {
    if let Some(token) = secret::parse(TokenKind::AccessToken, text)
        .or_else(|| secret::parse(TokenKind::RefreshToken, text))
    {
        return Ok(Some(token.hash()));
    }
    let claims = super::keys::verified_claims(&state.store, text, "at+jwt").await?;
    Ok(claims.and_then(|c| {
        (c["iss"] == state.config.issuer.as_str())
            .then(|| c["jti"].as_str().map(str::to_owned))
            .flatten()
    }))
}

/// Answers 200 whatever the token was (RFC 7009 §2.2), and never touches another app's token.
#[utoipa::path(post, path = "/oauth/revoke", tag = "oauth",
    request_body(content(
        (super::schema::RevokeRequest = "application/x-www-form-urlencoded"),
        (super::schema::RevokeRequest = "application/json"),
    )),
    security((), ("client" = [])),
    responses(
        (status = 200, description = "Revoked, or there was nothing to revoke", body = super::schema::Empty),
        super::schema::OAuthErrors,
    ))]
pub async fn revoke(State(state): State<AppState>, params: Params) -> Result<Response, OAuthError> {
    let app = authenticate_client(&state, &params).await?;
    let text = params.require("token")?;
    if let Some(hint) = params.get("token_type_hint")
        && !matches!(hint, "access_token" | "refresh_token")
    {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedTokenType,
            "token_type_hint must be access_token or refresh_token",
        ));
    }
    if let Some(hash) = token_hash(&state, text).await?
        && let Some(info) = state.store.token_info_by_hash(&hash, now()).await?
        && info.app_id == app.id
    {
        state.store.revoke_token(&info, &hash, now()).await?;
    }
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(json!({}))).into_response())
}

/// For confidential apps (resource servers): is this token live, and what does it allow?
#[utoipa::path(post, path = "/oauth/introspect", tag = "oauth",
    request_body(content(
        (super::schema::IntrospectRequest = "application/x-www-form-urlencoded"),
        (super::schema::IntrospectRequest = "application/json"),
    )),
    security(("client" = [])),
    responses(
        (status = 200, description = "The token's state", body = super::schema::Introspection),
        super::schema::OAuthErrors,
    ))]
pub async fn introspect(
    State(state): State<AppState>,
    params: Params,
) -> Result<Response, OAuthError> {
    let app = authenticate_client(&state, &params).await?;
    if !app.confidential {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "only confidential apps may introspect tokens",
        ));
    }
    let text = params.require("token")?;
    let inactive = || {
        (
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(json!({"active": false})),
        )
            .into_response()
    };
    let Some(hash) = token_hash(&state, text).await? else {
        return Ok(inactive());
    };
    let Some(info) = state.store.token_info_by_hash(&hash, now()).await? else {
        return Ok(inactive());
    };
    if !info.active {
        return Ok(inactive());
    }
    let mut body = json!({
        "active": true,
        "scope": info.scopes.to_string(),
        "client_id": info.client_id,
        "token_type": match (info.kind.as_str(), &info.dpop_jkt) {
            ("refresh", _) => "refresh_token",
            (_, Some(_)) => "DPoP",
            _ => "Bearer",
        },
        "iat": info.created_at,
        "iss": state.config.issuer,
    });
    if let Some(audience) = &info.audience {
        body["aud"] = json!(audience);
    }
    // RFC 8693 §4.1: who acts for the user.
    if let Some(act) = info
        .act
        .as_deref()
        .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
    {
        body["act"] = act;
    }
    // RFC 9449 §6.2: the key the token is bound to.
    if let Some(jkt) = &info.dpop_jkt {
        body["cnf"] = json!({ "jkt": jkt });
    }
    if let Some(exp) = info.expires_at {
        body["exp"] = json!(exp);
    }
    if let (Some(user_id), Some(email)) = (&info.user_id, &info.user_email) {
        body["sub"] = json!(user_id);
        body["username"] = json!(email);
    }
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response())
}
