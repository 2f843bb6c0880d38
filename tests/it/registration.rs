//! Dynamic client registration (RFC 7591) and its management (RFC 7592).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::oauth_helpers::*;
use crate::on_both_backends;

/// `POST /oauth/register` with `body` (JSON), as `bearer` if given: (status, body).
async fn register_client(app: &TestApp, body: &Value, bearer: Option<&str>) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(app.url("/oauth/register"))
        .json(body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `method` on a registration client URI with `token`: (status, body).
async fn manage(
    method: reqwest::Method,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .request(method, uri)
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn open(s: &mut latchkey::config::Settings) {
    s.client_registration = Some("open".into());
}

fn registered(info: &Value, redirect_uri: &str) -> RegisteredApp {
    RegisteredApp {
        id: String::new(),
        client_id: info["client_id"].as_str().unwrap().to_owned(),
        secret: info["client_secret"].as_str().map(str::to_owned),
        redirect_uri: redirect_uri.to_owned(),
    }
}

on_both_backends! {
    async fn software_registers_a_public_app_reads_updates_and_deletes_it(backend) {
        let app = spawn_app_with(&backend, open).await;
        let metadata: Value = reqwest::get(app.url("/.well-known/oauth-authorization-server")).await.unwrap().json().await.unwrap();
        assert_eq!(metadata["registration_endpoint"], app.url("/oauth/register"));

        let redirect = "http://127.0.0.1:33418/callback";
        let (status, info) = register_client(&app, &json!({
            "client_name": "Editor Assistant",
            "redirect_uris": [redirect],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "scope": "profile read",
            "logo_uri": "https://assistant.example/logo.png",
            "contacts": ["dev@assistant.example"],
            "software_id": "assistant",
            "software_version": "1.2.3",
            "some_future_field": {"ignored": true},
        }), None).await;
        assert_eq!(status, StatusCode::CREATED, "{info}");
        assert!(info.get("client_secret").is_none(), "a public app has no secret: {info}");
        assert_eq!(info["token_endpoint_auth_method"], "none");
        assert_eq!(info["client_name"], "Editor Assistant");
        assert_eq!(info["redirect_uris"], json!([redirect]));
        assert_eq!(info["grant_types"], json!(["authorization_code", "refresh_token"]));
        assert_eq!(info["scope"], "profile read");
        assert_eq!(info["logo_uri"], "https://assistant.example/logo.png");
        assert_eq!(info["software_version"], "1.2.3");
        assert!(info.get("some_future_field").is_none());
        let token = info["registration_access_token"].as_str().unwrap().to_owned();
        assert!(token.starts_with("lk_rat_"), "{token}");
        let uri = info["registration_client_uri"].as_str().unwrap().to_owned();
        assert_eq!(uri, app.url(&format!("/oauth/register/{}", info["client_id"].as_str().unwrap())));

        // The app works, and its consent page says no account stands behind it.
        let client = registered(&info, redirect);
        let browser = app.signed_in("dcr-user@example.com").await;
        let (verifier, challenge) = pkce_pair();
        let consent = app.get(&browser, &format!("/oauth/authorize?{}", query(&[
            ("response_type", "code"), ("client_id", &client.client_id), ("redirect_uri", redirect),
            ("scope", "profile"), ("code_challenge", &challenge), ("code_challenge_method", "S256"),
        ]))).await;
        assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
        assert!(consent.body.contains("Registered by software"), "{}", consent.body);
        assert!(consent.body.contains("This app has not been verified"));
        let mut form = consent_fields(&consent.body);
        form.push(("decision".into(), "allow".into()));
        let back = Page::from(browser.post(app.url("/oauth/authorize")).form(&form).send().await.unwrap()).await;
        let code = location_params(&back)["code"].clone();
        let (status, tokens) = exchange(&app, &client, &code, &verifier).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");

        // Read (RFC 7592 §2.1): the same metadata, never a secret.
        let (status, read) = manage(reqwest::Method::GET, &uri, &token, None).await;
        assert_eq!(status, StatusCode::OK, "{read}");
        assert_eq!(read["client_id"], info["client_id"]);
        assert_eq!(read["contacts"], json!(["dev@assistant.example"]));
        assert_eq!(read["registration_access_token"], token.as_str());
        for (name, bad) in [("no token", ""), ("a wrong token", "lk_rat_wrong"), ("an access token", tokens["access_token"].as_str().unwrap())] {
            let (status, body) = manage(reqwest::Method::GET, &uri, bad, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
            assert_eq!(body["error"], "invalid_token", "{name}");
        }
        // Another registration's token does not reach this app.
        let (_, other) = register_client(&app, &json!({"redirect_uris": ["https://other.example/cb"]}), None).await;
        let (status, _) = manage(reqwest::Method::GET, &uri, other["registration_access_token"].as_str().unwrap(), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(other["client_name"], "other.example", "a name from the redirect URI when none is given");
        assert!(other["client_secret"].as_str().unwrap().starts_with("lk_cs_"), "confidential by default");
        assert_eq!(other["client_secret_expires_at"], 0);

        // Update (§2.2): the body replaces the metadata.
        let (status, updated) = manage(reqwest::Method::PUT, &uri, &token, Some(json!({
            "client_id": info["client_id"],
            "client_name": "Editor Assistant 2",
            "redirect_uris": [redirect, "http://127.0.0.1:33418/second"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code"],
        }))).await;
        assert_eq!(status, StatusCode::OK, "{updated}");
        assert_eq!(updated["client_name"], "Editor Assistant 2");
        assert_eq!(updated["redirect_uris"].as_array().unwrap().len(), 2);
        assert_eq!(updated["grant_types"], json!(["authorization_code"]));
        assert!(updated.get("logo_uri").is_none(), "left out, so removed: {updated}");
        let (status, body) = manage(reqwest::Method::PUT, &uri, &token, Some(json!({
            "client_id": info["client_id"], "redirect_uris": ["javascript:alert(1)"], "token_endpoint_auth_method": "none",
        }))).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_redirect_uri")), "{body}");
        let (status, body) = manage(reqwest::Method::PUT, &uri, &token, Some(json!({
            "client_id": other["client_id"], "redirect_uris": [redirect], "token_endpoint_auth_method": "none",
        }))).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_client_metadata")), "{body}");
        let (_, read) = manage(reqwest::Method::GET, &uri, &token, None).await;
        assert_eq!(read["client_name"], "Editor Assistant 2", "refused updates changed nothing");

        // Delete (§2.3): the app and its tokens are gone.
        let (status, _) = manage(reqwest::Method::DELETE, &uri, &token, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = manage(reqwest::Method::GET, &uri, &token, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body, _) = token_request(&app, &client, &[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())]).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "the deleted app is unknown: {body}");
        assert!(app.audit_kinds().await.iter().filter(|k| k.as_str() == "app_created").count() >= 2);
    }

    async fn bad_registrations_are_refused_with_rfc_7591_errors(backend) {
        // More cases than the registration limit allows a minute.
        let app = spawn_app_with(&backend, |s| {
            open(s);
            s.rate_limits = Some("off".into());
        }).await;
        let cases = [
            ("no redirect URI", json!({"client_name": "x"}), "invalid_redirect_uri"),
            ("a redirect URI that is not a URL", json!({"redirect_uris": ["not a url"]}), "invalid_redirect_uri"),
            ("a script redirect URI", json!({"redirect_uris": ["javascript:alert(1)"]}), "invalid_redirect_uri"),
            ("a redirect URI with a fragment", json!({"redirect_uris": ["https://app.example/cb#x"]}), "invalid_redirect_uri"),
            ("the implicit flow", json!({"redirect_uris": ["https://app.example/cb"], "response_types": ["token"]}), "invalid_client_metadata"),
            ("private_key_jwt", json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "private_key_jwt"}), "invalid_client_metadata"),
            ("client credentials for a public app", json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]}), "invalid_client_metadata"),
            ("an unknown grant", json!({"redirect_uris": ["https://app.example/cb"], "grant_types": ["password"]}), "invalid_client_metadata"),
            ("an unknown scope", json!({"redirect_uris": ["https://app.example/cb"], "scope": "admin"}), "invalid_client_metadata"),
            ("a logo that is not a URL", json!({"redirect_uris": ["https://app.example/cb"], "logo_uri": "logo.png"}), "invalid_client_metadata"),
            ("redirect_uris of the wrong type", json!({"redirect_uris": "https://app.example/cb"}), "invalid_client_metadata"),
            ("not an object", json!(["https://app.example/cb"]), "invalid_client_metadata"),
        ];
        for (name, body, error) in cases {
            let (status, answer) = register_client(&app, &body, None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {answer}");
            assert_eq!(answer["error"], error, "{name}: {answer}");
            assert!(answer["error_description"].is_string(), "{name}");
        }
        let response = reqwest::Client::new().post(app.url("/oauth/register")).body("redirect_uris=x").header("content-type", "application/x-www-form-urlencoded").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        // Nothing was registered.
        assert!(app.audit_kinds().await.iter().all(|k| k != "app_created"));
    }

    async fn the_client_api_body_registers_too_and_software_apps_are_limited(backend) {
        let app = spawn_app_with(&backend, |s| {
            open(s);
            s.token_rate_per_minute = Some(30);
        }).await;
        let (status, info) = register_client(&app, &json!({
            "name": "HitKey-style",
            "redirect_uri": "https://hitkey.example/cb",
            "scopes": ["profile", "read"],
            "confidential": true,
        }), None).await;
        assert_eq!(status, StatusCode::CREATED, "{info}");
        assert_eq!(info["client_name"], "HitKey-style");
        assert_eq!(info["scope"], "profile read");
        assert_eq!(info["token_endpoint_auth_method"], "client_secret_basic");
        let client = registered(&info, "https://hitkey.example/cb");
        // An app no person stands behind gets a tenth of the per-app token limit: 3 a minute.
        fresh_rate_window().await;
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let (status, _, _) = token_request(&app, &client, &[("grant_type", "client_credentials"), ("scope", "read")]).await;
            statuses.push(status.as_u16());
        }
        assert_eq!(statuses, [200, 200, 200, 429]);

        // Registrations themselves are limited per client address.
        fresh_rate_window().await;
        let mut last = StatusCode::CREATED;
        for _ in 0..=latchkey::oauth::REGISTRATIONS_PER_MINUTE {
            last = register_client(&app, &json!({"redirect_uris": ["https://many.example/cb"]}), None).await.0;
        }
        assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    }

    async fn token_mode_needs_a_personal_access_token_and_the_app_is_the_users(backend) {
        let app = spawn_app_with(&backend, |s| s.client_registration = Some("token".into())).await;
        let body = json!({"client_name": "Owned", "redirect_uris": ["https://owned.example/cb"]});
        let (status, answer) = register_client(&app, &body, None).await;
        assert_eq!((status, answer["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_token")), "{answer}");
        let (_, read_only) = app.user_with_pat("reader@example.com", "read", false).await;
        let (status, _) = register_client(&app, &body, Some(&read_only)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a token without the apps scope");
        let (_, pat) = app.user_with_pat("maker@example.com", "apps", false).await;
        let (status, info) = register_client(&app, &body, Some(&pat)).await;
        assert_eq!(status, StatusCode::CREATED, "{info}");
        // The maker sees it among their apps, and users see the maker on the consent page.
        let (_, list) = app.api(reqwest::Method::GET, "/oauth/clients", &pat, None).await;
        assert!(list["clients"].as_array().unwrap().iter().any(|c| c["client_id"] == info["client_id"]), "{list}");
        let client = registered(&info, "https://owned.example/cb");
        let browser = app.signed_in("owned-user@example.com").await;
        let (_, challenge) = pkce_pair();
        let consent = app.get(&browser, &format!("/oauth/authorize?{}", query(&[
            ("response_type", "code"), ("client_id", &client.client_id), ("scope", "profile"),
            ("code_challenge", &challenge), ("code_challenge_method", "S256"),
        ]))).await;
        assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
        assert!(!consent.body.contains("Registered by software"));
    }

    async fn registration_is_off_by_default(backend) {
        let app = spawn_app(&backend).await;
        let (status, answer) = register_client(&app, &json!({"redirect_uris": ["https://app.example/cb"]}), None).await;
        assert_eq!((status, answer["error"].as_str()), (StatusCode::FORBIDDEN, Some("access_denied")), "{answer}");
        let metadata: Value = reqwest::get(app.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
        assert!(metadata.get("registration_endpoint").is_none());
    }
}
