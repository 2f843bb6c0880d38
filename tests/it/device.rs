//! The device authorization grant (RFC 8628): `/oauth/device/code`, the `/device` pages, and
//! polling the token endpoint.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;
use crate::oauth_helpers::*;
use crate::on_both_backends;

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn enable_device_flow(app: &TestApp, client: &RegisteredApp) {
    sqlx::query("UPDATE apps SET device_flow = 1 WHERE id = $1")
        .bind(&client.id)
        .execute(app.store.pool())
        .await
        .unwrap();
}

/// `POST /oauth/device/code` as `client`: (status, body).
async fn device_code(
    app: &TestApp,
    client: &RegisteredApp,
    scope: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().post(app.url("/oauth/device/code"));
    let mut form: Vec<(&str, &str)> = Vec::new();
    match &client.secret {
        Some(secret) => request = request.basic_auth(&client.client_id, Some(secret)),
        None => form.push(("client_id", &client.client_id)),
    }
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let response = request.form(&form).send().await.unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn poll(app: &TestApp, client: &RegisteredApp, device_code: &str) -> (StatusCode, Value) {
    let (status, body, headers) = token_request(
        app,
        client,
        &[("grant_type", GRANT), ("device_code", device_code)],
    )
    .await;
    assert_eq!(headers["cache-control"], "no-store");
    (status, body)
}

fn error_of(answer: &(StatusCode, Value)) -> (u16, String) {
    (
        answer.0.as_u16(),
        answer.1["error"].as_str().unwrap_or("").to_owned(),
    )
}

on_both_backends! {
    async fn the_whole_device_flow_for_a_public_app(backend) {
        let app = spawn_app(&backend).await;
        let client = register_with(&app, false, "openid profile read", &["http://127.0.0.1/cb"]).await;
        enable_device_flow(&app, &client).await;
        for path in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"] {
            let meta: Value = reqwest::get(app.url(path)).await.unwrap().json().await.unwrap();
            assert_eq!(meta["device_authorization_endpoint"], format!("{}/oauth/device/code", app.base));
            assert!(meta["grant_types_supported"].as_array().unwrap().contains(&GRANT.into()));
        }

        let (status, started) = device_code(&app, &client, Some("openid profile read")).await;
        assert_eq!(status, StatusCode::OK, "{started}");
        let device = started["device_code"].as_str().unwrap().to_owned();
        assert!(latchkey::domain::secret::parse(latchkey::domain::secret::TokenKind::DeviceCode, &device).is_some(), "{device}");
        let user_code = started["user_code"].as_str().unwrap().to_owned();
        assert_eq!(user_code.len(), 9);
        assert_eq!(&user_code[4..5], "-");
        assert!(user_code.replace('-', "").bytes().all(|b| b"BCDFGHJKLMNPQRSTVWXZ".contains(&b)), "{user_code}");
        assert_eq!(started["verification_uri"], format!("{}/device", app.base));
        assert_eq!(started["verification_uri_complete"], format!("{}/device?user_code={user_code}", app.base));
        assert_eq!(started["expires_in"], 600);
        assert_eq!(started["interval"], 5);
        // The user code is stored only as a hash.
        let stored: Vec<String> = sqlx::query_scalar("SELECT user_code FROM device_codes").fetch_all(app.store.pool()).await.unwrap();
        assert!(stored.iter().all(|c| !c.contains(&user_code.replace('-', ""))));

        // Polling before the answer: pending, then slow_down with the interval growing by 5 s.
        assert_eq!(error_of(&poll(&app, &client, &device).await), (400, "authorization_pending".into()));
        let slow = poll(&app, &client, &device).await;
        assert_eq!(error_of(&slow), (400, "slow_down".into()));
        assert!(slow.1["error_description"].as_str().unwrap().contains("10 seconds"), "{}", slow.1);
        let slower = poll(&app, &client, &device).await;
        assert!(slower.1["error_description"].as_str().unwrap().contains("15 seconds"), "{}", slower.1);

        // The person: /device needs a session, is prefilled from the complete URI, and takes
        // the code in lower case without the dash.
        let anonymous = browser();
        let page = app.get(&anonymous, &format!("/device?user_code={user_code}")).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert!(page.location().starts_with("/login?return_to=%2Fdevice%3Fuser_code%3D"), "{}", page.location());
        let person = app.signed_in("device@example.com").await;
        let page = app.get(&person, &format!("/device?user_code={user_code}")).await;
        assert!(page.body.contains(&format!("value=\"{user_code}\"")), "prefilled");
        let typed = user_code.replace('-', "").to_lowercase();
        let form = app.get(&person, "/device").await;
        let consent = Page::from(person.post(app.url("/device")).form(&[("csrf", form.csrf().as_str()), ("user_code", typed.as_str())]).send().await.unwrap()).await;
        assert_eq!(consent.status, StatusCode::OK);
        for expected in ["Test Client", "This app has not been verified", "Signed in as", "device@example.com", "Authorize", "Deny", user_code.as_str()] {
            assert!(consent.body.contains(expected), "the consent page shows {expected}");
        }
        assert_eq!(consent.headers["x-frame-options"], "DENY");
        let done = approve(&app, &person, &typed, "allow").await;
        assert_eq!(done.status, StatusCode::OK);
        assert!(done.body.contains("is connected"), "{}", done.body);

        // The next poll gets the tokens, once.
        let (status, tokens) = poll(&app, &client, &device).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        assert_eq!(tokens["token_type"], "Bearer");
        assert_eq!(tokens["scope"], "profile read openid");
        assert!(tokens["refresh_token"].as_str().unwrap().starts_with("lk_rt_"));
        let user = app.store.user_by_email("device@example.com").await.unwrap().unwrap();
        let claims = jwt_claims(tokens["id_token"].as_str().unwrap());
        assert_eq!(claims["sub"], user.id.as_str());
        assert_eq!(claims["aud"], client.client_id.as_str());
        assert_eq!(claims["iss"], app.base.as_str());
        assert!(claims["auth_time"].as_i64().unwrap() > 0);
        let (status, me) = app.api(reqwest::Method::GET, "/api/v1/authenticated/me", tokens["access_token"].as_str().unwrap(), None).await;
        assert_eq!((status, me["id"].as_str()), (StatusCode::OK, Some(user.id.as_str())));
        assert_eq!(error_of(&poll(&app, &client, &device).await), (400, "invalid_grant".into()));
        // A refresh works as in the code flow, and the grant is listed for the person.
        let (status, _, _) = token_request(&app, &client, &[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(app.get(&person, "/oauth/authorized_applications").await.body.contains("Test Client"));
        assert!(app.audit_kinds().await.iter().any(|k| k == "consent"));
    }

    async fn denial_expiry_and_the_wrong_app(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "profile read").await;
        enable_device_flow(&app, &client).await;
        let person = app.signed_in("deny@example.com").await;

        let (_, started) = device_code(&app, &client, None).await;
        assert_eq!(started["user_code"].as_str().unwrap().len(), 9, "{started}");
        let done = approve(&app, &person, started["user_code"].as_str().unwrap(), "deny").await;
        assert!(done.body.contains("was not connected"), "{}", done.body);
        let device = started["device_code"].as_str().unwrap();
        assert_eq!(error_of(&poll(&app, &client, device).await), (400, "access_denied".into()));
        // An answered request cannot be answered again.
        let form = app.get(&person, "/device").await;
        let again = Page::from(person.post(app.url("/device")).form(&[("csrf", form.csrf().as_str()), ("user_code", started["user_code"].as_str().unwrap())]).send().await.unwrap()).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST);
        assert!(again.body.contains("not known"));

        // Expired.
        let (_, started) = device_code(&app, &client, Some("read")).await;
        sqlx::query("UPDATE device_codes SET expires_at = $1").bind(latchkey::store::now() - 1).execute(app.store.pool()).await.unwrap();
        assert_eq!(error_of(&poll(&app, &client, started["device_code"].as_str().unwrap()).await), (400, "expired_token".into()));

        // Another app cannot poll this app's code; a made-up code is refused.
        let (_, started) = device_code(&app, &client, Some("read")).await;
        let other = register(&app, true, "profile read").await;
        enable_device_flow(&app, &other).await;
        assert_eq!(error_of(&poll(&app, &other, started["device_code"].as_str().unwrap()).await), (400, "invalid_grant".into()));
        assert_eq!(error_of(&poll(&app, &client, "lk_dc_nothing").await), (400, "invalid_grant".into()));

        // Client authentication as at the token endpoint; scopes within the app's.
        let wrong = RegisteredApp { secret: Some("lk_cs_wrong".into()), ..register(&app, true, "profile").await };
        assert_eq!(error_of(&device_code(&app, &wrong, None).await), (401, "invalid_client".into()));
        assert_eq!(error_of(&device_code(&app, &client, Some("email")).await), (400, "invalid_scope".into()));
        assert_eq!(error_of(&device_code(&app, &client, Some("bogus")).await), (400, "invalid_scope".into()));
    }

    async fn apps_without_the_device_flow_are_unauthorized(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "profile").await;
        assert_eq!(error_of(&device_code(&app, &client, None).await), (400, "unauthorized_client".into()));
        // A code issued while the flow was on cannot be redeemed once it is off.
        enable_device_flow(&app, &client).await;
        let (_, started) = device_code(&app, &client, None).await;
        sqlx::query("UPDATE apps SET device_flow = 0").execute(app.store.pool()).await.unwrap();
        assert_eq!(error_of(&poll(&app, &client, started["device_code"].as_str().unwrap()).await), (400, "unauthorized_client".into()));
    }

    async fn concurrent_polls_get_one_token(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "profile").await;
        enable_device_flow(&app, &client).await;
        let (_, started) = device_code(&app, &client, None).await;
        let person = app.signed_in("race@example.com").await;
        approve(&app, &person, started["user_code"].as_str().unwrap(), "allow").await;
        let device = started["device_code"].as_str().unwrap().to_owned();
        let (app, client) = (std::sync::Arc::new(app), std::sync::Arc::new(client));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (app, client, device) = (app.clone(), client.clone(), device.clone());
                tokio::spawn(async move { error_of(&poll(&app, &client, &device).await) })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        assert_eq!(answers.iter().filter(|a| a.0 == 200).count(), 1, "{answers:?}");
        assert_eq!(answers.iter().filter(|a| *a == &(400, "invalid_grant".to_owned())).count(), 19, "{answers:?}");
    }

    async fn guessing_user_codes_is_rate_limited(backend) {
        let app = spawn_app_with(&backend, |s| s.login_rate_per_minute = Some(3)).await;
        let person = app.signed_in("guess@example.com").await;
        fresh_rate_window().await;
        let form = app.get(&person, "/device").await;
        let mut statuses = Vec::new();
        for guess in ["BCDF-GHJK", "BCDF-GHJL", "BCDF-GHJM", "BCDF-GHJN"] {
            let page = person.post(app.url("/device")).form(&[("csrf", form.csrf().as_str()), ("user_code", guess)]).send().await.unwrap();
            statuses.push(page.status().as_u16());
            if page.status() == StatusCode::TOO_MANY_REQUESTS {
                assert!(page.headers().contains_key("retry-after"));
            }
        }
        assert_eq!(statuses, [400, 400, 400, 429]);
    }
}

on_both_backends! {
    async fn the_setting_is_off_by_default_and_shown_on_pages_and_in_the_client_api(backend) {
        let app = spawn_app(&backend).await;
        let (_, pat) = app.user_with_pat("devflow@example.com", "apps", false).await;
        let (status, created) = app
            .api(reqwest::Method::POST, "/oauth/clients", &pat, Some(serde_json::json!({"name": "CLI", "redirect_uri": "http://127.0.0.1/cb", "confidential": false})))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert!(created.get("device_flow").is_none(), "off: the pinned object as it was");
        let id = created["id"].as_str().unwrap();
        let (status, updated) = app
            .api(reqwest::Method::PATCH, &format!("/oauth/clients/{id}"), &pat, Some(serde_json::json!({"device_flow": true})))
            .await;
        assert_eq!(status, StatusCode::OK, "{updated}");
        assert_eq!(updated["device_flow"], true);
        let public = RegisteredApp {
            id: id.to_owned(),
            client_id: created["client_id"].as_str().unwrap().to_owned(),
            secret: None,
            redirect_uri: "http://127.0.0.1/cb".into(),
        };
        assert_eq!(device_code(&app, &public, None).await.0, StatusCode::OK);

        // The owner's pages: the checkbox on the form, the answer on the app page.
        let owner = app.signed_in("pages-devflow@example.com").await;
        let form = app.get(&owner, "/oauth/applications/new").await;
        assert!(form.body.contains("name=\"device_flow\""));
        assert!(!form.body.contains("name=\"device_flow\" value=\"on\" checked"), "off by default");
        let made = app
            .submit(&owner, "/oauth/applications/new", "/oauth/applications", &[("name", "Editor plugin"), ("homepage_url", "https://plugin.example"), ("redirect_uris", "http://127.0.0.1/cb"), ("scopes", "profile"), ("device_flow", "on")])
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "the new app's page: {}", made.body);
        assert!(made.body.contains("Allow the device flow"), "{}", made.body);
        let stored: i64 = sqlx::query_scalar("SELECT device_flow FROM apps WHERE name = 'Editor plugin'").fetch_one(app.store.pool()).await.unwrap();
        assert_eq!(stored, 1);
    }
}
