//! OpenID Connect userinfo (Core §5.3), with RFC 6750 bearer errors.

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::AppState;
use crate::domain::secret::{self, TokenKind};
use crate::http::api::presented_token;
use crate::http::resource::{Refused, access_token_user, resource_quota};

fn bearer_error(
    status: StatusCode,
    error: &str,
    description: &str,
    scope: Option<&str>,
) -> Response {
    let mut challenge = format!(
        "Bearer realm=\"latchkey\", error=\"{error}\", error_description=\"{description}\""
    );
    if let Some(scope) = scope {
        challenge.push_str(&format!(", scope=\"{scope}\""));
    }
    let mut response = (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// The signed-in user's claims, for a token with `openid`.
#[utoipa::path(get, path = "/oauth/userinfo", tag = "oauth",
    security(("bearer" = []), ("oauth2" = ["openid"])),
    params(("DPoP" = Option<String>, Header, description = "A DPoP proof (RFC 9449), required with `Authorization: DPoP` for a DPoP-bound token")),
    responses(
        (status = 200, description = "The claims the token's scopes allow", body = super::schema::UserInfo),
        super::schema::BearerErrors,
    ))]
pub async fn userinfo(State(state): State<AppState>, parts: Parts) -> Response {
    let Some((scheme, text)) = presented_token(&parts) else {
        let mut response = (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_request", "error_description": "a Bearer access token is required"}))).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"latchkey\""),
        );
        super::dpop::offer(headers);
        return response;
    };
    let invalid = || {
        bearer_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the access token is invalid, expired or revoked",
            None,
        )
    };
    // Only OAuth access tokens: personal access tokens are unknown here.
    let Some(token) = secret::parse(TokenKind::AccessToken, text) else {
        return invalid();
    };
    let (user, info) = match access_token_user(&state, &parts, scheme, &token).await {
        Ok(found) => found,
        Err(Refused::InvalidToken) => return invalid(),
        Err(Refused::Proof(refusal)) => return super::dpop::refusal_response(&refusal),
        Err(Refused::Database(e)) => {
            tracing::error!(error = %e, "database error at userinfo");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"error": "server_error"})),
            )
                .into_response();
        }
    };
    if let Err(e) = resource_quota(&state, &parts, &user.id).await {
        return e.into_response();
    }
    if !info.scopes.contains("openid") {
        return bearer_error(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "userinfo needs the openid scope",
            Some("openid"),
        );
    }
    let mut body = json!({ "sub": user.id });
    if info.scopes.contains("profile") {
        body["name"] = json!(user.name);
        body["given_name"] = json!(user.given_name);
        body["family_name"] = json!(user.family_name);
        body["display_name"] = json!(user.display_name);
        body["preferred_username"] = json!(if user.display_name.is_empty() {
            &user.name
        } else {
            &user.display_name
        });
        body["zoneinfo"] = json!(user.timezone);
    }
    if info.scopes.contains("email") {
        body["email"] = json!(user.email);
        body["email_verified"] = json!(user.email_verified);
    }
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
}

/// The same as `GET /oauth/userinfo` (OpenID Connect Core §5.3.1 allows both).
#[utoipa::path(post, path = "/oauth/userinfo", tag = "oauth",
    security(("bearer" = []), ("oauth2" = ["openid"])),
    params(("DPoP" = Option<String>, Header, description = "A DPoP proof (RFC 9449), required with `Authorization: DPoP` for a DPoP-bound token")),
    responses(
        (status = 200, description = "The claims the token's scopes allow", body = super::schema::UserInfo),
        super::schema::BearerErrors,
    ))]
pub async fn userinfo_post(state: State<AppState>, parts: Parts) -> Response {
    userinfo(state, parts).await
}
