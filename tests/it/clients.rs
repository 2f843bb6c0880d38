//! The client API (`/oauth/clients`), leak reports, and personal-access-token authentication.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::on_both_backends;

fn is_rfc3339(s: &str) -> bool {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

/// Insert a grant and `n` live tokens for `app_id`, as the authorization server will.
async fn fake_grant(app: &TestApp, app_id: &str, user_id: &str, n: usize) {
    let now = latchkey::store::now();
    let grant = uuid::Uuid::new_v4().to_string();
    sqlx::query("INSERT INTO grants (id, user_id, app_id, scopes, created_at, updated_at) VALUES ($1, $2, $3, 'profile', $4, $4)")
        .bind(&grant)
        .bind(user_id)
        .bind(app_id)
        .bind(now)
        .execute(app.store.pool())
        .await
        .unwrap();
    for i in 0..n {
        sqlx::query(
            "INSERT INTO tokens (token_hash, kind, app_id, user_id, grant_id, family_id, scopes, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $5, 'profile', $6, $7)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(if i % 2 == 0 { "access" } else { "refresh" })
        .bind(app_id)
        .bind(user_id)
        .bind(&grant)
        .bind(now)
        .bind(now + 3600)
        .execute(app.store.pool())
        .await
        .unwrap();
    }
}

on_both_backends! {
    async fn hitkeys_body_creates_a_confidential_app(backend) {
        let app = spawn_app(&backend).await;
        let (_, pat) = app.user_with_pat("dev@example.com", "apps", false).await;
        let (status, client) = app
            .api(Method::POST, "/oauth/clients", &pat, Some(json!({"name": "My App", "redirect_uri": "https://myapp.com/callback"})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{client}");
        let keys: Vec<&str> = client.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = vec![
            "client_id", "client_secret", "confidential", "created_at", "homepage_url", "id", "name",
            "redirect_uri", "redirect_uris", "scopes", "verified",
        ];
        expected.sort();
        let mut got = keys.clone();
        got.sort();
        assert_eq!(got, expected);
        assert!(uuid::Uuid::parse_str(client["id"].as_str().unwrap()).is_ok());
        let client_id = client["client_id"].as_str().unwrap();
        assert!(client_id.len() == 32 && client_id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let secret = client["client_secret"].as_str().unwrap();
        assert!(latchkey::domain::secret::parse(latchkey::domain::secret::TokenKind::ClientSecret, secret).is_some(), "{secret}");
        assert_eq!(client["name"], "My App");
        assert_eq!(client["redirect_uri"], "https://myapp.com/callback");
        assert_eq!(client["redirect_uris"], json!(["https://myapp.com/callback"]));
        assert_eq!(client["scopes"], json!(["profile"]));
        assert_eq!(client["confidential"], true);
        assert_eq!(client["verified"], false);
        assert!(is_rfc3339(client["created_at"].as_str().unwrap()));

        // Stored only as a hash; shown only at creation.
        let stored = app.store.app_by_client_id(client_id).await.unwrap().unwrap();
        assert_ne!(stored.secret_hash.as_deref(), Some(secret));
        assert!(latchkey::store::Store::client_secret_matches(&stored, secret));
        let (status, shown) = app.api(Method::GET, &format!("/oauth/clients/{}", client["id"].as_str().unwrap()), &pat, None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(shown.get("client_secret").is_none());
        let (_, list) = app.api(Method::GET, "/oauth/clients", &pat, None).await;
        assert_eq!(list["clients"].as_array().unwrap().len(), 1);
        assert!(list["clients"][0].get("client_secret").is_none());
        assert!(app.audit_kinds().await.contains(&"app_created".to_owned()));
    }

    async fn the_richer_body_and_public_apps(backend) {
        let app = spawn_app(&backend).await;
        let (_, pat) = app.user_with_pat("dev@example.com", "apps read", false).await;
        let (status, client) = app
            .api(
                Method::POST,
                "/oauth/clients",
                &pat,
                Some(json!({
                    "name": "Editor plugin",
                    "redirect_uris": ["http://127.0.0.1/cb", "com.example.editor:/cb"],
                    "homepage_url": "https://editor.example",
                    "scopes": "read profile openid",
                    "confidential": false,
                    "access_token_ttl": 504_576_000u64,
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{client}");
        assert!(client.get("client_secret").is_none(), "public apps get no secret");
        assert_eq!(client["confidential"], false);
        assert_eq!(client["scopes"], json!(["profile", "read", "openid"]));
        assert_eq!(client["redirect_uri"], "http://127.0.0.1/cb");
        assert_eq!(client["homepage_url"], "https://editor.example");
        let stored = app.store.app_by_client_id(client["client_id"].as_str().unwrap()).await.unwrap().unwrap();
        assert_eq!(stored.access_token_ttl, 504_576_000, "16-year tokens for Hackatime-style apps");

        let (status, with_array) = app
            .api(Method::POST, "/oauth/clients", &pat, Some(json!({"name": "B", "redirect_uri": "https://b.example/cb", "scopes": ["email"]})))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(with_array["scopes"], json!(["email"]));
    }

    async fn bad_input_gets_field_errors(backend) {
        let app = spawn_app(&backend).await;
        let (_, pat) = app.user_with_pat("dev@example.com", "apps", false).await;
        let cases = [
            (json!({"name": "X", "redirect_uri": "http://evil.example/cb"}), "redirect_uris"),
            (json!({"name": "X", "redirect_uri": "https://x.example/cb#frag"}), "redirect_uris"),
            (json!({"name": "X", "redirect_uri": "com.example.app:/cb"}), "redirect_uris"),
            (json!({"name": "X"}), "redirect_uris"),
            (json!({"name": "", "redirect_uri": "https://x.example/cb"}), "name"),
            (json!({"name": "X", "redirect_uri": "https://x.example/cb", "scopes": "profile admin"}), "scopes"),
            (json!({"name": "X", "redirect_uri": "https://x.example/cb", "homepage_url": "javascript:alert(1)"}), "homepage_url"),
        ];
        for (body, field) in cases {
            let (status, error) = app.api(Method::POST, "/oauth/clients", &pat, Some(body.clone())).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(error["error"], "invalid_request");
            assert!(error["fields"][field].is_string(), "{body} → {error}");
        }
        let raw = reqwest::Client::new()
            .post(app.url("/oauth/clients"))
            .bearer_auth(&pat)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
        assert_eq!(raw.json::<Value>().await.unwrap()["error"], "invalid_request");
        let form = reqwest::Client::new()
            .post(app.url("/oauth/clients"))
            .bearer_auth(&pat)
            .form(&[("name", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let (status, _) = app.api(Method::PUT, "/oauth/clients", &pat, None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(app.store.all_apps().await.unwrap().is_empty());
    }

    async fn authentication_is_required_and_scoped(backend) {
        let app = spawn_app(&backend).await;
        let (user, without_apps) = app.user_with_pat("dev@example.com", "read", false).await;

        let anonymous = reqwest::Client::new().get(app.url("/oauth/clients")).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        assert!(anonymous.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));

        let (status, error) = app.api(Method::GET, "/oauth/clients", &without_apps, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(error["error"], "insufficient_scope");

        for bad in ["lk_pat_garbage", "not-a-token", ""] {
            let (status, error) = app.api(Method::GET, "/oauth/clients", bad, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad:?}");
            assert_eq!(error["error"], "invalid_token");
        }

        // A well-formed token that was never issued, and a revoked one.
        let forged = latchkey::domain::secret::generate(latchkey::domain::secret::TokenKind::PersonalAccessToken);
        assert_eq!(app.api(Method::GET, "/oauth/clients", forged.expose(), None).await.0, StatusCode::UNAUTHORIZED);
        let scopes = latchkey::domain::scope::Scopes::parse("apps", &latchkey::domain::scope::PAT_SCOPES).unwrap();
        let now = latchkey::store::now();
        let (pat, token) = app.store.create_pat(&user.id, "t", &scopes, None, now).await.unwrap();
        assert_eq!(app.api(Method::GET, "/oauth/clients", token.expose(), None).await.0, StatusCode::OK);
        assert!(app.store.pats_of_user(&user.id).await.unwrap().iter().any(|p| p.id == pat.id && p.last_used_at.is_some()));
        assert!(app.store.revoke_pat(&user.id, &pat.id, now).await.unwrap());
        assert_eq!(app.api(Method::GET, "/oauth/clients", token.expose(), None).await.0, StatusCode::UNAUTHORIZED);
        // An expired one.
        let (_, expired) = app.store.create_pat(&user.id, "old", &scopes, Some(now - 1), now - 100).await.unwrap();
        assert_eq!(app.api(Method::GET, "/oauth/clients", expired.expose(), None).await.0, StatusCode::UNAUTHORIZED);
    }

    async fn owners_see_only_their_apps(backend) {
        let app = spawn_app(&backend).await;
        let (_, alice) = app.user_with_pat("alice@example.com", "apps", false).await;
        let (_, bob) = app.user_with_pat("bob@example.com", "apps", false).await;
        let (_, admin) = app.user_with_pat("admin@example.com", "apps", true).await;
        let (_, client) = app
            .api(Method::POST, "/oauth/clients", &alice, Some(json!({"name": "Alice's", "redirect_uri": "https://a.example/cb"})))
            .await;
        let id = client["id"].as_str().unwrap();

        let (_, list) = app.api(Method::GET, "/oauth/clients", &bob, None).await;
        assert_eq!(list["clients"], json!([]));
        for (method, path) in [
            (Method::GET, format!("/oauth/clients/{id}")),
            (Method::PATCH, format!("/oauth/clients/{id}")),
            (Method::DELETE, format!("/oauth/clients/{id}")),
            (Method::POST, format!("/oauth/clients/{id}/secret")),
            (Method::POST, format!("/oauth/clients/{id}/revoke_tokens")),
        ] {
            let (status, error) = app.api(method.clone(), &path, &bob, Some(json!({"name": "mine now"}))).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
            assert_eq!(error["error"], "not_found");
        }
        assert_eq!(app.store.app_by_id(id).await.unwrap().unwrap().name, "Alice's");
        let (status, _) = app.api(Method::GET, &format!("/oauth/clients/{id}"), &admin, None).await;
        assert_eq!(status, StatusCode::OK, "admins see every app");
        let (_, all) = app.api(Method::GET, "/oauth/clients", &admin, None).await;
        assert_eq!(all["clients"].as_array().unwrap().len(), 1);
    }

    async fn patch_reset_revoke_and_delete(backend) {
        let app = spawn_app(&backend).await;
        let (owner, pat) = app.user_with_pat("dev@example.com", "apps", false).await;
        let (_, client) = app
            .api(Method::POST, "/oauth/clients", &pat, Some(json!({"name": "App", "redirect_uri": "https://a.example/cb"})))
            .await;
        let id = client["id"].as_str().unwrap().to_owned();
        let old_secret = client["client_secret"].as_str().unwrap().to_owned();

        let (status, patched) = app
            .api(Method::PATCH, &format!("/oauth/clients/{id}"), &pat, Some(json!({"redirect_uris": ["https://a.example/cb", "https://a.example/cb2"], "scopes": "profile read"})))
            .await;
        assert_eq!(status, StatusCode::OK, "{patched}");
        assert_eq!(patched["name"], "App", "untouched fields stay");
        assert_eq!(patched["redirect_uris"], json!(["https://a.example/cb", "https://a.example/cb2"]));
        assert_eq!(patched["scopes"], json!(["profile", "read"]));
        assert!(patched.get("client_secret").is_none());

        let (status, reset) = app.api(Method::POST, &format!("/oauth/clients/{id}/secret"), &pat, None).await;
        assert_eq!(status, StatusCode::OK);
        let new_secret = reset["client_secret"].as_str().unwrap();
        assert_ne!(new_secret, old_secret);
        let stored = app.store.app_by_id(&id).await.unwrap().unwrap();
        assert!(!latchkey::store::Store::client_secret_matches(&stored, &old_secret), "the old secret is dead at once");
        assert!(latchkey::store::Store::client_secret_matches(&stored, new_secret));
        assert!(app.audit_kinds().await.contains(&"secret_reset".to_owned()));

        fake_grant(&app, &id, &owner.id, 3).await;
        let (status, revoked) = app.api(Method::POST, &format!("/oauth/clients/{id}/revoke_tokens"), &pat, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(revoked, json!({"revoked_tokens": 3, "revoked_grants": 1}));
        let (_, again) = app.api(Method::POST, &format!("/oauth/clients/{id}/revoke_tokens"), &pat, None).await;
        assert_eq!(again, json!({"revoked_tokens": 0, "revoked_grants": 0}));
        assert!(app.audit_kinds().await.contains(&"tokens_revoked".to_owned()));

        let delete = reqwest::Client::new().delete(app.url(&format!("/oauth/clients/{id}"))).bearer_auth(&pat).send().await.unwrap();
        assert_eq!(delete.status(), StatusCode::NO_CONTENT);
        assert_eq!(app.api(Method::GET, &format!("/oauth/clients/{id}"), &pat, None).await.0, StatusCode::NOT_FOUND);
        let leftover: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE app_id = $1")
            .bind(&id)
            .fetch_one(app.store.pool())
            .await
            .unwrap();
        assert_eq!(leftover, 0, "tokens go with the app");
    }

    async fn a_verified_apps_name_is_locked_for_its_owner(backend) {
        let app = spawn_app(&backend).await;
        let (_, owner) = app.user_with_pat("dev@example.com", "apps", false).await;
        let (admin_user, admin) = app.user_with_pat("admin@example.com", "apps", true).await;
        let (_, client) = app
            .api(Method::POST, "/oauth/clients", &owner, Some(json!({"name": "Original", "redirect_uri": "https://a.example/cb"})))
            .await;
        let id = client["id"].as_str().unwrap();
        let stored = app.store.app_by_id(id).await.unwrap().unwrap();
        latchkey::apps::set_verified(&app.store, &admin_user, &stored, true, latchkey::apps::Origin::default()).await.unwrap();

        let (status, error) = app.api(Method::PATCH, &format!("/oauth/clients/{id}"), &owner, Some(json!({"name": "Renamed"}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(error["error_description"].as_str().unwrap().contains("verified"));
        let (status, ok) = app
            .api(Method::PATCH, &format!("/oauth/clients/{id}"), &owner, Some(json!({"homepage_url": "https://a.example"})))
            .await;
        assert_eq!(status, StatusCode::OK, "other fields stay editable");
        assert_eq!(ok["verified"], true);
        let (status, renamed) = app.api(Method::PATCH, &format!("/oauth/clients/{id}"), &admin, Some(json!({"name": "Renamed"}))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(renamed["name"], "Renamed");
        assert!(app.audit_kinds().await.contains(&"app_verified".to_owned()));
    }

    async fn leaked_secrets_stop_working_at_once(backend) {
        let app = spawn_app(&backend).await;
        let (_, pat) = app.user_with_pat("dev@example.com", "apps", false).await;
        let (_, client) = app
            .api(Method::POST, "/oauth/clients", &pat, Some(json!({"name": "App", "redirect_uri": "https://a.example/cb"})))
            .await;
        let secret = client["client_secret"].as_str().unwrap();
        let client_id = client["client_id"].as_str().unwrap();

        let report = |body: Value| {
            let app = &app;
            async move {
                let r = reqwest::Client::new().post(app.url("/oauth/leaked")).json(&body).send().await.unwrap();
                (r.status(), r.json::<Value>().await.unwrap())
            }
        };
        // Unknown strings and well-formed unknown tokens get the same answer as real ones.
        let forged = latchkey::domain::secret::generate(latchkey::domain::secret::TokenKind::AccessToken);
        let unknown = report(json!(["hello", forged.expose()])).await;
        let found = report(json!([secret, {"token": pat, "url": "https://paste.example/1"}])).await;
        assert_eq!(unknown, (StatusCode::OK, json!({"received": 2})));
        assert_eq!(found, (StatusCode::OK, json!({"received": 2})));

        let stored = app.store.app_by_client_id(client_id).await.unwrap().unwrap();
        assert!(!latchkey::store::Store::client_secret_matches(&stored, secret), "leaked client secret is dead");
        assert_eq!(app.api(Method::GET, "/oauth/clients", &pat, None).await.0, StatusCode::UNAUTHORIZED, "leaked PAT is dead");
        let events = app.store.recent_audit_events(50).await.unwrap();
        let leaks: Vec<_> = events.iter().filter(|e| e.kind == "leak_revoked").collect();
        assert_eq!(leaks.len(), 2);
        assert!(leaks.iter().all(|e| !e.details.contains(secret) && !e.details.contains(&pat)), "no secret in the audit log");

        let (status, _) = report(json!({"tokens": ["x"]})).await;
        assert_eq!(status, StatusCode::OK);
        let (status, error) = report(json!({"nope": 1})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error["error"], "invalid_request");
    }

    async fn a_browser_session_can_use_the_client_api_from_its_own_origin(backend) {
        let app = spawn_app(&backend).await;
        let browser = app.signed_in("web@example.com").await;
        let ok = browser
            .post(app.url("/oauth/clients"))
            .header("origin", app.base.clone())
            .header("sec-fetch-site", "same-origin")
            .json(&json!({"name": "From the page", "redirect_uri": "https://a.example/cb"}))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::CREATED);
        let cross = browser
            .post(app.url("/oauth/clients"))
            .header("origin", "https://evil.example")
            .header("sec-fetch-site", "cross-site")
            .json(&json!({"name": "Forged", "redirect_uri": "https://a.example/cb"}))
            .send()
            .await
            .unwrap();
        assert_eq!(cross.status(), StatusCode::FORBIDDEN);
        let list: Value = browser.get(app.url("/oauth/clients")).send().await.unwrap().json().await.unwrap();
        assert_eq!(list["clients"].as_array().unwrap().len(), 1);
    }
}
