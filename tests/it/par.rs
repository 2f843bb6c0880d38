//! Pushed authorization requests (RFC 9126): `POST /oauth/par`, then the authorization
//! endpoint with `client_id` and `request_uri`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::oauth_helpers::*;
use crate::on_both_backends;

/// Push `form` as `client` (Basic for confidential apps): (status, body).
async fn push(app: &TestApp, client: &RegisteredApp, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().post(app.url("/oauth/par"));
    let mut form = form.to_vec();
    match &client.secret {
        Some(secret) => request = request.basic_auth(&client.client_id, Some(secret)),
        None => form.push(("client_id", &client.client_id)),
    }
    let response = request.form(&form).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// An app, what it pushes, and the status and error it must get.
type Case<'a> = (&'a RegisteredApp, Vec<(&'a str, &'a str)>, u16, &'a str);

fn authorize_url(client: &RegisteredApp, request_uri: &str) -> String {
    format!(
        "/oauth/authorize?{}",
        query(&[
            ("client_id", &client.client_id),
            ("request_uri", request_uri)
        ])
    )
}

on_both_backends! {
    async fn a_pushed_request_runs_the_code_flow_once(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "openid profile read").await;
        let (verifier, challenge) = pkce_pair();
        let (status, pushed) = push(&app, &client, &[
            ("response_type", "code"),
            ("redirect_uri", &client.redirect_uri),
            ("scope", "openid read"),
            ("state", "pushed-state"),
            ("nonce", "pushed-nonce"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]).await;
        assert_eq!(status, StatusCode::CREATED, "{pushed}");
        assert_eq!(pushed["expires_in"], 60);
        let request_uri = pushed["request_uri"].as_str().unwrap();
        assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"), "{request_uri}");

        // Not signed in: the way back through sign-in carries the reference, not the request.
        let anonymous = browser();
        let login = app.get(&anonymous, &authorize_url(&client, request_uri)).await;
        assert_eq!(login.status, StatusCode::SEE_OTHER);
        assert!(login.location().contains("request_uri"), "{}", login.location());
        assert!(!login.location().contains("pushed-state"), "{}", login.location());

        // Signed in: the consent page shows the pushed scopes; the browser's own extra
        // parameters are ignored.
        let browser = app.signed_in("par@example.com").await;
        let url = format!("{}&scope=email&state=forged", authorize_url(&client, request_uri));
        let consent = app.get(&browser, &url).await;
        assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
        let fields = consent_fields(&consent.body);
        assert!(fields.iter().any(|(k, v)| k == "request_uri" && v == request_uri), "{fields:?}");
        assert!(!fields.iter().any(|(k, _)| k == "scope" || k == "state"), "the form carries only the reference: {fields:?}");
        let mut form = fields;
        form.push(("decision".into(), "allow".into()));
        let back = Page::from(browser.post(app.url("/oauth/authorize")).form(&form).send().await.unwrap()).await;
        assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
        let params = location_params(&back);
        assert_eq!(params["state"], "pushed-state");
        assert_eq!(params["iss"], app.base);
        let (status, tokens) = exchange(&app, &client, &params["code"], &verifier).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        let mut scopes: Vec<&str> = tokens["scope"].as_str().unwrap().split(' ').collect();
        scopes.sort();
        assert_eq!(scopes, ["openid", "read"], "the pushed scopes, not the browser's");
        assert!(tokens["id_token"].is_string());

        // Used once: the same request_uri again shows an error page and sends nobody anywhere.
        let again = app.get(&browser, &authorize_url(&client, request_uri)).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.body);
        assert!(again.body.contains("expired or was already used"), "{}", again.body);
        let replayed = Page::from(browser.post(app.url("/oauth/authorize")).form(&form).send().await.unwrap()).await;
        assert_eq!(replayed.status, StatusCode::BAD_REQUEST, "the consent form cannot be answered twice");
    }

    async fn a_public_app_pushes_json_and_remembered_consent_answers_at_once(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, false, "profile read").await;
        let browser = app.signed_in("pub@example.com").await;
        // Consent given once, through the ordinary flow.
        let (code, verifier) = get_code(&app, &browser, &client, "read").await;
        assert_eq!(exchange(&app, &client, &code, &verifier).await.0, StatusCode::OK);

        let (verifier, challenge) = pkce_pair();
        let response = reqwest::Client::new()
            .post(app.url("/oauth/par"))
            .json(&json!({
                "client_id": client.client_id, "response_type": "code", "redirect_uri": client.redirect_uri,
                "scope": "read", "code_challenge": challenge, "code_challenge_method": "S256",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let pushed: Value = response.json().await.unwrap();
        let answer = app.get(&browser, &authorize_url(&client, pushed["request_uri"].as_str().unwrap())).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        let params = location_params(&answer);
        let (status, tokens) = exchange(&app, &client, &params["code"], &verifier).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
    }

    async fn pushed_requests_are_checked_when_pushed(backend) {
        let app = spawn_app(&backend).await;
        let confidential = register(&app, true, "profile read").await;
        let public = register(&app, false, "profile read").await;
        let (_, challenge) = pkce_pair();
        let base = |redirect: &'static str| vec![("response_type", "code"), ("redirect_uri", redirect), ("scope", "read")];
        let cases: Vec<Case> = vec![
            (&confidential, base("https://evil.example/cb"), 400, "invalid_request"),
            (&confidential, vec![("response_type", "code"), ("scope", "email")], 400, "invalid_scope"),
            (&confidential, vec![("response_type", "token")], 400, "unsupported_response_type"),
            (&public, vec![("response_type", "code")], 400, "invalid_request"),
            (&confidential, vec![("response_type", "code"), ("code_challenge", &challenge), ("code_challenge_method", "plain")], 400, "invalid_request"),
            (&confidential, vec![("response_type", "code"), ("request_uri", "urn:ietf:params:oauth:request_uri:x")], 400, "invalid_request"),
        ];
        for (client, form, status, error) in cases {
            let (got, body) = push(&app, client, &form).await;
            assert_eq!((got.as_u16(), body["error"].as_str().unwrap_or("")), (status, error), "{form:?}: {body}");
        }
        // A recognized parameter that is not a string is refused, never dropped (a dropped
        // code_challenge would silently turn PKCE off).
        let response = reqwest::Client::new()
            .post(app.url("/oauth/par"))
            .basic_auth(&confidential.client_id, confidential.secret.as_ref())
            .json(&json!({"response_type": "code", "code_challenge": [challenge], "code_challenge_method": "S256"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{body}");
        // Wrong secret: 401.
        let wrong = RegisteredApp { secret: Some("lk_cs_wrong".into()), ..register(&app, true, "read").await };
        let (status, body) = push(&app, &wrong, &[("response_type", "code")]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }

    async fn a_request_uri_works_only_for_its_app_and_only_while_fresh(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "profile read").await;
        let other = register(&app, true, "profile read").await;
        let browser = app.signed_in("fresh@example.com").await;
        let (_, pushed) = push(&app, &client, &[("response_type", "code"), ("scope", "read")]).await;
        let request_uri = pushed["request_uri"].as_str().unwrap();
        // Another app's client_id with this request_uri.
        let page = app.get(&browser, &authorize_url(&other, request_uri)).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        // Unknown and malformed request_uris.
        for bad in ["urn:ietf:params:oauth:request_uri:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "https://evil.example/r", ""] {
            let page = app.get(&browser, &authorize_url(&client, bad)).await;
            assert_eq!(page.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        // An expired one (pushed 61 s ago).
        let then = latchkey::store::now() - 61;
        let random = latchkey::domain::secret::random_base62(43);
        let hash = latchkey::domain::secret::sha256_hex(random.as_bytes());
        let params = vec![("client_id".to_owned(), client.client_id.clone()), ("response_type".to_owned(), "code".to_owned())];
        app.store.push_request(&hash, &client.id, &params, then, then + 60).await.unwrap();
        let page = app.get(&browser, &authorize_url(&client, &format!("urn:ietf:params:oauth:request_uri:{random}"))).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        // The fresh one still works for its own app.
        let page = app.get(&browser, &authorize_url(&client, request_uri)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    }

    async fn prompt_login_in_a_pushed_request_is_answered_by_signing_in_after_it(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "profile read").await;
        let browser = app.signed_in("again@example.com").await;
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let (_, pushed) = push(&app, &client, &[("response_type", "code"), ("scope", "read"), ("prompt", "login")]).await;
        let url = authorize_url(&client, pushed["request_uri"].as_str().unwrap());
        let page = app.get(&browser, &url).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert!(page.location().starts_with("/login?prompt=login"), "{}", page.location());
        let login = app.get(&browser, page.location()).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        let mut form = form_fields(&login.body, "/login");
        form.push(("email".into(), "again@example.com".into()));
        form.push(("password".into(), "correct horse battery".into()));
        let signed = Page::from(browser.post(app.url("/login")).form(&form).send().await.unwrap()).await;
        assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
        assert_eq!(signed.location(), url, "back to the pushed request");
        let consent = app.get(&browser, &url).await;
        assert_eq!(consent.status, StatusCode::OK, "no second sign-in: {}", consent.location());
    }

    async fn an_app_that_requires_par_refuses_plain_requests(backend) {
        let app = spawn_app(&backend).await;
        let (_, pat) = app.user_with_pat("strict@example.com", "apps", false).await;
        let redirect = "https://strict.example/cb";
        let (status, created) = app
            .api(reqwest::Method::POST, "/oauth/clients", &pat, Some(json!({"name": "Strict", "redirect_uri": redirect, "scopes": "profile read"})))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert!(created.get("require_pushed_authorization_requests").is_none(), "off by default: the pinned object as it was");
        let id = created["id"].as_str().unwrap();
        let (status, updated) = app
            .api(reqwest::Method::PATCH, &format!("/oauth/clients/{id}"), &pat, Some(json!({"require_pushed_authorization_requests": true})))
            .await;
        assert_eq!(status, StatusCode::OK, "{updated}");
        assert_eq!(updated["require_pushed_authorization_requests"], true);
        let client = RegisteredApp {
            id: id.to_owned(),
            client_id: created["client_id"].as_str().unwrap().to_owned(),
            secret: created["client_secret"].as_str().map(str::to_owned),
            redirect_uri: redirect.into(),
        };

        // A plain request is answered with an error at the app's redirect URI.
        let browser = app.signed_in("user-strict@example.com").await;
        let plain = app
            .get(&browser, &format!("/oauth/authorize?{}", query(&[("response_type", "code"), ("client_id", &client.client_id), ("redirect_uri", redirect), ("state", "s1")])))
            .await;
        assert_eq!(plain.status, StatusCode::SEE_OTHER);
        let params = location_params(&plain);
        assert_eq!(params["error"], "invalid_request");
        assert_eq!(params["state"], "s1");
        assert!(!params.contains_key("code"));

        // The pushed one goes through.
        let (status, pushed) = push(&app, &client, &[("response_type", "code"), ("redirect_uri", redirect), ("scope", "read")]).await;
        assert_eq!(status, StatusCode::CREATED, "{pushed}");
        let consent = app.get(&browser, &authorize_url(&client, pushed["request_uri"].as_str().unwrap())).await;
        assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);

        // The owner's pages: the checkbox on the form, the answer on the app page.
        let owner = app.signed_in("pages-strict@example.com").await;
        let form = app.get(&owner, "/oauth/applications/new").await;
        assert!(form.body.contains("name=\"require_par\""));
        let made = app
            .submit(&owner, "/oauth/applications/new", "/oauth/applications", &[("name", "Strict page app"), ("homepage_url", "https://p.example"), ("redirect_uris", "https://p.example/cb"), ("scopes", "profile"), ("require_par", "on")])
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        assert!(made.body.contains("Require pushed authorization requests"), "{}", made.body);
        let stored: i64 = sqlx::query_scalar("SELECT require_par FROM apps WHERE name = 'Strict page app'").fetch_one(app.store.pool()).await.unwrap();
        assert_eq!(stored, 1);
    }

    async fn metadata_lists_the_endpoint(backend) {
        let app = spawn_app(&backend).await;
        let meta: Value = reqwest::get(app.url("/.well-known/oauth-authorization-server")).await.unwrap().json().await.unwrap();
        assert_eq!(meta["pushed_authorization_request_endpoint"], format!("{}/oauth/par", app.base));
        assert_eq!(meta["require_pushed_authorization_requests"], false);
    }
}
