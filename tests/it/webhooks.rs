//! Webhooks: signed, timestamped events to an app when a user revokes it or its tokens are
//! revoked (code reuse, a leak report), retried with backoff, logged on the app's page.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::oauth_helpers::*;
use crate::on_both_backends;

/// One webhook as the app's endpoint got it: signature header, event header, body.
#[derive(Debug, Clone)]
struct Received {
    signature: String,
    event: String,
    body: String,
}

/// An app's webhook endpoint on 127.0.0.1: answers with the next of `statuses` (then 200).
async fn endpoint(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<Received>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let statuses = Arc::new(Mutex::new(statuses));
    let (kept, queue) = (got.clone(), statuses.clone());
    let handler = move |headers: axum::http::HeaderMap, body: String| {
        let (kept, queue) = (kept.clone(), queue.clone());
        async move {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned()
            };
            kept.lock().unwrap().push(Received {
                signature: header("latchkey-signature"),
                event: header("latchkey-event"),
                body,
            });
            let mut queue = queue.lock().unwrap();
            StatusCode::from_u16(if queue.is_empty() {
                200
            } else {
                queue.remove(0)
            })
            .unwrap()
        }
    };
    let router = axum::Router::new().route("/hooks", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, got)
}

/// Whether `signature` (`t=…,v1=…`) is the HMAC-SHA256 of `t.body` under `secret`.
fn signed_with(secret: &str, signature: &str, body: &str) -> bool {
    let (Some(t), Some(v1)) = (
        signature.split(',').find_map(|p| p.strip_prefix("t=")),
        signature.split(',').find_map(|p| p.strip_prefix("v1=")),
    ) else {
        return false;
    };
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let mac = aws_lc_rs::hmac::sign(&key, format!("{t}.{body}").as_bytes());
    let hex: String = mac.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let fresh = t
        .parse::<i64>()
        .is_ok_and(|t| (latchkey::store::now() - t).abs() < 120);
    hex == v1 && fresh
}

async fn received(got: &Arc<Mutex<Vec<Received>>>, count: usize) -> Vec<Received> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = got.lock().unwrap().clone();
        if now.len() >= count || tokio::time::Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

on_both_backends! {
    async fn apps_hear_of_revocations_in_signed_events(backend) {
        let app = spawn_app(&backend).await;
        let (url, got) = endpoint(vec![500]).await;
        let owner_browser = app.signed_in("hooked-owner@example.com").await;
        let owner = app.store.user_by_email("hooked-owner@example.com").await.unwrap().unwrap();
        let scopes = latchkey::domain::scope::Scopes::parse("apps", &latchkey::domain::scope::PAT_SCOPES).unwrap();
        let (_, pat) = app.store.create_pat(&owner.id, "hooks", &scopes, None, latchkey::store::now()).await.unwrap();
        let pat = pat.expose().to_owned();
        let (status, created) = app.api(reqwest::Method::POST, "/oauth/clients", &pat, Some(json!({
            "name": "Hooked", "redirect_uris": ["https://hooked.example/cb"], "scopes": ["profile", "read"], "webhook_url": url,
        }))).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let client = RegisteredApp {
            id: created["id"].as_str().unwrap().to_owned(),
            client_id: created["client_id"].as_str().unwrap().to_owned(),
            secret: created["client_secret"].as_str().map(str::to_owned),
            redirect_uri: "https://hooked.example/cb".into(),
        };

        // A code used twice: its tokens are revoked, and the app is told.
        let user_browser = app.signed_in("hooked-user@example.com").await;
        let (code, verifier) = get_code(&app, &user_browser, &client, "profile read").await;
        let (status, _) = exchange(&app, &client, &code, &verifier).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = exchange(&app, &client, &code, &verifier).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // A leak report of a fresh token.
        let (code, verifier) = get_code(&app, &user_browser, &client, "profile read").await;
        let (_, fresh) = exchange(&app, &client, &code, &verifier).await;
        let leaked = reqwest::Client::new().post(app.url("/oauth/leaked")).json(&json!([fresh["access_token"]])).send().await.unwrap();
        assert_eq!(leaked.status(), StatusCode::OK);
        // The user revokes the app.
        let grant = app.store.grants_of_user(&app.store.user_by_email("hooked-user@example.com").await.unwrap().unwrap().id).await.unwrap().remove(0);
        let revoked = app.submit(&user_browser, "/oauth/authorized_applications", &format!("/oauth/authorized_applications/{}/revoke", grant.id), &[]).await;
        assert_eq!(revoked.status, StatusCode::SEE_OTHER);

        // The first delivery failed once (500) and was retried; all three arrived, signed with
        // the key shown on the app's page.
        let events = received(&got, 4).await;
        assert_eq!(events.len(), 4, "{events:?}");
        let page = app.get(&owner_browser, &format!("/oauth/applications/{}", client.id)).await;
        let secret = readonly_value(&page.body, "webhook_secret").expect("the signing key is on the app's page");
        let mut kinds = Vec::new();
        let mut ids = std::collections::BTreeMap::new();
        for event in &events {
            assert!(signed_with(&secret, &event.signature, &event.body), "{event:?}");
            assert!(!signed_with("whsec_other", &event.signature, &event.body));
            let body: Value = serde_json::from_str(&event.body).unwrap();
            assert_eq!(body["type"], event.event.as_str());
            assert_eq!(body["client_id"], client.client_id.as_str());
            // A retry sends the same event (same id, same body).
            if let Some(first) = ids.insert(body["id"].as_str().unwrap().to_owned(), event.body.clone()) {
                assert_eq!(first, event.body);
                continue;
            }
            kinds.push((body["type"].as_str().unwrap().to_owned(), body["data"]["reason"].as_str().unwrap_or("").to_owned()));
        }
        kinds.sort();
        assert_eq!(kinds, [
            ("grant.revoked".to_owned(), String::new()),
            ("tokens.revoked".to_owned(), "authorization_code_reuse".to_owned()),
            ("tokens.revoked".to_owned(), "leak_report".to_owned()),
        ]);
        // The delivery log on the app's page.
        let deliveries = app.store.deliveries_of_app(&client.id, 10).await.unwrap();
        assert!(deliveries.iter().all(|d| d.kind == "webhook" && d.status == "delivered"), "{deliveries:?}");
        assert_eq!(deliveries.iter().map(|d| d.attempts).sum::<i64>(), 4);
        let page = app.get(&owner_browser, &format!("/oauth/applications/{}", client.id)).await;
        assert!(page.body.contains("delivered") && page.body.contains("<code>webhook</code>"), "{}", page.body);
    }
}
