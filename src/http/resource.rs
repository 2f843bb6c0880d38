//! The caller of the resource API: a user's OAuth access token or personal access token.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::api::{ApiError, Scheme, presented_token};
use super::client_ip;
use super::ratelimit::spend_quota;
use crate::app::AppState;
use crate::domain::scope::Scopes;
use crate::domain::secret::{self, Secret, TokenKind};
use crate::domain::user::User;
use crate::oauth::dpop;
use crate::store::now;
use crate::store::tokens::TokenInfo;

/// Why an access token was not accepted.
#[derive(Debug)]
pub enum Refused {
    /// Unknown, expired, revoked, a refresh token, a disabled user's, or presented in the wrong
    /// scheme for its binding.
    InvalidToken,
    /// A DPoP-bound token whose proof failed.
    Proof(dpop::Refusal),
    Database(sqlx::Error),
}

impl From<sqlx::Error> for Refused {
    fn from(e: sqlx::Error) -> Self {
        Refused::Database(e)
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::InvalidToken => ApiError::InvalidToken,
            Refused::Proof(refusal) => ApiError::Dpop(refusal),
            Refused::Database(e) => ApiError::Database(e),
        }
    }
}

/// The user behind a live OAuth access token (not a refresh token, not a token without a
/// user, not a disabled user's), noting the use on the grant (at most once a minute).
///
/// A DPoP-bound token counts only in the `DPoP` scheme, with a proof for this request made
/// with the token's key (RFC 9449 §7); an unbound token only in the `Bearer` scheme.
pub async fn access_token_user(
    state: &AppState,
    parts: &Parts,
    scheme: Scheme,
    token: &Secret,
) -> Result<(User, TokenInfo), Refused> {
    let t = now();
    let (info, user) = state
        .store
        .token_with_user(token, t)
        .await?
        .ok_or(Refused::InvalidToken)?;
    // `active` is false for a disabled user's token too. A token for another resource server
    // (RFC 8707) is not for this API.
    if !info.active || info.kind != "access" || info.audience.is_some() {
        return Err(Refused::InvalidToken);
    }
    match (&info.dpop_jkt, scheme) {
        (None, Scheme::Bearer) => {}
        (Some(jkt), Scheme::Dpop) => {
            let target = dpop::Target {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                access_token: Some(token.expose()),
            };
            let proof = dpop::check(state, &parts.headers, &target)
                .await
                .map_err(Refused::Proof)?
                .ok_or(Refused::Proof(dpop::Refusal::Invalid(
                    "a DPoP-bound token needs a DPoP proof",
                )))?;
            if proof.jkt != *jkt {
                return Err(Refused::Proof(dpop::Refusal::Invalid(
                    "the proof is not made with the key the token is bound to",
                )));
            }
        }
        _ => return Err(Refused::InvalidToken),
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
    Ok((user, info))
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
        let (scheme, text) = presented_token(parts).ok_or(ApiError::Unauthorized)?;
        let pat = secret::parse(TokenKind::PersonalAccessToken, text);
        let caller = if let Some(pat) = pat.filter(|_| scheme == Scheme::Bearer) {
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
            let (user, info) = access_token_user(state, parts, scheme, &token).await?;
            ResourceUser {
                user,
                scopes: info.scopes,
            }
        };
        resource_quota(state, parts, &caller.user.id).await?;
        Ok(caller)
    }
}
