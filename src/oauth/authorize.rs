//! The authorization endpoint (RFC 6749 §4.1, OAuth 2.1, OpenID Connect Core §3.1.2) and the
//! consent decision.
//!
//! Order of checks (SPEC §8): client and redirect URI (an error page, never a redirect) →
//! request parameters (a redirect carrying the error) → sign-in → consent.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::json;
use url::Url;

use crate::app::AppState;
use crate::domain::app::match_redirect_uri;
use crate::domain::scope::{self, Scopes};
use crate::domain::user::User;
use crate::domain::{app::is_client_id, pkce};
use crate::http::ctx::urlencode;
use crate::http::{CsrfForm, Ctx, PageError};
use crate::store::tokens::CodeGrant;
use crate::store::{App, AuditEvent, AuditKind, now};

use super::error::ErrorCode;
use super::par;

pub fn router() -> Router<AppState> {
    Router::new().route("/oauth/authorize", get(authorize).post(decide))
}

/// The parameters an authorization request may carry, each at most once.
pub(super) const PARAMS: [&str; 12] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "prompt",
    "max_age",
    "dpop_jkt",
    "resource",
];

/// A request that passed every check that does not need the user.
#[derive(Debug, Clone)]
pub(super) struct Valid {
    app: App,
    /// Where to send the answer: the URI as the request gave it (a loopback port may differ
    /// from the registered one).
    redirect_uri: String,
    redirect_uri_given: bool,
    scopes: Scopes,
    state: Option<String>,
    code_challenge: Option<String>,
    nonce: Option<String>,
    prompt: Vec<String>,
    max_age: Option<i64>,
    /// The DPoP key the code will be bound to (RFC 9449 §10).
    dpop_jkt: Option<String>,
    /// The resource server the tokens will be for (RFC 8707).
    resource: Option<String>,
    /// The request's own parameters, carried through sign-in and the consent form.
    pub(super) raw: Vec<(String, String)>,
    /// Set when the parameters came from a pushed request (RFC 9126).
    pushed: Option<Pushed>,
}

/// The pushed request a browser named by its `request_uri`.
#[derive(Debug, Clone)]
struct Pushed {
    hash: String,
    request_uri: String,
    created_at: i64,
}

pub(super) enum Refusal {
    /// The client or redirect URI cannot be trusted: show a page, never redirect.
    Page(&'static str),
    /// Tell the client, at its verified redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        code: ErrorCode,
        description: &'static str,
    },
}

/// Append the answer's parameters (and `iss`, RFC 9207) to the client's redirect URI.
fn answer(redirect_uri: &str, issuer: &str, params: &[(&str, &str)]) -> Response {
    let mut url = match Url::parse(redirect_uri) {
        Ok(url) => url,
        Err(_) => return PageError::BadRequest.into_response(),
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
        }
        query.append_pair("iss", issuer);
    }
    Redirect::to(url.as_str()).into_response()
}

fn refuse(state: &AppState, refusal: Refusal) -> Response {
    match refusal {
        Refusal::Page(key) => PageError::Authorization(key).into_response(),
        Refusal::Redirect {
            redirect_uri,
            state: client_state,
            code,
            description,
        } => {
            let mut params = vec![("error", code.as_str()), ("error_description", description)];
            if let Some(s) = client_state.as_deref() {
                params.push(("state", s));
            }
            answer(&redirect_uri, &state.config.issuer, &params)
        }
    }
}

/// The request a browser brought: its own parameters, or those of the pushed request its
/// `request_uri` names (RFC 9126 §4), which replace anything else it carries.
async fn resolve(state: &AppState, pairs: Vec<(String, String)>) -> Result<Valid, Refusal> {
    let Some(request_uri) = pairs
        .iter()
        .find(|(k, _)| k == "request_uri")
        .map(|(_, v)| v.clone())
    else {
        let valid = validate(state, pairs).await?;
        if valid.app.require_par {
            return Err(valid.refuse(
                ErrorCode::InvalidRequest,
                "this app's authorization requests must be pushed to /oauth/par first",
            ));
        }
        return Ok(valid);
    };
    let unusable = || Refusal::Page("authorize-error-request-uri");
    let hash = par::request_hash(&request_uri).ok_or_else(unusable)?;
    let stored = match state.store.pushed_request(&hash, now()).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return Err(unusable()),
        Err(e) => {
            tracing::error!(error = %e, "database error at the authorization endpoint");
            return Err(Refusal::Page("error-500"));
        }
    };
    // The browser's client_id must be the one that pushed the request.
    let named = |params: &[(String, String)]| {
        params
            .iter()
            .find(|(k, _)| k == "client_id")
            .map(|(_, v)| v.clone())
    };
    if named(&pairs).is_none() || named(&pairs) != named(&stored.params) {
        return Err(unusable());
    }
    let mut valid = validate(state, stored.params).await?;
    valid.pushed = Some(Pushed {
        hash,
        request_uri,
        created_at: stored.created_at,
    });
    Ok(valid)
}

pub(super) async fn validate(
    state: &AppState,
    raw: Vec<(String, String)>,
) -> Result<Valid, Refusal> {
    let mut map: HashMap<&str, &str> = HashMap::new();
    let mut repeated = false;
    for (k, v) in &raw {
        if PARAMS.contains(&k.as_str()) && map.insert(k.as_str(), v.as_str()).is_some() {
            repeated = true;
        }
    }
    // 1. The client and where to answer it.
    let client_id = map.get("client_id").copied().unwrap_or("");
    if !is_client_id(client_id) {
        return Err(Refusal::Page("authorize-error-client"));
    }
    let app = match state.store.app_by_client_id(client_id).await {
        Ok(Some(app)) => app,
        Ok(None) => return Err(Refusal::Page("authorize-error-client")),
        Err(e) => {
            tracing::error!(error = %e, "database error at the authorization endpoint");
            return Err(Refusal::Page("error-500"));
        }
    };
    let requested_uri = map.get("redirect_uri").copied().filter(|u| !u.is_empty());
    let Some(registered) = match_redirect_uri(&app.redirect_uris, requested_uri) else {
        return Err(Refusal::Page("authorize-error-redirect-uri"));
    };
    let redirect_uri = requested_uri.unwrap_or(registered).to_owned();
    let client_state = map.get("state").map(|s| (*s).to_owned());
    let fail = |code, description| Refusal::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: client_state.clone(),
        code,
        description,
    };
    if repeated {
        return Err(fail(
            ErrorCode::InvalidRequest,
            "a parameter appears more than once",
        ));
    }

    // 2. The request itself.
    match map.get("response_type") {
        Some(&"code") => {}
        None | Some(&"") => {
            return Err(fail(ErrorCode::InvalidRequest, "response_type is required"));
        }
        Some(_) => {
            return Err(fail(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
    }
    let scope_text = map
        .get("scope")
        .copied()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or(scope::DEFAULT);
    let scopes = Scopes::parse(scope_text, &scope::KNOWN)
        .map_err(|_| fail(ErrorCode::InvalidScope, "unknown scope"))?;
    if !scopes.is_subset_of(&app.scopes) {
        return Err(fail(
            ErrorCode::InvalidScope,
            "this app may not ask for that scope",
        ));
    }
    let code_challenge = map.get("code_challenge").copied().filter(|c| !c.is_empty());
    let method = map
        .get("code_challenge_method")
        .copied()
        .filter(|c| !c.is_empty());
    match (code_challenge, method) {
        (None, None) if !app.confidential => {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "public clients must use PKCE (code_challenge with S256)",
            ));
        }
        (None, None) => {}
        (None, Some(_)) => {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "code_challenge_method without code_challenge",
            ));
        }
        (Some(_), Some(m)) if m != "S256" => {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "only code_challenge_method=S256 is supported",
            ));
        }
        // RFC 7636 §4.3: no method means `plain`, which latchkey does not accept.
        (Some(_), None) => {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "code_challenge_method=S256 is required",
            ));
        }
        (Some(c), Some(_)) if !pkce::well_formed(c) => {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "code_challenge is malformed",
            ));
        }
        (Some(_), Some(_)) => {}
    }
    let nonce = map.get("nonce").map(|n| (*n).to_owned());
    if nonce.as_ref().is_some_and(|n| n.len() > 512) {
        return Err(fail(ErrorCode::InvalidRequest, "nonce is too long"));
    }
    let prompt: Vec<String> = map
        .get("prompt")
        .map(|p| p.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    if prompt
        .iter()
        .any(|p| !matches!(p.as_str(), "none" | "login" | "consent" | "select_account"))
        || (prompt.iter().any(|p| p == "none") && prompt.len() > 1)
    {
        return Err(fail(ErrorCode::InvalidRequest, "prompt is not valid"));
    }
    // A SHA-256 thumbprint: 32 bytes in base64url.
    let dpop_jkt = map.get("dpop_jkt").map(|j| (*j).to_owned());
    if dpop_jkt.as_ref().is_some_and(|j| {
        j.len() != 43
            || !j
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) {
        return Err(fail(
            ErrorCode::InvalidRequest,
            "dpop_jkt must be a JWK SHA-256 thumbprint",
        ));
    }
    let resource = match map.get("resource") {
        None => None,
        Some(r) => Some(
            state
                .store
                .resource_server(r)
                .await
                .map_err(|_| fail(ErrorCode::ServerError, "internal error"))?
                .ok_or_else(|| {
                    fail(
                        ErrorCode::InvalidTarget,
                        "resource is not a resource server of this provider",
                    )
                })?
                .identifier,
        ),
    };
    let max_age = match map.get("max_age") {
        None | Some(&"") => None,
        Some(v) => Some(v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            fail(
                ErrorCode::InvalidRequest,
                "max_age must be a number of seconds",
            )
        })?),
    };
    Ok(Valid {
        app,
        redirect_uri,
        redirect_uri_given: requested_uri.is_some(),
        scopes,
        state: client_state.clone(),
        code_challenge: code_challenge.map(str::to_owned),
        nonce,
        prompt,
        max_age,
        dpop_jkt,
        resource,
        raw: raw
            .into_iter()
            .filter(|(k, _)| PARAMS.contains(&k.as_str()))
            .collect(),
        pushed: None,
    })
}

impl Valid {
    fn has_prompt(&self, p: &str) -> bool {
        self.prompt.iter().any(|x| x == p)
    }

    fn refuse(&self, code: ErrorCode, description: &'static str) -> Refusal {
        Refusal::Redirect {
            redirect_uri: self.redirect_uri.clone(),
            state: self.state.clone(),
            code,
            description,
        }
    }

    /// This request as a local URL, without `prompt=login` (so signing in once satisfies it).
    /// A pushed request stays a reference: its parameters never pass through the browser.
    fn url_without_login_prompt(&self) -> String {
        if let Some(pushed) = &self.pushed {
            return format!(
                "/oauth/authorize?client_id={}&request_uri={}",
                urlencode(&self.app.client_id),
                urlencode(&pushed.request_uri)
            );
        }
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.raw {
            if k == "prompt" {
                let rest: Vec<&str> = v.split_whitespace().filter(|p| *p != "login").collect();
                if !rest.is_empty() {
                    query.append_pair(k, &rest.join(" "));
                }
            } else if k != "max_age" {
                query.append_pair(k, v);
            }
        }
        format!("/oauth/authorize?{}", query.finish())
    }

    /// Whether `prompt=login` still asks for a sign-in: for a pushed request, a sign-in after
    /// it was pushed answers it (its URL cannot drop the prompt).
    fn wants_login(&self, ctx: &Ctx) -> bool {
        self.has_prompt("login")
            && match &self.pushed {
                Some(pushed) => ctx.auth_time.is_none_or(|t| t < pushed.created_at),
                None => true,
            }
    }

    /// The consent form's hidden fields: the request, or the reference to the pushed one.
    fn form_fields(&self) -> Vec<(String, String)> {
        match &self.pushed {
            Some(pushed) => vec![
                ("client_id".into(), self.app.client_id.clone()),
                ("request_uri".into(), pushed.request_uri.clone()),
            ],
            None => self.raw.clone(),
        }
    }

    /// A pushed request is answered once (RFC 9126 §4): spend it before answering.
    async fn spend(&self, state: &AppState) -> Result<(), Refusal> {
        let Some(pushed) = &self.pushed else {
            return Ok(());
        };
        match state.store.spend_pushed_request(&pushed.hash, now()).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Refusal::Page("authorize-error-request-uri")),
            Err(e) => {
                tracing::error!(error = %e, "database error while spending a pushed request");
                Err(self.refuse(ErrorCode::ServerError, "internal error"))
            }
        }
    }
}

fn parse_query(raw: Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The consent page (SPEC §4 step 4).
#[derive(Template)]
#[template(path = "consent.html")]
pub(super) struct ConsentPage {
    pub ctx: Ctx,
    pub app: App,
    pub scopes: Vec<(String, String)>,
    /// Where the decision goes, with these hidden fields.
    pub action: &'static str,
    pub hidden: Vec<(String, String)>,
    pub signed_in_as: String,
    pub heading: String,
    /// For the device flow: the line asking to compare the code with the device's.
    pub device_line: Option<String>,
}

impl ConsentPage {
    pub fn new(ctx: &Ctx, app: &App, scopes: &Scopes, user: &User) -> ConsentPage {
        ConsentPage {
            scopes: scopes
                .iter()
                .map(|s| (s.to_owned(), ctx.t(scope::description_key(s))))
                .collect(),
            action: "/oauth/authorize",
            hidden: Vec::new(),
            signed_in_as: ctx.t_args("signed-in-as", &[("email", &user.email)]),
            heading: ctx.t_args("consent-heading", &[("app", &app.name)]),
            device_line: None,
            app: app.clone(),
            ctx: ctx.clone(),
        }
    }
}

async fn authorize(State(state): State<AppState>, ctx: Ctx, RawQuery(query): RawQuery) -> Response {
    let valid = match resolve(&state, parse_query(query)).await {
        Ok(valid) => valid,
        Err(refusal) => return refuse(&state, refusal),
    };
    match proceed(&state, &ctx, &valid).await {
        Ok(response) => response,
        Err(refusal) => refuse(&state, refusal),
    }
}

/// Steps 3–5 for a valid request: sign-in, remembered consent, the consent page.
async fn proceed(state: &AppState, ctx: &Ctx, valid: &Valid) -> Result<Response, Refusal> {
    let t = now();
    let stale = match (ctx.auth_time, valid.max_age) {
        (Some(auth_time), Some(max_age)) => t - auth_time > max_age,
        _ => false,
    };
    let Some(user) = ctx.user.as_ref() else {
        if valid.has_prompt("none") {
            return Err(valid.refuse(ErrorCode::LoginRequired, "the user is not signed in"));
        }
        let back = valid.url_without_login_prompt();
        return Ok(Redirect::to(&format!("/login?return_to={}", urlencode(&back))).into_response());
    };
    if valid.wants_login(ctx) || stale {
        if valid.has_prompt("none") {
            return Err(valid.refuse(ErrorCode::LoginRequired, "the user must sign in again"));
        }
        let back = valid.url_without_login_prompt();
        return Ok(Redirect::to(&format!(
            "/login?prompt=login&return_to={}",
            urlencode(&back)
        ))
        .into_response());
    }
    let granted = match state.store.grant_for(&user.id, &valid.app.id).await {
        Ok(grant) => grant,
        Err(e) => {
            tracing::error!(error = %e, "database error at the authorization endpoint");
            return Err(valid.refuse(ErrorCode::ServerError, "internal error"));
        }
    };
    let remembered = granted
        .as_ref()
        .filter(|g| valid.scopes.is_subset_of(&g.scopes));
    if let Some(grant) = remembered
        && !valid.has_prompt("consent")
    {
        return issue_code(state, ctx, valid, Consent::Remembered(&grant.id)).await;
    }
    if valid.has_prompt("none") {
        return Err(valid.refuse(
            ErrorCode::ConsentRequired,
            "the user has not approved this app",
        ));
    }
    let page = ConsentPage {
        hidden: valid.form_fields(),
        ..ConsentPage::new(ctx, &valid.app, &valid.scopes, user)
    };
    match page.render() {
        Ok(html) => Ok(axum::response::Html(html).into_response()),
        Err(e) => Ok(PageError::from(e).into_response()),
    }
}

/// Where the consent behind a code comes from.
enum Consent<'a> {
    /// A grant (its id) that already covers the scopes asked for: nothing new to record.
    Remembered(&'a str),
    /// Just given on the consent page: recorded, and the grant widened if it exists.
    Given,
}

/// Record consent (when just given), issue a code and send the user back.
async fn issue_code(
    state: &AppState,
    ctx: &Ctx,
    valid: &Valid,
    consent: Consent<'_>,
) -> Result<Response, Refusal> {
    let Some(user) = ctx.user.as_ref() else {
        return Err(valid.refuse(ErrorCode::LoginRequired, "the user is not signed in"));
    };
    let server_error = |e: sqlx::Error| {
        tracing::error!(error = %e, "database error while issuing a code");
        valid.refuse(ErrorCode::ServerError, "internal error")
    };
    valid.spend(state).await?;
    let t = now();
    let grant_id = match consent {
        Consent::Remembered(grant_id) => grant_id.to_owned(),
        Consent::Given => {
            let grant_id = state
                .store
                .upsert_grant(&user.id, &valid.app.id, &valid.scopes, t)
                .await
                .map_err(server_error)?;
            let event = AuditEvent::new(AuditKind::Consent, &valid.app.client_id)
                .from(ctx)
                .by(&user.id)
                .details(json!({"scopes": valid.scopes.to_string()}));
            state.store.audit(event, t).await.map_err(server_error)?;
            grant_id
        }
    };
    let code_grant = CodeGrant {
        app_id: valid.app.id.clone(),
        user_id: user.id.clone(),
        grant_id,
        redirect_uri: valid.redirect_uri.clone(),
        redirect_uri_given: valid.redirect_uri_given,
        scopes: valid.scopes.clone(),
        code_challenge: valid.code_challenge.clone(),
        nonce: valid.nonce.clone(),
        auth_time: ctx.auth_time.unwrap_or(t),
        dpop_jkt: valid.dpop_jkt.clone(),
        resource: valid.resource.clone(),
    };
    let ttl = i64::try_from(state.config.code_ttl.as_secs()).unwrap_or(60);
    let code = state
        .store
        .create_code(&code_grant, t, ttl)
        .await
        .map_err(server_error)?;
    let mut params = vec![("code", code.expose())];
    if let Some(s) = valid.state.as_deref() {
        params.push(("state", s));
    }
    Ok(answer(&valid.redirect_uri, &state.config.issuer, &params))
}

/// The consent form's answer: Authorize or Deny. Every parameter is checked again.
async fn decide(
    State(state): State<AppState>,
    ctx: Ctx,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Response {
    let decision = pairs
        .iter()
        .find(|(k, _)| k == "decision")
        .map(|(_, v)| v.clone());
    let valid = match resolve(&state, pairs).await {
        Ok(valid) => valid,
        Err(refusal) => return refuse(&state, refusal),
    };
    let Some(user) = ctx.user.clone() else {
        let back = valid.url_without_login_prompt();
        return Redirect::to(&format!("/login?return_to={}", urlencode(&back))).into_response();
    };
    let result = match decision.as_deref() {
        Some("allow") => issue_code(&state, &ctx, &valid, Consent::Given).await,
        Some("deny") => {
            if let Err(refusal) = valid.spend(&state).await {
                return refuse(&state, refusal);
            }
            let event = AuditEvent::new(AuditKind::ConsentDenied, &valid.app.client_id)
                .from(&ctx)
                .by(&user.id);
            if let Err(e) = state.store.audit(event, now()).await {
                tracing::error!(error = %e, "recording a denied consent failed");
            }
            Err(valid.refuse(ErrorCode::AccessDenied, "the user denied the request"))
        }
        _ => return PageError::BadRequest.into_response(),
    };
    match result {
        Ok(response) => response,
        Err(refusal) => refuse(&state, refusal),
    }
}
