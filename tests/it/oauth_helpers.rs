//! Helpers for driving the authorization server like a browser and a client would.

use base64::Engine;
use reqwest::{Client, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::*;

pub struct RegisteredApp {
    pub id: String,
    pub client_id: String,
    pub secret: Option<String>,
    pub redirect_uri: String,
}

/// Register an app for a fresh owner, straight through the store.
pub async fn register(app: &TestApp, confidential: bool, scopes: &str) -> RegisteredApp {
    register_with(app, confidential, scopes, &["https://client.example/cb"]).await
}

pub async fn register_with(
    app: &TestApp,
    confidential: bool,
    scopes: &str,
    uris: &[&str],
) -> RegisteredApp {
    let now = latchkey::store::now();
    let owner_email = format!("owner-{}@example.com", uuid::Uuid::new_v4().simple());
    let owner = app
        .store
        .create_user(
            latchkey::store::NewUser {
                email: owner_email,
                name: "Olga Owner".into(),
                password_hash: None,
                admin: false,
            },
            now,
        )
        .await
        .unwrap();
    register_for(app, &owner.id, confidential, scopes, uris).await
}

/// Register an app owned by `owner_id`.
pub async fn register_for(
    app: &TestApp,
    owner_id: &str,
    confidential: bool,
    scopes: &str,
    uris: &[&str],
) -> RegisteredApp {
    let now = latchkey::store::now();
    let input = latchkey::domain::app::AppInput {
        name: "Test Client".into(),
        homepage_url: "https://client.example".into(),
        redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        confidential,
        access_token_ttl: None,
        issue_refresh: None,
        device_flow: None,
        require_par: None,
        dpop_bound: None,
        post_logout_redirect_uris: Vec::new(),
        backchannel_logout_uri: String::new(),
        webhook_url: String::new(),
    };
    let draft = input.validate(3600).expect("valid app");
    let (stored, secret) = app.store.create_app(owner_id, &draft, now).await.unwrap();
    RegisteredApp {
        id: stored.id,
        client_id: stored.client_id,
        secret: secret.map(|s| s.expose().to_owned()),
        redirect_uri: uris[0].to_owned(),
    }
}

pub fn pkce_pair() -> (String, String) {
    let verifier = latchkey::domain::secret::random_base62(64);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

pub fn query(params: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The query parameters of a redirect's Location.
pub fn location_params(page: &Page) -> std::collections::HashMap<String, String> {
    let url = url::Url::parse(page.location())
        .unwrap_or_else(|_| panic!("not a URL: {:?}", page.location()));
    url.query_pairs().into_owned().collect()
}

/// The hidden fields of the consent form.
pub fn consent_fields(html: &str) -> Vec<(String, String)> {
    form_fields(html, "/oauth/authorize")
}

/// The hidden fields of the form that posts to `action`.
pub fn form_fields(html: &str, action: &str) -> Vec<(String, String)> {
    let start = html
        .find(&format!("<form method=\"post\" action=\"{action}\""))
        .expect("the form");
    let html = &html[start
        ..html[start..]
            .find("</form>")
            .map(|e| start + e)
            .unwrap_or(html.len())];
    let mut out = Vec::new();
    for piece in html.split("<input type=\"hidden\" name=\"").skip(1) {
        let name = &piece[..piece.find('"').unwrap()];
        let rest = &piece[piece.find("value=\"").unwrap() + 7..];
        let value = &rest[..rest.find('"').unwrap()];
        out.push((name.to_owned(), unescape(value)));
    }
    out
}

/// Undo HTML escaping (numeric entities and the named ones askama may use).
pub fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(end) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let entity = &tail[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with('#') => e[1..].parse::<u32>().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(&tail[..=end]),
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Ask for authorization; if the consent page shows, answer it with `decision`.
pub async fn authorize(
    app: &TestApp,
    browser: &Client,
    params: &[(&str, &str)],
    decision: &str,
) -> Page {
    let page = app
        .get(browser, &format!("/oauth/authorize?{}", query(params)))
        .await;
    if page.status != StatusCode::OK {
        return page;
    }
    assert!(
        page.body.contains("name=\"decision\""),
        "expected the consent page: {}",
        page.body
    );
    let mut form = consent_fields(&page.body);
    form.push(("decision".into(), decision.into()));
    Page::from(
        browser
            .post(app.url("/oauth/authorize"))
            .form(&form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// A code for `client` with PKCE, through sign-in and consent; returns (code, verifier).
pub async fn get_code(
    app: &TestApp,
    browser: &Client,
    client: &RegisteredApp,
    scope: &str,
) -> (String, String) {
    let (verifier, challenge) = pkce_pair();
    let page = authorize(
        app,
        browser,
        &[
            ("response_type", "code"),
            ("client_id", &client.client_id),
            ("redirect_uri", &client.redirect_uri),
            ("scope", scope),
            ("state", "st4te"),
            ("nonce", "n0nce"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
        "allow",
    )
    .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let params = location_params(&page);
    assert_eq!(params.get("state").map(String::as_str), Some("st4te"));
    (params["code"].clone(), verifier)
}

/// POST to the token endpoint as `client` (Basic for confidential apps).
pub async fn token_request(
    app: &TestApp,
    client: &RegisteredApp,
    form: &[(&str, &str)],
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut request = reqwest::Client::new().post(app.url("/oauth/token"));
    let mut form: Vec<(&str, &str)> = form.to_vec();
    match &client.secret {
        Some(secret) => request = request.basic_auth(&client.client_id, Some(secret)),
        None => form.push(("client_id", &client.client_id)),
    }
    let response = request.form(&form).send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        headers,
    )
}

pub async fn exchange(
    app: &TestApp,
    client: &RegisteredApp,
    code: &str,
    verifier: &str,
) -> (StatusCode, Value) {
    let (status, body, _) = token_request(
        app,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &client.redirect_uri),
            ("code_verifier", verifier),
        ],
    )
    .await;
    (status, body)
}

pub async fn introspect(app: &TestApp, client: &RegisteredApp, token: &str) -> Value {
    reqwest::Client::new()
        .post(app.url("/oauth/introspect"))
        .basic_auth(&client.client_id, client.secret.as_ref())
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Enter `typed` on `/device` and answer the consent page with `decision`; returns the last page.
pub async fn approve(
    app: &TestApp,
    browser: &reqwest::Client,
    typed: &str,
    decision: &str,
) -> Page {
    let form = app.get(browser, "/device").await;
    assert_eq!(form.status, StatusCode::OK);
    let consent = Page::from(
        browser
            .post(app.url("/device"))
            .form(&[("csrf", form.csrf().as_str()), ("user_code", typed)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    let mut fields = form_fields(&consent.body, "/device/authorize");
    fields.push(("decision".into(), decision.into()));
    Page::from(
        browser
            .post(app.url("/device/authorize"))
            .form(&fields)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// The claims of a JWT, read without checking its signature.
pub fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}
