//! Request parameters for the token, revocation and introspection endpoints: a form body or a
//! JSON body, each parameter at most once (RFC 6749 §3.2), and client authentication
//! (`client_secret_basic`, `client_secret_post`, or none for public apps).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use base64::Engine;

use super::error::{ErrorCode, OAuthError};
use crate::app::AppState;
use crate::http::client_ip;
use crate::store::{App, Store};

/// The parameters of a request, with the headers needed for client authentication and DPoP,
/// the path (a DPoP proof names it), and the client's IP address for rate limits.
pub struct Params {
    pub values: HashMap<String, String>,
    pub headers: HeaderMap,
    pub path: String,
    pub ip: String,
}

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| {
            OAuthError::new(ErrorCode::InvalidRequest, format!("`{name}` is required"))
        })
    }
}

fn bad(description: &str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRequest, description)
}

impl FromRequest<AppState> for Params {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let ip = client_ip(&parts, state.config.trust_proxy);
        let path = parts.uri.path().to_owned();
        let req = Request::from_parts(parts, body);
        let headers = req.headers().clone();
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|_| bad("the request body could not be read"))?;
        let values = parse_body(&content_type, &body)?;
        Ok(Params {
            values,
            headers,
            path,
            ip,
        })
    }
}

/// Every parameter the token, revocation, introspection and device endpoints read (the
/// pushed-authorization endpoint also reads the authorization request's own).
const PARAMETERS: [&str; 12] = [
    "grant_type",
    "client_id",
    "client_secret",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "scope",
    "device_code",
    "token",
    "token_type_hint",
    "request_uri",
];

fn recognized(name: &str) -> bool {
    PARAMETERS.contains(&name) || super::authorize::PARAMS.contains(&name)
}

/// The parameters of a token-endpoint body: a form (`application/x-www-form-urlencoded`) or a
/// JSON object (`application/json`), each parameter at most once. `content_type` is the media
/// type alone, lowercase.
pub fn parse_body(content_type: &str, body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let mut values = HashMap::new();
    match content_type {
        "application/x-www-form-urlencoded" => {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
                .map_err(|_| bad("the form body is not valid"))?;
            for (k, v) in pairs {
                if values.insert(k.clone(), v).is_some() {
                    return Err(bad(&format!("`{k}` appears more than once")));
                }
            }
        }
        "application/json" => {
            let object: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(body).map_err(|_| bad("the JSON body must be an object"))?;
            for (k, v) in object {
                let text = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    serde_json::Value::Null => continue,
                    // Unrecognized parameters are ignored (RFC 6749 §3.1, §3.2), whatever
                    // their JSON type.
                    _ if !recognized(&k) => continue,
                    _ => return Err(bad(&format!("`{k}` must be a string"))),
                };
                values.insert(k, text);
            }
        }
        _ => {
            return Err(bad(
                "send the parameters as application/x-www-form-urlencoded or application/json",
            ));
        }
    }
    Ok(values)
}

/// `Authorization: Basic` credentials, form-decoded as RFC 6749 §2.3.1 asks.
pub fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let invalid = || OAuthError::new(ErrorCode::InvalidClient, "malformed Basic credentials");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| invalid())?;
    let text = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (id, secret) = text.split_once(':').ok_or_else(invalid)?;
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((decode(id), decode(secret))))
}

/// Authenticate the client of a token-endpoint request. Confidential apps must present their
/// secret (Basic or in the body, not both); public apps present only their `client_id`.
///
/// Every request counts against its client IP's limit, and a confidential app's requests
/// against the app's own once it has authenticated (a tighter one for apps registered by
/// software). A public app is not limited as a whole:
/// anyone can name its `client_id`, so such a limit would let anyone lock out its users.
pub async fn authenticate_client(state: &AppState, params: &Params) -> Result<App, OAuthError> {
    let limits = &state.limits.token;
    limits
        .check(&[&format!("ip:{}", params.ip)])
        .await
        .map_err(OAuthError::rate_limited)?;
    let app = client(&state.store, params).await?;
    if app.confidential {
        limits
            .check(&[&format!("app:{}", app.client_id)])
            .await
            .map_err(OAuthError::rate_limited)?;
        // An app no person stands behind gets a tighter limit of its own.
        if app.ownerless() {
            state
                .limits
                .software
                .check(&[&format!("app:{}", app.client_id)])
                .await
                .map_err(OAuthError::rate_limited)?;
        }
    }
    Ok(app)
}

async fn client(store: &Store, params: &Params) -> Result<App, OAuthError> {
    let failed = || OAuthError::new(ErrorCode::InvalidClient, "client authentication failed");
    let basic = basic_credentials(&params.headers)?;
    let body_secret = params.get("client_secret");
    let (client_id, secret) = match (&basic, body_secret) {
        (Some(_), Some(_)) => return Err(bad("use one client authentication method, not two")),
        (Some((id, secret)), None) => {
            if params.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(bad("client_id does not match the credentials"));
            }
            (id.clone(), Some(secret.clone()))
        }
        (None, secret) => (
            params.get("client_id").ok_or_else(failed)?.to_owned(),
            secret.map(str::to_owned),
        ),
    };
    if !crate::domain::app::is_client_id(&client_id) {
        return Err(failed());
    }
    let app = store
        .app_by_client_id(&client_id)
        .await?
        .ok_or_else(failed)?;
    match (app.confidential, secret) {
        (true, Some(secret)) if Store::client_secret_matches(&app, &secret) => Ok(app),
        (false, None) => Ok(app),
        _ => Err(failed()),
    }
}
