//! The first-admin setup link.

use reqwest::StatusCode;

use crate::helpers::*;
use crate::on_both_backends;

const DAY: i64 = 24 * 3600;

on_both_backends! {
    async fn a_setup_link_creates_the_first_admin_once(backend) {
        let app = spawn_app(&backend).await;
        let token = app.store.create_setup_token(latchkey::store::now(), DAY).await.unwrap();
        let path = format!("/setup?token={}", token.expose());

        let client = browser();
        let form = app.get(&client, &path).await;
        assert_eq!(form.status, StatusCode::OK);
        assert!(form.body.contains("Create the first administrator"));
        let token_field = hidden_value(&form.body, "token").unwrap();
        let done = client
            .post(app.url("/setup"))
            .form(&[
                ("csrf", form.csrf().as_str()),
                ("token", token_field.as_str()),
                ("email", "root@example.com"),
                ("name", "Root"),
                ("password", "correct horse battery"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), StatusCode::SEE_OTHER);
        let admin = app.store.user_by_email("root@example.com").await.unwrap().unwrap();
        assert!(admin.admin);
        assert!(app.audit_kinds().await.contains(&"setup".to_owned()));
        assert!(app.get(&client, "/").await.body.contains("root@example.com"), "signed in");

        // The link is single-use: the page and a second POST both refuse it.
        let other = browser();
        let again = app.get(&other, &path).await;
        assert_eq!(again.status, StatusCode::NOT_FOUND);
        assert!(again.body.contains("invalid, expired or already used"));
        let csrf = app.get(&other, "/login").await.csrf();
        let second = other
            .post(app.url("/setup"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("token", token_field.as_str()),
                ("email", "second@example.com"),
                ("password", "correct horse battery"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(second.status(), StatusCode::NOT_FOUND);
        assert!(app.store.user_by_email("second@example.com").await.unwrap().is_none());
    }

    async fn other_setup_links_die_with_the_first_admin(backend) {
        let app = spawn_app(&backend).await;
        let now = latchkey::store::now();
        let a = app.store.create_setup_token(now, DAY).await.unwrap();
        let b = app.store.create_setup_token(now, DAY).await.unwrap();
        let new = |email: &str| latchkey::store::NewUser {
            email: email.into(),
            name: String::new(),
            password_hash: None,
            admin: false,
        };
        app.store.complete_setup(&a, new("a@example.com"), now).await.unwrap();
        assert!(!app.store.setup_token_usable(&b, now).await.unwrap());
        assert!(app.store.complete_setup(&b, new("b@example.com"), now).await.is_err());
    }

    async fn an_expired_or_forged_setup_link_is_refused(backend) {
        let app = spawn_app(&backend).await;
        let past = latchkey::store::now() - 2 * DAY;
        let expired = app.store.create_setup_token(past, DAY).await.unwrap();
        let client = browser();
        let page = app.get(&client, &format!("/setup?token={}", expired.expose())).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        for forged in ["lk_setup_x", "", "garbage"] {
            let page = app.get(&client, &format!("/setup?token={forged}")).await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "{forged}");
        }
        assert_eq!(app.get(&client, "/setup").await.status, StatusCode::NOT_FOUND);
    }

    async fn a_failed_setup_keeps_the_link_usable(backend) {
        let app = spawn_app(&backend).await;
        let token = app.store.create_setup_token(latchkey::store::now(), DAY).await.unwrap();
        let path = format!("/setup?token={}", token.expose());
        let client = browser();
        let page = app
            .submit(&client, &path, "/setup", &[("token", token.expose()), ("email", "bad"), ("password", "short")])
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(app.store.setup_token_usable(&token, latchkey::store::now()).await.unwrap());
    }
}
