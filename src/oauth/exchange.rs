//! Token exchange (RFC 8693) for confidential apps an administrator allowed: a service that
//! received a user's access token trades it for a narrower one for another resource server,
//! naming itself as the actor (`act`). The new token has the user's grant and chain, so it is
//! revoked with the token it came from; it carries no refresh token and lives no longer than
//! the token it came from.

use axum::response::Response;
use serde_json::{Value, json};

use super::error::{ErrorCode, OAuthError};
use super::params::Params;
use super::token::{answer_body, resource_identifier, respond};
use crate::app::AppState;
use crate::domain::scope::{self, Scopes};
use crate::store::tokens::{Binding, Issue};
use crate::store::{App, AuditEvent, AuditKind, now};

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The one token type latchkey exchanges and issues.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

fn invalid_request(description: &str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRequest, description)
}

pub async fn exchange(
    state: &AppState,
    app: &App,
    params: &Params,
    binding: Binding,
) -> Result<Response, OAuthError> {
    if !app.confidential || !app.token_exchange {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "an administrator has not allowed this app to exchange tokens",
        ));
    }
    let subject_text = params.require("subject_token")?;
    if params.require("subject_token_type")? != ACCESS_TOKEN_TYPE {
        return Err(invalid_request("only access tokens can be exchanged"));
    }
    if params
        .get("requested_token_type")
        .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
    {
        return Err(invalid_request("latchkey issues access tokens only"));
    }
    if params.get("actor_token").is_some() {
        return Err(invalid_request(
            "actor tokens are not supported: the app exchanging the token is the actor",
        ));
    }
    // The resource the new token is for: `resource` (checked with the binding) or `audience`.
    let audience = match (&binding.audience, params.get("audience")) {
        (Some(resource), _) => resource.clone(),
        (None, Some(audience)) => resource_identifier(state, "audience", audience).await?,
        (None, None) => {
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "name the resource server the new token is for (resource or audience)",
            ));
        }
    };
    let t = now();
    let subject = match super::revoke::token_hash(state, subject_text).await? {
        Some(hash) => state.store.token_info_by_hash(&hash, t).await?,
        None => None,
    }
    .filter(|info| info.active && info.kind == "access" && info.user_id.is_some())
    .ok_or_else(|| invalid_request("the subject token is not an active access token of a user"))?;
    let scopes = match params.get("scope") {
        Some(asked) => {
            let asked = Scopes::parse(asked, &scope::KNOWN)
                .map_err(|_| OAuthError::new(ErrorCode::InvalidScope, "unknown scope"))?;
            if !asked.is_subset_of(&subject.scopes) {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    "scope exceeds the subject token's",
                ));
            }
            asked
        }
        None => subject.scopes.clone(),
    };
    let left = subject.expires_at.map_or(i64::MAX, |e| e - t);
    let access_ttl = app.access_token_ttl.min(left).max(1);
    // RFC 8693 §4.1: the current actor, and the ones before it.
    let mut act = json!({ "sub": app.client_id });
    if let Some(prior) = subject
        .act
        .as_deref()
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
    {
        act["act"] = prior;
    }
    let binding = Binding {
        audience: Some(audience),
        act: Some(act.to_string()),
        bind_refresh: false,
        ..binding
    };
    let issue = Issue {
        app_id: &app.id,
        user_id: subject.user_id.as_deref(),
        grant_id: subject.grant_id.as_deref(),
        scopes: &scopes,
        access_ttl,
        refresh_ttl: None,
        binding: &binding,
    };
    let issued = state
        .store
        .issue_in_family(&issue, Some(&subject.family_id), t)
        .await?;
    let event = AuditEvent::new(AuditKind::TokenExchanged, &app.client_id).details(json!({
        "from_client": subject.client_id,
        "user": subject.user_id,
        "audience": issued.audience,
    }));
    state.store.audit(event, t).await?;
    let mut body = answer_body(state, app, &issued, None).await?;
    body["issued_token_type"] = json!(ACCESS_TOKEN_TYPE);
    Ok(respond(body))
}
