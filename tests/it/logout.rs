//! RP-initiated logout and back-channel logout (OpenID Connect).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::oauth_helpers::*;
use crate::on_both_backends;

const REDIRECT: &str = "https://rp.example/cb";
const AFTER: &str = "https://rp.example/signed-out";

/// An app's back-channel logout endpoint on 127.0.0.1: answers each POST with the next of
/// `statuses` (then 200) and keeps the logout tokens it got.
struct Receiver {
    url: String,
    tokens: Arc<Mutex<Vec<String>>>,
}

async fn receiver(statuses: Vec<u16>) -> Receiver {
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let statuses = Arc::new(Mutex::new(statuses));
    let (kept, queue) = (tokens.clone(), statuses.clone());
    let handler = move |axum::extract::Form(form): axum::extract::Form<
        std::collections::HashMap<String, String>,
    >| {
        let (kept, queue) = (kept.clone(), queue.clone());
        async move {
            kept.lock()
                .unwrap()
                .push(form.get("logout_token").cloned().unwrap_or_default());
            let mut queue = queue.lock().unwrap();
            let status = if queue.is_empty() {
                200
            } else {
                queue.remove(0)
            };
            StatusCode::from_u16(status).unwrap()
        }
    };
    let router = axum::Router::new().route("/backchannel", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/backchannel", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    Receiver { url, tokens }
}

/// An app (made through the client API) with a post-logout redirect and `backchannel`.
async fn rp(app: &TestApp, backchannel: &str) -> RegisteredApp {
    let (_, pat) = app
        .user_with_pat(
            &format!("rp-{}@example.com", uuid::Uuid::new_v4().simple()),
            "apps",
            false,
        )
        .await;
    let (status, created) = app
        .api(
            reqwest::Method::POST,
            "/oauth/clients",
            &pat,
            Some(json!({
                "name": "Relying Party",
                "redirect_uris": [REDIRECT],
                "scopes": ["openid", "profile"],
                "post_logout_redirect_uris": [AFTER],
                "backchannel_logout_uri": backchannel,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["post_logout_redirect_uris"], json!([AFTER]));
    RegisteredApp {
        id: created["id"].as_str().unwrap().to_owned(),
        client_id: created["client_id"].as_str().unwrap().to_owned(),
        secret: created["client_secret"].as_str().map(str::to_owned),
        redirect_uri: REDIRECT.to_owned(),
    }
}

/// A signed-in browser and the ID token `client` got for it.
async fn signed_in_with_id_token(
    app: &TestApp,
    client: &RegisteredApp,
    email: &str,
) -> (reqwest::Client, String) {
    let browser = app.signed_in(email).await;
    let (code, verifier) = get_code(app, &browser, client, "openid profile").await;
    let (status, tokens) = exchange(app, client, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    (browser, tokens["id_token"].as_str().unwrap().to_owned())
}

async fn signed_in(app: &TestApp, browser: &reqwest::Client) -> bool {
    app.get(browser, "/settings").await.status == StatusCode::OK
}

/// The app's deliveries once none is pending (at most `wait`).
async fn settled(
    app: &TestApp,
    client: &RegisteredApp,
    wait: Duration,
) -> Vec<latchkey::store::deliveries::Delivery> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let deliveries = app.store.deliveries_of_app(&client.id, 10).await.unwrap();
        if (!deliveries.is_empty() && deliveries.iter().all(|d| d.status != "pending"))
            || tokio::time::Instant::now() > deadline
        {
            return deliveries;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

on_both_backends! {
    async fn an_app_signs_the_person_out_and_every_app_hears_of_it(backend) {
        let app = spawn_app(&backend).await;
        let receiver = receiver(vec![]).await;
        let client = rp(&app, &receiver.url).await;
        let (browser, id_token) = signed_in_with_id_token(&app, &client, "leaving@example.com").await;
        let metadata: Value = reqwest::get(app.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
        assert_eq!(metadata["end_session_endpoint"], app.url("/oauth/logout"));
        assert_eq!(metadata["backchannel_logout_supported"], true);

        let page = app.get(&browser, &format!("/oauth/logout?{}", query(&[
            ("id_token_hint", &id_token), ("post_logout_redirect_uri", AFTER), ("state", "bye"),
        ]))).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert_eq!(page.location(), format!("{AFTER}?state=bye"));
        assert!(!signed_in(&app, &browser).await, "the session ended");

        // The back-channel logout token, checked with the published keys.
        let deliveries = settled(&app, &client, Duration::from_secs(10)).await;
        assert_eq!(deliveries.len(), 1);
        assert_eq!((deliveries[0].status.as_str(), deliveries[0].attempts, deliveries[0].last_status), ("delivered", 1, Some(200)));
        let token = receiver.tokens.lock().unwrap()[0].clone();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
        let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(app.url("/oauth/jwks")).await.unwrap().json().await.unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(header.kid.as_deref().unwrap()).unwrap()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&[&client.client_id]);
        validation.set_issuer(&[app.base.as_str()]);
        let claims = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap().claims;
        let user = app.store.user_by_email("leaving@example.com").await.unwrap().unwrap();
        assert_eq!(claims["sub"], user.id.as_str());
        assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object(), "{claims}");
        assert!(claims.get("nonce").is_none() && claims["jti"].is_string());
        assert!(app.audit_kinds().await.contains(&"sign_out".to_owned()));
    }

    async fn foreign_hints_and_unregistered_redirects_get_an_error_page(backend) {
        let app = spawn_app(&backend).await;
        let other = spawn_app(&backend).await;
        let client = rp(&app, "").await;
        let (browser, id_token) = signed_in_with_id_token(&app, &client, "staying@example.com").await;
        // An ID token from another provider, one altered after signing, and a bad redirect.
        let foreign_client = rp(&other, "").await;
        let (_, foreign) = signed_in_with_id_token(&other, &foreign_client, "elsewhere@example.com").await;
        let altered = format!("{}.{}", id_token.rsplit_once('.').unwrap().0, "AAAA");
        let cases = [
            ("a foreign hint", vec![("id_token_hint", foreign.as_str()), ("post_logout_redirect_uri", AFTER)]),
            ("an altered hint", vec![("id_token_hint", altered.as_str()), ("post_logout_redirect_uri", AFTER)]),
            ("an unregistered redirect", vec![("id_token_hint", id_token.as_str()), ("post_logout_redirect_uri", "https://evil.example/")]),
            ("a redirect without an app", vec![("post_logout_redirect_uri", AFTER)]),
            ("another app's client_id", vec![("id_token_hint", id_token.as_str()), ("client_id", foreign_client.client_id.as_str())]),
        ];
        for (name, params) in cases {
            let page = app.get(&browser, &format!("/oauth/logout?{}", query(&params))).await;
            assert_eq!(page.status, StatusCode::BAD_REQUEST, "{name}: {}", page.body);
            assert!(page.body.contains("This sign-out request cannot be completed"), "{name}");
            assert!(signed_in(&app, &browser).await, "{name}: still signed in");
        }
    }

    async fn without_a_hint_the_person_is_asked(backend) {
        let app = spawn_app(&backend).await;
        let receiver = receiver(vec![503]).await;
        let client = rp(&app, &receiver.url).await;
        let (browser, _) = signed_in_with_id_token(&app, &client, "asked@example.com").await;
        let url = format!("/oauth/logout?{}", query(&[("client_id", &client.client_id), ("post_logout_redirect_uri", AFTER), ("state", "s1")]));
        let page = app.get(&browser, &url).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("Relying Party asks you to sign out"), "{}", page.body);
        assert!(signed_in(&app, &browser).await, "asking ends nothing");
        // Without the form's CSRF token, nothing happens.
        let forged = browser.post(app.url("/oauth/logout/confirm")).form(&[("client_id", client.client_id.as_str())]).send().await.unwrap();
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
        assert!(signed_in(&app, &browser).await);
        let mut form = form_fields(&page.body, "/oauth/logout/confirm");
        assert!(form.iter().any(|(k, v)| k == "state" && v == "s1"), "{form:?}");
        form.retain(|(k, _)| k != "decision");
        let done = Page::from(browser.post(app.url("/oauth/logout/confirm")).form(&form).send().await.unwrap()).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        assert_eq!(done.location(), format!("{AFTER}?state=s1"));
        assert!(!signed_in(&app, &browser).await);

        // The app's endpoint failed once: retried after the backoff, then delivered.
        let deliveries = settled(&app, &client, Duration::from_secs(20)).await;
        assert_eq!((deliveries[0].status.as_str(), deliveries[0].attempts), ("delivered", 2), "{deliveries:?}");
        assert_eq!(receiver.tokens.lock().unwrap().len(), 2);
    }

    async fn signing_out_on_the_site_tells_the_apps_too(backend) {
        let app = spawn_app(&backend).await;
        let receiver = receiver(vec![]).await;
        let client = rp(&app, &receiver.url).await;
        let (browser, _) = signed_in_with_id_token(&app, &client, "site@example.com").await;
        let settings = app.get(&browser, "/settings").await;
        let out = app.submit(&browser, "/settings", "/logout", &[]).await;
        assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", settings.body);
        let deliveries = settled(&app, &client, Duration::from_secs(10)).await;
        assert_eq!(deliveries.len(), 1);
        assert_eq!(deliveries[0].status, "delivered");
        // Nobody signed in: a logout request with a registered redirect just goes back.
        let anonymous = browser_without_pool();
        let page = app.get(&anonymous, &format!("/oauth/logout?{}", query(&[("client_id", &client.client_id), ("post_logout_redirect_uri", AFTER)]))).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(page.location(), AFTER);
    }
}
