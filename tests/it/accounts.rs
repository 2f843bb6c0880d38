//! Sign-up, sign-in, sign-out, wrong passwords, rate limits, sessions.

use reqwest::StatusCode;

use crate::helpers::*;
use crate::on_both_backends;

/// The `lk_session=…` pair a response sets, ready for a `Cookie` header.
fn session_cookie(page: &Page) -> Option<String> {
    page.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("lk_session=") && !c.starts_with("lk_session=;"))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}

on_both_backends! {
    async fn sign_up_creates_an_account_and_signs_in(backend) {
        let app = spawn_app(&backend).await;
        let client = browser();

        let page = app.sign_up(&client, "ann@example.com", "correct horse battery").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(page.location(), "/");

        let home = app.get(&client, "/").await;
        assert!(home.body.contains("ann@example.com"), "{}", home.body);
        let user = app.store.user_by_email("ANN@example.com").await.unwrap().expect("stored");
        assert_eq!(user.name, "Test User");
        assert!(!user.admin);
        assert!(app.audit_kinds().await.contains(&"sign_up".to_owned()));
    }

    async fn sign_up_rejects_bad_fields_and_keeps_what_was_typed(backend) {
        let app = spawn_app(&backend).await;
        let client = browser();
        let page = app
            .submit(&client, "/signup", "/signup", &[("email", "not-an-email"), ("name", "Ann Typed"), ("password", "short")])
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.body.contains("Enter a valid email address."));
        assert!(page.body.contains("Use at least 8 characters."));
        assert!(page.body.contains("value=\"Ann Typed\""), "typed name kept");
        assert!(page.body.contains("value=\"not-an-email\""), "typed email kept");
        assert!(app.store.list_users().await.unwrap().is_empty());
    }

    async fn a_taken_email_is_refused(backend) {
        let app = spawn_app(&backend).await;
        app.signed_in("bob@example.com").await;
        let page = app.sign_up(&browser(), "Bob@Example.com", "another password").await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.body.contains("An account with this email already exists."));
        assert_eq!(app.store.list_users().await.unwrap().len(), 1);
    }

    async fn sign_in_and_sign_out(backend) {
        let app = spawn_app(&backend).await;
        let first = app.signed_in("cat@example.com").await;
        drop(first);

        let client = browser();
        let page = app.sign_in(&client, "cat@example.com", "correct horse battery").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        let settings = app.get(&client, "/settings").await;
        assert_eq!(settings.status, StatusCode::OK);

        let out = app.submit(&client, "/settings", "/logout", &[]).await;
        assert_eq!(out.status, StatusCode::SEE_OTHER);
        let settings = app.get(&client, "/settings").await;
        assert_eq!(settings.status, StatusCode::SEE_OTHER, "signed out: settings redirect to login");
        assert!(settings.location().starts_with("/login?return_to=%2Fsettings"));
        let kinds = app.audit_kinds().await;
        assert!(kinds.contains(&"sign_in".to_owned()) && kinds.contains(&"sign_out".to_owned()));
    }

    async fn the_old_session_cookie_is_dead_after_sign_out(backend) {
        let app = spawn_app(&backend).await;
        let client = browser();
        let signup = app.sign_up(&client, "dan@example.com", "correct horse battery").await;
        let stolen = session_cookie(&signup).expect("session cookie set at sign-up");

        let replay = |cookie: String| {
            let app = &app;
            async move {
                let response = reqwest::Client::new()
                    .get(app.url("/"))
                    .header("cookie", cookie)
                    .send()
                    .await
                    .unwrap();
                response.text().await.unwrap()
            }
        };
        assert!(replay(stolen.clone()).await.contains("dan@example.com"), "the cookie works while signed in");
        app.submit(&client, "/", "/logout", &[]).await;
        assert!(!replay(stolen).await.contains("dan@example.com"), "the copied cookie is dead after sign-out");
    }

    async fn a_wrong_password_is_refused_like_an_unknown_email(backend) {
        let app = spawn_app(&backend).await;
        app.signed_in("eve@example.com").await;
        let client = browser();

        let wrong = app.sign_in(&client, "eve@example.com", "not the password").await;
        let unknown = app.sign_in(&client, "nobody@example.com", "not the password").await;
        for page in [&wrong, &unknown] {
            assert_eq!(page.status, StatusCode::UNAUTHORIZED);
            assert!(page.body.contains("Incorrect email or password."));
            assert!(page.headers.get("set-cookie").is_none_or(|c| !c.to_str().unwrap().contains("lk_session")));
        }
        let settings = app.get(&client, "/settings").await;
        assert_eq!(settings.status, StatusCode::SEE_OTHER);
        let failures = app.audit_kinds().await.iter().filter(|k| *k == "sign_in_failed").count();
        assert_eq!(failures, 2);
    }

    async fn sign_in_replaces_the_session_id(backend) {
        let app = spawn_app(&backend).await;
        app.signed_in("fay@example.com").await;
        let client = browser();
        let first = session_cookie(&app.sign_in(&client, "fay@example.com", "correct horse battery").await)
            .expect("session cookie");
        // Signing in again (from a form loaded while signed in) issues a new id and ends the old one.
        let second = app
            .submit(&client, "/", "/login", &[("email", "fay@example.com"), ("password", "correct horse battery")])
            .await;
        let second = session_cookie(&second).expect("new session cookie");
        assert_ne!(first, second);
        let old = browser().get(app.url("/settings")).header("cookie", first).send().await.unwrap();
        assert_eq!(old.status(), StatusCode::SEE_OTHER, "the old session no longer signs in");
        let new = browser().get(app.url("/settings")).header("cookie", second).send().await.unwrap();
        assert_eq!(new.status(), StatusCode::OK);
    }

    async fn return_to_is_followed_only_for_local_paths(backend) {
        let app = spawn_app(&backend).await;
        app.signed_in("gil@example.com").await;
        for (given, expected) in [("/settings", "/settings"), ("https://evil.example/", "/"), ("//evil.example", "/")] {
            let client = browser();
            let page = app
                .submit(&client, "/login", "/login", &[("email", "gil@example.com"), ("password", "correct horse battery"), ("return_to", given)])
                .await;
            assert_eq!(page.status, StatusCode::SEE_OTHER);
            assert_eq!(page.location(), expected, "return_to {given}");
        }
    }

    async fn sign_in_is_rate_limited_with_retry_after(backend) {
        let app = spawn_app_with(&backend, |s| s.login_rate_per_minute = Some(3)).await;
        let client = browser();
        for _ in 0..3 {
            let page = app.sign_in(&client, "hal@example.com", "wrong password").await;
            assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        }
        let page = app.sign_in(&client, "hal@example.com", "wrong password").await;
        assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = page.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        assert!(page.body.contains("Too many attempts"));
    }

    async fn rate_limits_can_be_switched_off(backend) {
        let app = spawn_app_with(&backend, |s| {
            s.login_rate_per_minute = Some(1);
            s.rate_limits = Some("off".into());
        })
        .await;
        let client = browser();
        for _ in 0..4 {
            let page = app.sign_in(&client, "ida@example.com", "wrong password").await;
            assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        }
    }

    async fn closed_registration_refuses_sign_up(backend) {
        let app = spawn_app_with(&backend, |s| s.registration = Some("closed".into())).await;
        let client = browser();
        let page = app.get(&client, "/signup").await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        assert!(page.body.contains("Sign-up is closed"));
        let csrf = app.get(&client, "/login").await.csrf();
        let post = client
            .post(app.url("/signup"))
            .form(&[("csrf", csrf.as_str()), ("email", "joe@example.com"), ("password", "correct horse battery")])
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), StatusCode::FORBIDDEN);
        assert!(app.store.list_users().await.unwrap().is_empty());
        assert!(!app.get(&client, "/login").await.body.contains("href=\"/signup"));
    }
}
