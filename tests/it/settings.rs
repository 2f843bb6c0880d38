//! `/settings`: profile and password.

use reqwest::StatusCode;

use crate::helpers::*;
use crate::on_both_backends;

on_both_backends! {
    async fn settings_need_a_session(backend) {
        let app = spawn_app(&backend).await;
        let page = app.get(&browser(), "/settings").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(page.location(), "/login?return_to=%2Fsettings");
    }

    async fn profile_fields_are_saved(backend) {
        let app = spawn_app(&backend).await;
        let client = app.signed_in("kim@example.com").await;
        let fields = [
            ("name", "Kim Lee"),
            ("given_name", "Kim"),
            ("family_name", "Lee"),
            ("display_name", "kimmy"),
            ("slack_id", "U012345"),
            ("github_username", "kimlee"),
            ("timezone", "Europe/Moscow"),
        ];
        let page = app.submit(&client, "/settings", "/settings/profile", &fields).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(page.location(), "/settings?saved=profile");

        let user = app.store.user_by_email("kim@example.com").await.unwrap().unwrap();
        assert_eq!(
            (user.name.as_str(), user.given_name.as_str(), user.family_name.as_str(), user.display_name.as_str()),
            ("Kim Lee", "Kim", "Lee", "kimmy")
        );
        assert_eq!((user.slack_id.as_str(), user.github_username.as_str(), user.timezone.as_str()), ("U012345", "kimlee", "Europe/Moscow"));

        let shown = app.get(&client, "/settings?saved=profile").await;
        assert!(shown.body.contains("Your profile was saved."));
        assert!(shown.body.contains("value=\"U012345\""));
    }

    async fn a_bad_timezone_is_shown_beside_its_field(backend) {
        let app = spawn_app(&backend).await;
        let client = app.signed_in("lou@example.com").await;
        let page = app
            .submit(
                &client,
                "/settings",
                "/settings/profile",
                &[
                    ("name", "Lou Typed"),
                    ("given_name", ""),
                    ("family_name", ""),
                    ("display_name", ""),
                    ("slack_id", ""),
                    ("github_username", ""),
                    ("timezone", "../../etc"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.body.contains("Use a timezone name such as UTC"));
        assert!(page.body.contains("value=\"Lou Typed\""), "typed values kept");
        let user = app.store.user_by_email("lou@example.com").await.unwrap().unwrap();
        assert_eq!(user.timezone, "UTC", "nothing saved");
    }

    async fn changing_the_password_needs_the_current_one(backend) {
        let app = spawn_app(&backend).await;
        let client = app.signed_in("max@example.com").await;
        let other_device = browser();
        app.sign_in(&other_device, "max@example.com", "correct horse battery").await;

        let wrong = app
            .submit(&client, "/settings", "/settings/password", &[("current_password", "nope"), ("new_password", "brand new secret")])
            .await;
        assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(wrong.body.contains("The current password is not correct."));

        let ok = app
            .submit(
                &client,
                "/settings",
                "/settings/password",
                &[("current_password", "correct horse battery"), ("new_password", "brand new secret")],
            )
            .await;
        assert_eq!(ok.status, StatusCode::SEE_OTHER);
        assert_eq!(app.get(&client, "/settings").await.status, StatusCode::OK, "this session stays");
        assert_eq!(app.get(&other_device, "/settings").await.status, StatusCode::SEE_OTHER, "other sessions end");

        let fresh = browser();
        assert_eq!(app.sign_in(&fresh, "max@example.com", "correct horse battery").await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.sign_in(&fresh, "max@example.com", "brand new secret").await.status, StatusCode::SEE_OTHER);
        assert!(app.audit_kinds().await.contains(&"password_changed".to_owned()));
    }
}
