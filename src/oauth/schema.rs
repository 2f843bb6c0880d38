//! The shapes of the authorization server's JSON requests and answers, for the OpenAPI
//! document (`/api/openapi.json`). The handlers build their answers field by field; the
//! schemathesis run in CI checks every answer against these.

#![allow(dead_code)]

use utoipa::ToSchema;

/// `POST /oauth/token`, as a form (`application/x-www-form-urlencoded`) or a JSON object.
/// A confidential app authenticates with HTTP Basic or `client_id` + `client_secret` here.
#[derive(ToSchema)]
pub struct TokenRequest {
    /// `authorization_code`, `refresh_token`, `client_credentials`,
    /// `urn:ietf:params:oauth:grant-type:device_code` or
    /// `urn:ietf:params:oauth:grant-type:token-exchange`.
    #[schema(example = "authorization_code")]
    grant_type: String,
    client_id: Option<String>,
    client_secret: Option<String>,
    /// authorization_code: the code from the redirect.
    code: Option<String>,
    /// authorization_code: required when the authorization request carried it.
    redirect_uri: Option<String>,
    /// authorization_code: the PKCE verifier (43–128 characters).
    code_verifier: Option<String>,
    /// refresh_token: the refresh token to rotate.
    refresh_token: Option<String>,
    /// refresh_token or client_credentials: space-separated scopes (narrower than granted).
    scope: Option<String>,
    /// device_code: the code from `/oauth/device/code`.
    device_code: Option<String>,
    /// The resource server the tokens are for (RFC 8707): one registered on this provider.
    resource: Option<String>,
    /// token-exchange (RFC 8693): the user's access token to exchange.
    subject_token: Option<String>,
    /// token-exchange: `urn:ietf:params:oauth:token-type:access_token`.
    subject_token_type: Option<String>,
    /// token-exchange: `urn:ietf:params:oauth:token-type:access_token` (the only one).
    requested_token_type: Option<String>,
    /// token-exchange: the resource server the new token is for, if not given as `resource`.
    audience: Option<String>,
}

/// A token answer (RFC 6749 §5.1).
#[derive(ToSchema)]
pub struct TokenResponse {
    #[schema(example = "lk_at_…")]
    access_token: String,
    /// `Bearer`, or `DPoP` when the request carried a DPoP proof and the access token is bound
    /// to its key (RFC 9449).
    #[schema(example = "Bearer")]
    token_type: String,
    /// Seconds until the access token expires.
    expires_in: i64,
    /// The granted scopes, space-separated.
    scope: String,
    /// When the token was issued (Unix seconds).
    created_at: i64,
    /// A new refresh token (the one presented, if any, is retired).
    refresh_token: Option<String>,
    /// An OpenID Connect ID token (RS256), when `openid` was granted.
    id_token: Option<String>,
    /// token-exchange: `urn:ietf:params:oauth:token-type:access_token`.
    issued_token_type: Option<String>,
}

/// `POST /oauth/par` (RFC 9126): the authorization request's parameters, with the client's
/// authentication as at the token endpoint.
#[derive(ToSchema)]
pub struct PushedAuthorizationRequest {
    #[schema(example = "code")]
    response_type: String,
    client_id: Option<String>,
    client_secret: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    #[schema(example = "S256")]
    code_challenge_method: Option<String>,
    nonce: Option<String>,
    prompt: Option<String>,
    max_age: Option<String>,
    /// Bind the code to this DPoP key thumbprint (RFC 9449 §10); a `DPoP` header here does the
    /// same.
    dpop_jkt: Option<String>,
    /// The resource server the tokens will be for (RFC 8707).
    resource: Option<String>,
}

/// RFC 9126 §2.2.
#[derive(ToSchema)]
pub struct PushedAuthorizationResponse {
    /// Single use. `urn:ietf:params:oauth:request_uri:` and 43 random characters.
    request_uri: String,
    /// Seconds it stays usable.
    expires_in: i64,
}

/// `POST /oauth/revoke` (RFC 7009).
#[derive(ToSchema)]
pub struct RevokeRequest {
    /// An access or refresh token of the calling app.
    token: String,
    /// `access_token` or `refresh_token`.
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// Revocation answers an empty object whatever the token was.
#[derive(ToSchema)]
pub struct Empty {}

/// `POST /oauth/introspect` (RFC 7662), confidential apps only.
#[derive(ToSchema)]
pub struct IntrospectRequest {
    token: String,
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// Whether a token is live, and what it allows (RFC 7662 §2.2). An inactive token is
/// `{"active": false}` and nothing else.
#[derive(ToSchema)]
pub struct Introspection {
    active: bool,
    scope: Option<String>,
    client_id: Option<String>,
    /// `Bearer`, `DPoP` (a token bound to a key) or `refresh_token`.
    token_type: Option<String>,
    /// For a DPoP-bound token: `{"jkt": thumbprint}` of its key (RFC 9449 §6.2).
    cnf: Option<Confirmation>,
    /// The resource server the token is for (RFC 8707); absent for latchkey's own API.
    aud: Option<String>,
    /// For a token made by a token exchange: `{"sub": client_id}` of the app acting for the
    /// user, nesting the actors before it (RFC 8693 §4.1).
    act: Option<serde_json::Value>,
    iat: Option<i64>,
    exp: Option<i64>,
    iss: Option<String>,
    /// The user's stable ID (absent for client-credentials tokens).
    sub: Option<String>,
    username: Option<String>,
}

/// The key a token is bound to.
#[derive(ToSchema)]
pub struct Confirmation {
    /// The key's JWK SHA-256 thumbprint (RFC 7638).
    jkt: String,
}

/// `POST /oauth/device/code` (RFC 8628 §3.1).
#[derive(ToSchema)]
pub struct DeviceCodeRequest {
    client_id: Option<String>,
    client_secret: Option<String>,
    /// Space-separated scopes; `profile` when omitted.
    scope: Option<String>,
}

/// RFC 8628 §3.2.
#[derive(ToSchema)]
pub struct DeviceCodeResponse {
    device_code: String,
    /// Eight letters shown as `XXXX-XXXX`.
    #[schema(example = "BDWP-HQRT")]
    user_code: String,
    verification_uri: String,
    verification_uri_complete: String,
    expires_in: i64,
    /// Seconds to wait between polls.
    interval: i64,
}

/// OpenID Connect userinfo (Core §5.3): `sub` always, profile claims with `profile`, email
/// claims with `email`.
#[derive(ToSchema)]
pub struct UserInfo {
    /// The user's stable UUID.
    sub: String,
    name: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    display_name: Option<String>,
    preferred_username: Option<String>,
    /// IANA time zone.
    zoneinfo: Option<String>,
    email: Option<String>,
    email_verified: Option<bool>,
}

/// OpenID Connect Discovery 1.0 / RFC 8414 metadata.
#[derive(ToSchema)]
pub struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    jwks_uri: String,
    revocation_endpoint: String,
    device_authorization_endpoint: String,
    introspection_endpoint: String,
    pushed_authorization_request_endpoint: String,
    /// OpenID Connect RP-Initiated Logout.
    end_session_endpoint: String,
    /// OpenID Connect Back-Channel Logout (without `sid`).
    backchannel_logout_supported: bool,
    backchannel_logout_session_supported: bool,
    /// Dynamic client registration (RFC 7591), when this server allows it.
    registration_endpoint: Option<String>,
    require_pushed_authorization_requests: bool,
    scopes_supported: Vec<String>,
    response_types_supported: Vec<String>,
    response_modes_supported: Vec<String>,
    grant_types_supported: Vec<String>,
    code_challenge_methods_supported: Vec<String>,
    token_endpoint_auth_methods_supported: Vec<String>,
    revocation_endpoint_auth_methods_supported: Vec<String>,
    introspection_endpoint_auth_methods_supported: Vec<String>,
    subject_types_supported: Vec<String>,
    id_token_signing_alg_values_supported: Vec<String>,
    claims_supported: Vec<String>,
    prompt_values_supported: Vec<String>,
    authorization_response_iss_parameter_supported: bool,
    ui_locales_supported: Vec<String>,
    /// The algorithms DPoP proofs may be signed with (RFC 9449 §5.1).
    dpop_signing_alg_values_supported: Vec<String>,
}

/// The public keys that verify ID tokens (RFC 7517).
#[derive(ToSchema)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

/// One RSA public key.
#[derive(ToSchema)]
pub struct Jwk {
    #[schema(example = "RSA")]
    kty: String,
    kid: String,
    #[schema(example = "sig")]
    r#use: Option<String>,
    #[schema(example = "RS256")]
    alg: Option<String>,
    /// Modulus, base64url.
    n: String,
    /// Exponent, base64url.
    e: String,
}

use crate::api::openapi::ErrorBody;

/// The errors of the token, revocation, introspection and device endpoints (RFC 6749 §5.2).
#[derive(utoipa::IntoResponses)]
pub enum OAuthErrors {
    /// `invalid_request`, `invalid_grant`, `invalid_scope`, `unsupported_grant_type`,
    /// `unsupported_token_type`, `unauthorized_client`, or a device-flow answer
    /// (`authorization_pending`, `slow_down`, `access_denied`, `expired_token`),
    /// `invalid_target` (an unknown resource, or not the one granted), or a DPoP
    /// refusal (`invalid_dpop_proof`; `use_dpop_nonce` with the nonce in `DPoP-Nonce`).
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// `invalid_client`: unknown client or wrong secret.
    #[response(status = 401)]
    InvalidClient(ErrorBody),
    /// `rate_limited`: too many requests; see `Retry-After`.
    #[response(status = 429)]
    RateLimited(ErrorBody),
}

/// The errors of userinfo (RFC 6750 §3.1).
#[derive(utoipa::IntoResponses)]
pub enum BearerErrors {
    /// `invalid_request` (no token) or `invalid_token`; for a DPoP-bound token,
    /// `invalid_dpop_proof` or `use_dpop_nonce` (with `DPoP-Nonce`); see `WWW-Authenticate`.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// `insufficient_scope`: the token lacks `openid`.
    #[response(status = 403)]
    InsufficientScope(ErrorBody),
    /// `rate_limited`; see `Retry-After`.
    #[response(status = 429)]
    RateLimited(ErrorBody),
}
