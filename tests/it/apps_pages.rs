//! My OAuth Apps pages, the admin page and personal access tokens on /settings.

use reqwest::{Client, Method, StatusCode};

use crate::helpers::*;
use crate::on_both_backends;

const SECRET_NOTICE: &str = "You won&#39;t see it again";

fn app_form<'a>(name: &'a str, uris: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", name),
        ("homepage_url", "https://myapp.example"),
        ("redirect_uris", uris),
        ("scopes", "profile"),
        ("scopes", "read"),
        ("confidential", "on"),
        ("access_token_ttl", "7200"),
        ("issue_refresh", "on"),
    ]
}

async fn create_app(app: &TestApp, client: &Client, name: &str) -> (String, String, String) {
    let page = app
        .submit(
            client,
            "/oauth/applications/new",
            "/oauth/applications",
            &app_form(name, "https://myapp.example/cb\nhttp://127.0.0.1:9000/cb"),
        )
        .await;
    assert_eq!(page.status, StatusCode::CREATED, "{}", page.body);
    let client_id = readonly_value(&page.body, "client_id").expect("client id shown");
    let secret = readonly_value(&page.body, "client_secret").expect("secret shown once");
    let stored = app
        .store
        .app_by_client_id(&client_id)
        .await
        .unwrap()
        .unwrap();
    (stored.id, client_id, secret)
}

on_both_backends! {
    async fn creating_an_app_shows_the_secret_once(backend) {
        let app = spawn_app(&backend).await;
        let client = app.signed_in("dev@example.com").await;
        let list = app.get(&client, "/oauth/applications").await;
        assert!(list.body.contains("New Application"));

        let form = app.get(&client, "/oauth/applications/new").await;
        for label in ["Name", "Homepage URL", "Redirect URIs", "Scopes", "Confidential"] {
            assert!(form.body.contains(label), "{label}");
        }
        let (id, client_id, secret) = create_app(&app, &client, "Time Tracker").await;
        let stored = app.store.app_by_id(&id).await.unwrap().unwrap();
        assert!(latchkey::store::Store::client_secret_matches(&stored, &secret));
        assert_eq!(stored.redirect_uris, ["https://myapp.example/cb", "http://127.0.0.1:9000/cb"]);
        assert_eq!(stored.scopes.to_string(), "profile read");
        assert_eq!(stored.access_token_ttl, 7200);

        let again = app.get(&client, &format!("/oauth/applications/{id}")).await;
        assert_eq!(again.status, StatusCode::OK);
        assert!(again.body.contains(&client_id));
        assert!(!again.body.contains(&secret), "the secret is never shown again");
        assert!(!again.body.contains(SECRET_NOTICE));
        let list = app.get(&client, "/oauth/applications").await;
        assert!(list.body.contains("Time Tracker") && list.body.contains(&client_id));
    }

    async fn invalid_apps_show_errors_beside_fields_and_keep_input(backend) {
        let app = spawn_app(&backend).await;
        let client = app.signed_in("dev@example.com").await;
        let page = app
            .submit(&client, "/oauth/applications/new", "/oauth/applications", &app_form("Typed Name", "http://evil.example/cb"))
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.body.contains("Plain http is allowed only for 127.0.0.1"));
        assert!(page.body.contains("value=\"Typed Name\""));
        assert!(page.body.contains(">http://evil.example/cb</textarea>"));
        assert!(page.body.contains("value=\"read\" checked"), "checked scopes stay checked");
        let page = app
            .submit(&client, "/oauth/applications/new", "/oauth/applications", &[("name", ""), ("redirect_uris", ""), ("access_token_ttl", "abc")])
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.body.contains("Enter a number of seconds"));
        assert!(app.store.all_apps().await.unwrap().is_empty());
    }

    async fn reset_edit_revoke_and_delete_from_the_pages(backend) {
        let app = spawn_app(&backend).await;
        let client = app.signed_in("dev@example.com").await;
        let (id, _, old_secret) = create_app(&app, &client, "Original").await;
        let show = format!("/oauth/applications/{id}");

        let reset = app.submit(&client, &show, &format!("{show}/secret"), &[]).await;
        assert_eq!(reset.status, StatusCode::OK);
        let new_secret = readonly_value(&reset.body, "client_secret").expect("new secret shown");
        assert_ne!(new_secret, old_secret);
        assert!(reset.body.contains(SECRET_NOTICE));
        let stored = app.store.app_by_id(&id).await.unwrap().unwrap();
        assert!(!latchkey::store::Store::client_secret_matches(&stored, &old_secret));
        assert!(latchkey::store::Store::client_secret_matches(&stored, &new_secret));

        let edit = app.get(&client, &format!("{show}/edit")).await;
        assert!(edit.body.contains("value=\"Original\""));
        let mut form = app_form("Renamed", "https://myapp.example/cb");
        form.retain(|(k, v)| !(*k == "scopes" && *v == "read"));
        let saved = app.submit(&client, &format!("{show}/edit"), &show, &form).await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER);
        let stored = app.store.app_by_id(&id).await.unwrap().unwrap();
        assert_eq!(stored.name, "Renamed");
        assert_eq!(stored.scopes.to_string(), "profile");
        assert!(latchkey::store::Store::client_secret_matches(&stored, &new_secret), "editing keeps the secret");

        let revoked = app.submit(&client, &show, &format!("{show}/revoke_tokens"), &[]).await;
        assert_eq!(revoked.status, StatusCode::OK);
        assert!(revoked.body.contains("Revoked 0 tokens and 0 user approvals"));

        let confirm = app.get(&client, &format!("{show}/delete")).await;
        assert!(confirm.body.contains("cannot be undone"));
        let deleted = app.submit(&client, &format!("{show}/delete"), &format!("{show}/delete"), &[]).await;
        assert_eq!(deleted.status, StatusCode::SEE_OTHER);
        assert!(app.store.app_by_id(&id).await.unwrap().is_none());
        assert_eq!(app.get(&client, &show).await.status, StatusCode::NOT_FOUND);
    }

    async fn another_users_app_is_not_found(backend) {
        let app = spawn_app(&backend).await;
        let owner = app.signed_in("owner@example.com").await;
        let (id, _, _) = create_app(&app, &owner, "Private").await;
        let other = app.signed_in("other@example.com").await;
        for path in ["", "/edit", "/delete"] {
            let page = app.get(&other, &format!("/oauth/applications/{id}{path}")).await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        }
        let csrf = app.get(&other, "/oauth/applications").await.csrf();
        for action in ["/secret", "/revoke_tokens", "/delete"] {
            let r = other
                .post(app.url(&format!("/oauth/applications/{id}{action}")))
                .form(&[("csrf", csrf.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{action}");
        }
        assert!(!app.get(&other, "/oauth/applications").await.body.contains("Private"));
        assert!(app.store.app_by_id(&id).await.unwrap().is_some());
    }

    async fn admins_verify_apps_and_the_name_locks(backend) {
        let app = spawn_app(&backend).await;
        let owner = app.signed_in("owner@example.com").await;
        let (id, _, _) = create_app(&app, &owner, "Locked Name").await;
        let admin = app.signed_in("root@example.com").await;
        let root = app.store.user_by_email("root@example.com").await.unwrap().unwrap();
        app.store.set_admin(&root.id, true, latchkey::store::now()).await.unwrap();

        assert_eq!(app.get(&owner, "/admin").await.status, StatusCode::NOT_FOUND, "not for non-admins");
        let page = app.get(&admin, "/admin").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("Locked Name") && page.body.contains("owner@example.com"));
        let verified = app.submit(&admin, "/admin", &format!("/admin/apps/{id}/verify"), &[("verified", "1")]).await;
        assert_eq!(verified.status, StatusCode::SEE_OTHER);
        assert!(app.store.app_by_id(&id).await.unwrap().unwrap().verified);
        assert!(app.audit_kinds().await.contains(&"app_verified".to_owned()));

        // The owner's edit form disables the name; a forged name field changes nothing.
        let edit = app.get(&owner, &format!("/oauth/applications/{id}/edit")).await;
        assert!(edit.body.contains("value=\"Locked Name\" disabled"));
        assert!(edit.body.contains("its name is locked"));
        app.submit(&owner, &format!("/oauth/applications/{id}/edit"), &format!("/oauth/applications/{id}"), &app_form("Sneaky", "https://myapp.example/cb"))
            .await;
        assert_eq!(app.store.app_by_id(&id).await.unwrap().unwrap().name, "Locked Name");
        // An admin can rename it.
        app.submit(&admin, &format!("/oauth/applications/{id}/edit"), &format!("/oauth/applications/{id}"), &app_form("Admin Renamed", "https://myapp.example/cb"))
            .await;
        assert_eq!(app.store.app_by_id(&id).await.unwrap().unwrap().name, "Admin Renamed");

        app.submit(&admin, "/admin", &format!("/admin/apps/{id}/verify"), &[("verified", "0")]).await;
        assert!(!app.store.app_by_id(&id).await.unwrap().unwrap().verified);
    }

    async fn admins_manage_users(backend) {
        let app = spawn_app(&backend).await;
        let user = app.signed_in("user@example.com").await;
        let admin = app.signed_in("root@example.com").await;
        let root = app.store.user_by_email("root@example.com").await.unwrap().unwrap();
        app.store.set_admin(&root.id, true, latchkey::store::now()).await.unwrap();
        let target = app.store.user_by_email("user@example.com").await.unwrap().unwrap();

        let page = app
            .submit(&admin, "/admin", &format!("/admin/users/{}", target.id), &[("trust_level", "green"), ("disabled", "on")])
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        let after = app.store.user_by_id(&target.id).await.unwrap().unwrap();
        assert_eq!(after.trust_level, latchkey::domain::user::TrustLevel::Green);
        assert!(after.disabled);
        assert_eq!(app.get(&user, "/settings").await.status, StatusCode::SEE_OTHER, "a disabled user's session ends");
        assert_eq!(app.sign_in(&browser(), "user@example.com", "correct horse battery").await.status, StatusCode::UNAUTHORIZED);

        // An admin cannot lock themselves out.
        let own = app.submit(&admin, "/admin", &format!("/admin/users/{}", root.id), &[("trust_level", "blue"), ("disabled", "on")]).await;
        assert_eq!(own.status, StatusCode::FORBIDDEN);
        assert!(!app.store.user_by_id(&root.id).await.unwrap().unwrap().disabled);
    }

    async fn personal_access_tokens_on_the_settings_page(backend) {
        let app = spawn_app(&backend).await;
        let client = app.signed_in("dev@example.com").await;
        let page = app
            .submit(
                &client,
                "/settings",
                "/settings/tokens",
                &[("token_name", "deploy script"), ("token_scopes", "apps"), ("token_scopes", "read"), ("expires_in_days", "30")],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK);
        let token = readonly_value(&page.body, "new_token").expect("token shown once");
        assert!(token.starts_with("lk_pat_"));
        assert!(page.body.contains("deploy script"));

        let (status, _) = app.api(Method::GET, "/oauth/clients", &token, None).await;
        assert_eq!(status, StatusCode::OK);
        let again = app.get(&client, "/settings").await;
        assert!(!again.body.contains(&token), "shown once only");
        assert!(again.body.contains("read apps"));

        let bad = app.submit(&client, "/settings", "/settings/tokens", &[("token_name", ""), ("expires_in_days", "30")]).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(bad.body.contains("Choose at least one scope."));

        let user = app.store.user_by_email("dev@example.com").await.unwrap().unwrap();
        let pat = &app.store.pats_of_user(&user.id).await.unwrap()[0];
        assert!(pat.expires_at.is_some());
        let revoked = app.submit(&client, "/settings", &format!("/settings/tokens/{}/revoke", pat.id), &[]).await;
        assert_eq!(revoked.status, StatusCode::SEE_OTHER);
        assert_eq!(app.api(Method::GET, "/oauth/clients", &token, None).await.0, StatusCode::UNAUTHORIZED);
        // Someone else's token id is not found.
        let other = app.signed_in("other@example.com").await;
        let r = app.submit(&other, "/settings", &format!("/settings/tokens/{}/revoke", pat.id), &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }

    async fn the_apps_pages_in_russian(backend) {
        let app = spawn_app(&backend).await;
        let client = app.signed_in("dev@example.com").await;
        app.get(&client, "/lang/ru").await;
        let form = app.get(&client, "/oauth/applications/new").await;
        assert!(form.body.contains("Новое приложение"));
        assert!(form.body.contains("URI перенаправления"));
        let page = app
            .submit(&client, "/oauth/applications/new", "/oauth/applications", &app_form("Приложение", "https://myapp.example/cb"))
            .await;
        assert!(page.body.contains("Больше вы его не увидите"));
    }
}
