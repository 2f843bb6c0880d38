//! The token endpoint (`/oauth/token`, alias `/oauth/access_token`): authorization_code,
//! refresh_token (rotation with a grace window and reuse detection), client_credentials.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::error::{ErrorCode, OAuthError};
use super::params::{Params, authenticate_client};
use crate::app::AppState;
use crate::domain::pkce;
use crate::domain::scope::{self, Scopes};
use crate::domain::secret::{self, TokenKind};
use crate::store::tokens::{
    Binding, CodeOutcome, Issue, IssueSpec, Issued, RefreshOutcome, Rotation,
};
use crate::store::{App, AuditEvent, AuditKind, now};

/// The token endpoint under GitHub's name.
#[utoipa::path(post, path = "/oauth/access_token", tag = "oauth",
    request_body(content(
        (super::schema::TokenRequest = "application/x-www-form-urlencoded"),
        (super::schema::TokenRequest = "application/json"),
    )),
    security((), ("client" = [])),
    params(("DPoP" = Option<String>, Header, description = "A DPoP proof (RFC 9449): the tokens issued are bound to its key")),
    responses(
        (status = 200, description = "Tokens issued", body = super::schema::TokenResponse),
        super::schema::OAuthErrors,
    ))]
pub async fn access_token(state: State<AppState>, params: Params) -> Result<Response, OAuthError> {
    token(state, params).await
}

pub(super) fn invalid_grant(description: &str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidGrant, description)
}

/// Exchange a code, rotate a refresh token, or get a client-credentials or device-flow token.
#[utoipa::path(post, path = "/oauth/token", tag = "oauth",
    request_body(content(
        (super::schema::TokenRequest = "application/x-www-form-urlencoded"),
        (super::schema::TokenRequest = "application/json"),
    )),
    security((), ("client" = [])),
    params(("DPoP" = Option<String>, Header, description = "A DPoP proof (RFC 9449): the tokens issued are bound to its key")),
    responses(
        (status = 200, description = "Tokens issued", body = super::schema::TokenResponse),
        super::schema::OAuthErrors,
    ))]
pub async fn token(State(state): State<AppState>, params: Params) -> Result<Response, OAuthError> {
    let grant_type = params.require("grant_type")?.to_owned();
    let app = authenticate_client(&state, &params).await?;
    let binding = binding(&state, &app, &params).await?;
    let mut response = match grant_type.as_str() {
        "authorization_code" => authorization_code(&state, &app, &params, binding).await,
        "refresh_token" => refresh_token(&state, &app, &params, binding).await,
        "client_credentials" => client_credentials(&state, &app, &params, &binding).await,
        super::device::GRANT_TYPE => super::device::poll(&state, &app, &params, &binding).await,
        super::exchange::GRANT_TYPE => {
            super::exchange::exchange(&state, &app, &params, binding).await
        }
        _ => Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "this grant type is not supported",
        )),
    }?;
    // RFC 9449 §8.2: a fresh nonce with each answer, so the client's next proof has one.
    if state.config.dpop_nonce
        && let Some(nonce) = super::dpop::fresh_nonce(&state).await
    {
        response.headers_mut().insert("dpop-nonce", nonce);
    }
    Ok(response)
}

/// The DPoP key the tokens of this request are bound to: the key of the request's proof,
/// checked in full before any code or refresh token is spent.
async fn binding(state: &AppState, app: &App, params: &Params) -> Result<Binding, OAuthError> {
    let proof = super::dpop::check_endpoint_request(state, params).await?;
    if proof.is_none() && app.dpop_bound {
        return Err(OAuthError::new(
            ErrorCode::InvalidDpopProof,
            "this app's tokens are DPoP-bound: send a DPoP proof",
        ));
    }
    // RFC 8707 §2.2: the resource the tokens are for, one of this provider's.
    let audience = match params.get("resource") {
        None => None,
        Some(asked) => Some(resource_identifier(state, "resource", asked).await?),
    };
    Ok(Binding {
        dpop_jkt: proof.map(|p| p.jkt),
        // RFC 9449 §5: a public app's refresh token is bound too (a confidential app's is
        // already bound to its credentials).
        bind_refresh: !app.confidential,
        audience,
        act: None,
    })
}

/// `asked`, the value of `parameter`, if it names one of this provider's resource servers
/// exactly; `invalid_target` otherwise.
pub(super) async fn resource_identifier(
    state: &AppState,
    parameter: &str,
    asked: &str,
) -> Result<String, OAuthError> {
    let server = state.store.resource_server(asked).await?.ok_or_else(|| {
        OAuthError::new(
            ErrorCode::InvalidTarget,
            format!("{parameter} is not a resource server of this provider"),
        )
    })?;
    Ok(server.identifier)
}

/// `at_hash`: the left half of SHA-256 of the access token, base64url (OpenID Connect §3.1.3.6).
fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
}

#[derive(Serialize)]
struct IdTokenClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    azp: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    at_hash: String,
}

/// Whose tokens an ID token speaks for: the user, when they signed in, the request's nonce.
pub(super) struct Identity<'a> {
    pub user_id: &'a str,
    pub auth_time: i64,
    pub nonce: Option<&'a str>,
}

/// An ID token when the tokens carry `openid` (OpenID Connect Core §2); `access` is the access
/// token as the client gets it (for `at_hash`).
async fn id_token(
    state: &AppState,
    app: &App,
    who: &Identity<'_>,
    issued: &Issued,
    access: &str,
) -> Result<Option<String>, OAuthError> {
    if !issued.scopes.contains("openid") {
        return Ok(None);
    }
    // The statement that spent the code (or the device code) found the user enabled, and the
    // tokens it wrote belong to that user: no second read of the user is needed.
    let t = now();
    let claims = IdTokenClaims {
        iss: &state.config.issuer,
        sub: who.user_id,
        aud: &app.client_id,
        azp: &app.client_id,
        exp: t + 3600,
        iat: t,
        auth_time: who.auth_time,
        nonce: who.nonce,
        at_hash: at_hash(access),
    };
    Ok(Some(state.keys.sign(&state.store, &claims, "JWT").await?))
}

/// RFC 9068 §2.2: the claims of a JWT access token.
#[derive(Serialize)]
struct AccessTokenClaims<'a> {
    iss: &'a str,
    exp: i64,
    aud: &'a str,
    /// The user, or the app itself for a client-credentials token.
    sub: &'a str,
    client_id: &'a str,
    iat: i64,
    /// The SHA-256 of the opaque token stored for it: what revocation and introspection find.
    jti: String,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<serde_json::Value>,
    /// RFC 8693 §4.1: who acts for the user (a token exchange's).
    #[serde(skip_serializing_if = "Option::is_none")]
    act: Option<serde_json::Value>,
}

/// The access token as the client gets it: the opaque token, or, for a resource server that
/// asked for them, a JWT (RFC 9068, `typ: at+jwt`) signed with the provider keys.
async fn presented_access(
    state: &AppState,
    app: &App,
    issued: &Issued,
) -> Result<String, OAuthError> {
    let opaque = issued.access.expose().to_owned();
    let Some(audience) = &issued.audience else {
        return Ok(opaque);
    };
    let jwt = state
        .store
        .resource_server(audience)
        .await?
        .is_some_and(|server| server.jwt);
    if !jwt {
        return Ok(opaque);
    }
    let claims = AccessTokenClaims {
        iss: &state.config.issuer,
        exp: issued.access_expires_at,
        aud: audience,
        sub: issued.user_id.as_deref().unwrap_or(&app.client_id),
        client_id: &app.client_id,
        iat: issued.created_at,
        jti: issued.access.hash(),
        scope: issued.scopes.to_string(),
        cnf: issued.dpop_jkt.as_ref().map(|jkt| json!({ "jkt": jkt })),
        act: issued
            .act
            .as_deref()
            .and_then(|act| serde_json::from_str(act).ok()),
    };
    Ok(state.keys.sign(&state.store, &claims, "at+jwt").await?)
}

/// The success response of RFC 6749 §5.1 with latchkey's `created_at`, an ID token when
/// `identity` is given and `openid` was granted.
pub(super) async fn answer(
    state: &AppState,
    app: &App,
    issued: &Issued,
    identity: Option<Identity<'_>>,
) -> Result<Response, OAuthError> {
    Ok(respond(answer_body(state, app, issued, identity).await?))
}

/// The body of [`answer`].
pub(super) async fn answer_body(
    state: &AppState,
    app: &App,
    issued: &Issued,
    identity: Option<Identity<'_>>,
) -> Result<Value, OAuthError> {
    let access = presented_access(state, app, issued).await?;
    let id_token = match identity {
        Some(who) => id_token(state, app, &who, issued, &access).await?,
        None => None,
    };
    let mut body = json!({
        "access_token": access,
        "token_type": if issued.dpop_jkt.is_some() { "DPoP" } else { "Bearer" },
        "expires_in": (issued.access_expires_at - now()).max(0),
        "scope": issued.scopes.to_string(),
        "created_at": issued.created_at,
    });
    if let Some(refresh) = &issued.refresh {
        body["refresh_token"] = Value::from(refresh.expose());
    }
    if let Some(id_token) = id_token {
        body["id_token"] = Value::from(id_token);
    }
    Ok(body)
}

/// A token answer: never cached.
pub(super) fn respond(body: Value) -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        axum::Json(body),
    )
        .into_response()
}

pub(super) fn refresh_ttl(state: &AppState, app: &App) -> Option<i64> {
    app.issue_refresh
        .then(|| i64::try_from(state.config.refresh_token_ttl.as_secs()).unwrap_or(i64::MAX / 2))
}

async fn authorization_code(
    state: &AppState,
    app: &App,
    params: &Params,
    binding: Binding,
) -> Result<Response, OAuthError> {
    let code_text = params.require("code")?;
    let Some(code) = secret::parse(TokenKind::AuthorizationCode, code_text) else {
        return Err(invalid_grant("the code is not valid"));
    };
    let redirect_uri = params.get("redirect_uri").map(str::to_owned);
    let verifier = params.get("code_verifier").map(str::to_owned);
    let app_id = app.id.clone();
    let access_ttl = app.access_token_ttl;
    let refresh = refresh_ttl(state, app);
    let t = now();
    let outcome = state
        .store
        .exchange_code(&code, t, move |grant| {
            if grant.app_id != app_id {
                return Err(invalid_grant("the code was issued to another client"));
            }
            // RFC 6749 §4.1.3: redirect_uri must match when the authorization request had it.
            match (&redirect_uri, grant.redirect_uri_given) {
                (Some(given), _) if *given != grant.redirect_uri => {
                    return Err(invalid_grant(
                        "redirect_uri does not match the authorization request",
                    ));
                }
                (None, true) => return Err(invalid_grant("redirect_uri is required")),
                _ => {}
            }
            match (&grant.code_challenge, &verifier) {
                (Some(challenge), Some(v)) if pkce::verify_s256(v, challenge) => {}
                (Some(_), Some(_)) => {
                    return Err(invalid_grant(
                        "code_verifier does not match the code_challenge",
                    ));
                }
                (Some(_), None) => return Err(invalid_grant("code_verifier is required")),
                (None, Some(_)) => {
                    return Err(invalid_grant(
                        "code_verifier given but the request had no code_challenge",
                    ));
                }
                (None, None) => {}
            }
            // RFC 9449 §10: a code bound to a key is redeemed only with a proof of that key.
            if grant.dpop_jkt.is_some() && grant.dpop_jkt != binding.dpop_jkt {
                return Err(OAuthError::new(
                    ErrorCode::InvalidDpopProof,
                    "the code is bound to another DPoP key (dpop_jkt)",
                ));
            }
            // RFC 8707 §2.2: the tokens are for the resource the authorization request named;
            // the token request may repeat it, not name another.
            let audience = match (&binding.audience, &grant.resource) {
                (Some(asked), Some(granted)) if asked != granted => {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidTarget,
                        "resource is not the one the authorization request named",
                    ));
                }
                (asked, granted) => asked.clone().or_else(|| granted.clone()),
            };
            let binding = Binding {
                audience,
                ..binding
            };
            Ok(IssueSpec {
                scopes: grant.scopes.clone(),
                access_ttl,
                refresh_ttl: refresh,
                binding,
            })
        })
        .await?;
    match outcome {
        CodeOutcome::Issued(issued_pair) => {
            let (grant, issued) = *issued_pair;
            let who = Identity {
                user_id: &grant.user_id,
                auth_time: grant.auth_time,
                nonce: grant.nonce.as_deref(),
            };
            answer(state, app, &issued, Some(who)).await
        }
        CodeOutcome::Refused(e) => Err(e),
        CodeOutcome::Replayed { revoked } => {
            let event = AuditEvent::new(AuditKind::CodeReplay, &app.client_id)
                .details(json!({"revoked_tokens": revoked}));
            state.store.audit(event, t).await?;
            tracing::warn!(client.id = %app.client_id, revoked, "an authorization code was used twice; its tokens were revoked");
            let data = json!({"reason": "authorization_code_reuse", "revoked_tokens": revoked});
            crate::outbox::queue_event(state, app, "tokens.revoked", data).await?;
            Err(invalid_grant("the code was already used"))
        }
        CodeOutcome::Invalid => Err(invalid_grant("the code is not valid or has expired")),
    }
}

async fn refresh_token(
    state: &AppState,
    app: &App,
    params: &Params,
    binding: Binding,
) -> Result<Response, OAuthError> {
    let text = params.require("refresh_token")?;
    let Some(refresh) = secret::parse(TokenKind::RefreshToken, text) else {
        return Err(invalid_grant("the refresh token is not valid"));
    };
    let narrower = match params.get("scope") {
        Some(s) => Some(
            Scopes::parse(s, &scope::KNOWN)
                .map_err(|_| OAuthError::new(ErrorCode::InvalidScope, "unknown scope"))?,
        ),
        None => None,
    };
    let Some(refresh_ttl) = refresh_ttl(state, app) else {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this app does not use refresh tokens",
        ));
    };
    let t = now();
    match state
        .store
        .refresh(
            &refresh,
            Rotation {
                app_id: app.id.clone(),
                narrower,
                access_ttl: app.access_token_ttl,
                refresh_ttl,
                binding,
            },
            t,
        )
        .await?
    {
        RefreshOutcome::Rotated(issued) | RefreshOutcome::Retried(issued) => {
            answer(state, app, &issued, None).await
        }
        RefreshOutcome::OtherResource => Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "the refresh token is for another resource",
        )),
        RefreshOutcome::KeyMismatch => Err(OAuthError::new(
            ErrorCode::InvalidDpopProof,
            "the refresh token is bound to a DPoP key: send a proof made with that key",
        )),
        RefreshOutcome::ScopeTooWide => Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "scope exceeds the original grant",
        )),
        RefreshOutcome::Reused { family_id, user_id } => {
            let event = AuditEvent::new(AuditKind::RefreshReuse, &app.client_id)
                .details(json!({"family": family_id, "user": user_id}));
            state.store.audit(event, t).await?;
            let data = json!({"reason": "refresh_token_reuse", "user": user_id});
            crate::outbox::queue_event(state, app, "tokens.revoked", data).await?;
            tracing::warn!(client.id = %app.client_id, "a retired refresh token was presented; its chain was revoked");
            Err(invalid_grant("the refresh token was already used"))
        }
        RefreshOutcome::Invalid => Err(invalid_grant("the refresh token is not valid")),
    }
}

/// Scopes a token with no user may carry: nothing about a person.
const CLIENT_CREDENTIALS_FORBIDDEN: [&str; 4] = ["openid", "offline_access", "profile", "email"];

async fn client_credentials(
    state: &AppState,
    app: &App,
    params: &Params,
    binding: &Binding,
) -> Result<Response, OAuthError> {
    if !app.confidential {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "only confidential apps may use client_credentials",
        ));
    }
    let requested = match params.get("scope") {
        Some(s) => Scopes::parse(s, &scope::KNOWN)
            .map_err(|_| OAuthError::new(ErrorCode::InvalidScope, "unknown scope"))?,
        None => Scopes::from_names(
            app.scopes
                .iter()
                .filter(|s| !CLIENT_CREDENTIALS_FORBIDDEN.contains(s)),
            &scope::KNOWN,
        )
        .unwrap_or_default(),
    };
    if !requested.is_subset_of(&app.scopes)
        || requested
            .iter()
            .any(|s| CLIENT_CREDENTIALS_FORBIDDEN.contains(&s))
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "scope not available to client_credentials",
        ));
    }
    let issued = state
        .store
        .issue_tokens(
            &Issue {
                app_id: &app.id,
                user_id: None,
                grant_id: None,
                scopes: &requested,
                access_ttl: app.access_token_ttl,
                refresh_ttl: None,
                binding,
            },
            now(),
        )
        .await?;
    answer(state, app, &issued, None).await
}
