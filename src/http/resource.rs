//! The caller of the resource API: a user's OAuth access token or personal access token.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::api::{ApiError, bearer_token};
use super::client_ip;
use super::ratelimit::spend_quota;
use crate::app::AppState;
use crate::domain::scope::Scopes;
use crate::domain::secret::{self, Secret, TokenKind};
use crate::domain::user::User;
use crate::store::now;
use crate::store::tokens::TokenInfo;

/// The user behind a live OAuth access token (not a refresh token, not a token without a
/// user, not a disabled user's), noting the use on the grant (at most once a minute).
pub async fn access_token_user(
    state: &AppState,
    parts: &Parts,
    token: &Secret,
) -> Result<Option<(User, TokenInfo)>, sqlx::Error> {
    let t = now();
    let Some((info, user)) = state.store.token_with_user(token, t).await? else {
        return Ok(None);
    };
    // `active` is false for a disabled user's token too.
    if !info.active || info.kind != "access" {
        return Ok(None);
    }
    if let Some(grant_id) = &info.grant_id {
        let client = || {
            let ua = parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            (client_ip(parts, state.config.trust_proxy), ua.to_owned())
        };
        state.store.touch_grant(grant_id, t, client).await?;
    }
    Ok(Some((user, info)))
}

/// Spend one request of the user's resource-API quota, which all of their apps and tokens share
/// (the resource API and userinfo).
pub async fn resource_quota(
    state: &AppState,
    parts: &Parts,
    user_id: &str,
) -> Result<(), ApiError> {
    spend_quota(state, parts, &format!("user:{user_id}")).await
}

/// A user and the scopes their token carries. Tokens without a user (client credentials) are
/// refused: this API is always about a person.
#[derive(Debug, Clone)]
pub struct ResourceUser {
    pub user: User,
    pub scopes: Scopes,
}

impl ResourceUser {
    /// Pass when the token carries any one of `scopes`.
    pub fn require_any(&self, scopes: &[&'static str]) -> Result<(), ApiError> {
        if scopes.iter().any(|s| self.scopes.contains(s)) {
            Ok(())
        } else {
            Err(ApiError::InsufficientScope(scopes[0]))
        }
    }
}

impl FromRequestParts<AppState> for ResourceUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let text = bearer_token(parts).ok_or(ApiError::Unauthorized)?;
        let caller = if let Some(pat) = secret::parse(TokenKind::PersonalAccessToken, text) {
            let (pat, user) = state
                .store
                .authenticate_pat(&pat, now())
                .await?
                .ok_or(ApiError::InvalidToken)?;
            ResourceUser {
                user,
                scopes: pat.scopes,
            }
        } else {
            let token =
                secret::parse(TokenKind::AccessToken, text).ok_or(ApiError::InvalidToken)?;
            let (user, info) = access_token_user(state, parts, &token)
                .await?
                .ok_or(ApiError::InvalidToken)?;
            ResourceUser {
                user,
                scopes: info.scopes,
            }
        };
        resource_quota(state, parts, &caller.user.id).await?;
        Ok(caller)
    }
}
