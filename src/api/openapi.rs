//! The OpenAPI 3.1 document of every JSON endpoint, built from the handlers' `#[utoipa::path]`
//! attributes as the routers register them (`utoipa_axum::routes!`), so a route cannot be
//! served without being described. Served at `/api/openapi.json`; the explorer at `/docs/api`
//! renders it.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, AuthorizationCode, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes,
    SecurityScheme,
};
use utoipa::openapi::{OpenApi, ServerBuilder};
use utoipa::{Modify, ToSchema};

use crate::app::AppState;
use crate::domain::scope;

/// Every error a JSON endpoint answers: an OAuth error code (RFC 6749 §5.2, RFC 6750 §3.1,
/// RFC 8628 §3.5) or `invalid_request`, `not_found`, `forbidden`, `rate_limited`…
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// A machine-readable code.
    #[schema(example = "invalid_request")]
    pub error: String,
    /// What went wrong, in English.
    pub error_description: Option<String>,
    /// Validation errors of the client API, field by field.
    pub fields: Option<std::collections::BTreeMap<String, String>>,
}

/// Security scheme names used by `security(...)` in the handlers' attributes.
const BEARER: &str = "bearer";
const CLIENT: &str = "client";
const API_KEY: &str = "api_key";
const API_KEY_QUERY: &str = "api_key_query";
const OAUTH: &str = "oauth2";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "latchkey",
        description = "OAuth 2.1 / OpenID Connect provider, OAuth Apps platform and coding-activity API. \
            The guide at `/docs` explains each flow with runnable examples.",
        license(name = "MIT OR Apache-2.0"),
    ),
    modifiers(&Security),
    components(schemas(ErrorBody)),
    tags(
        (name = "oauth", description = "Authorization server: token, revocation, introspection, device flow, userinfo, metadata"),
        (name = "clients", description = "Managing OAuth apps (a personal access token with scope `apps`, or a session)"),
        (name = "activity", description = "Coding activity: WakaTime-compatible heartbeats and the Hackatime endpoints"),
        (name = "operations", description = "Health and readiness"),
    )
)]
struct Base;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An OAuth access token (`lk_at_…`) or a personal access token (`lk_pat_…`).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            CLIENT,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "client_secret_basic: the client ID and secret. Public apps send `client_id` in the body instead.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "WakaTime's form: the user's API key as the Basic user name (a Bearer API key works too).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            API_KEY_QUERY,
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("api_key"))),
        );
    }
}

/// The whole document: the base above plus every path the routers described, served from
/// `issuer`.
pub fn document(paths: OpenApi, issuer: &str) -> OpenApi {
    let mut doc = <Base as utoipa::OpenApi>::openapi().merge_from(paths);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    // The code flow, for clients that read the document (absolute URLs: this issuer's).
    let descriptions: Vec<(&str, String)> = scope::KNOWN
        .iter()
        .map(|name| (*name, crate::i18n::Lang::En.t(scope::description_key(name))))
        .collect();
    let scopes = Scopes::from_iter(descriptions.iter().map(|(n, d)| (*n, d.as_str())));
    let flow = AuthorizationCode::new(
        format!("{issuer}/oauth/authorize"),
        format!("{issuer}/oauth/token"),
        scopes,
    );
    if let Some(components) = doc.components.as_mut() {
        components.add_security_scheme(
            OAUTH,
            SecurityScheme::OAuth2(OAuth2::new([Flow::AuthorizationCode(flow)])),
        );
    }
    doc.servers = Some(vec![ServerBuilder::new().url(issuer).build()]);
    doc
}

/// The errors any client-API or activity-API call can answer.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum ApiErrors {
    /// `invalid_request`: a malformed body or parameter (field errors in `fields`).
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// `unauthorized` (no credential) or `invalid_token`; see `WWW-Authenticate`.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// `insufficient_scope`, or `forbidden`.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// `not_found`.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// `invalid_request`: the body must be `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// `rate_limited`; see `Retry-After`.
    #[response(status = 429)]
    TooManyRequests(ErrorBody),
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi_json(State(state): State<AppState>) -> Response {
    let body = state.openapi.get_or_init(|| {
        let (_, paths) = crate::app::json_routes().split_for_parts();
        let doc = document(paths, &state.config.issuer);
        Bytes::from(doc.to_pretty_json().unwrap_or_default())
    });
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body.clone(),
    )
        .into_response()
}
