//! Store queries that the pages do not reach on their own, on both backends.

use latchkey::domain::user::{Profile, TrustLevel};
use latchkey::store::{AuditEvent, AuditKind, NewUser, now};
use serde_json::json;

use crate::helpers::*;
use crate::on_both_backends;

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: email.into(),
        name: "N".into(),
        password_hash: None,
        admin: false,
    }
}

on_both_backends! {
    async fn users_round_trip_through_every_query(backend) {
        let app = spawn_app(&backend).await;
        let s = &app.store;
        let t = now();
        let a = s.create_user(new_user("Mixed@Case.example"), t).await.unwrap();
        assert_eq!(a.email, "Mixed@Case.example");
        assert_eq!(a.trust_level, TrustLevel::Blue);
        assert_eq!(a.timezone, "UTC");
        assert!(matches!(
            s.create_user(new_user("mixed@case.EXAMPLE"), t).await,
            Err(latchkey::store::CreateUserError::EmailTaken)
        ));
        assert_eq!(s.user_by_email("MIXED@case.example").await.unwrap().unwrap().id, a.id);
        assert_eq!(s.user_by_id(&a.id).await.unwrap().unwrap().email, a.email);
        assert!(s.user_by_id("nope").await.unwrap().is_none());

        assert!(!s.admin_exists().await.unwrap());
        assert!(s.set_admin(&a.id, true, t).await.unwrap());
        assert!(s.admin_exists().await.unwrap());
        assert!(!s.set_admin("missing", true, t).await.unwrap());
        assert!(s.set_trust_level(&a.id, TrustLevel::Yellow, t).await.unwrap());

        let profile = Profile {
            name: "Имя".into(),
            given_name: "G".into(),
            family_name: "F".into(),
            display_name: "D".into(),
            slack_id: "S".into(),
            github_username: "gh".into(),
            timezone: "Asia/Tokyo".into(),
        };
        s.update_profile(&a.id, &profile, t + 5).await.unwrap();
        s.set_password_hash(&a.id, "$argon2id$fake", t + 5).await.unwrap();
        let back = s.user_by_id(&a.id).await.unwrap().unwrap();
        assert_eq!((back.name.as_str(), back.timezone.as_str(), back.updated_at), ("Имя", "Asia/Tokyo", t + 5));
        assert_eq!(back.trust_level, TrustLevel::Yellow);
        assert!(back.admin);
        assert_eq!(s.password_hash(&a.id).await.unwrap().as_deref(), Some("$argon2id$fake"));

        s.create_user(new_user("second@example.com"), t + 1).await.unwrap();
        let all = s.list_users().await.unwrap();
        assert_eq!(all.iter().map(|u| u.email.as_str()).collect::<Vec<_>>(), ["Mixed@Case.example", "second@example.com"]);
    }

    async fn sessions_expire_and_are_purged(backend) {
        let app = spawn_app(&backend).await;
        let s = &app.store;
        let t = now();
        let user = s.create_user(new_user("ses@example.com"), t).await.unwrap();
        let live = s.create_session(&user.id, t, 3600, "127.0.0.1", "ua").await.unwrap();
        let old = s.create_session(&user.id, t - 7200, 3600, "127.0.0.1", &"u".repeat(5000)).await.unwrap();
        assert_eq!(s.session(live.expose(), t).await.unwrap().unwrap().user.id, user.id);
        assert!(s.session(old.expose(), t).await.unwrap().is_none(), "expired");
        assert!(s.session("not a session", t).await.unwrap().is_none());
        assert_eq!(s.purge_expired_sessions(t).await.unwrap(), 1);
        let kept = s.session(live.expose(), t).await.unwrap().unwrap();
        assert_eq!(s.delete_other_sessions(&user.id, &kept.id_hash).await.unwrap(), 0);
        s.delete_session(&kept.id_hash).await.unwrap();
        assert!(s.session(live.expose(), t).await.unwrap().is_none());
    }

    async fn audit_events_are_recorded_newest_first(backend) {
        let app = spawn_app(&backend).await;
        let s = &app.store;
        let t = now();
        s.audit(AuditEvent::new(AuditKind::SignIn, "a@example.com"), t).await.unwrap();
        s.audit(AuditEvent::new(AuditKind::SignInFailed, "b@example.com").details(json!({"why": "password"})), t + 1).await.unwrap();
        let events = s.recent_audit_events(10).await.unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].kind, "sign_in_failed");
        assert_eq!(events[0].subject, "b@example.com");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&events[0].details).unwrap()["why"], "password");
        assert_eq!(events[1].kind, "sign_in");
        assert_eq!(s.recent_audit_events(1).await.unwrap().len(), 1);
    }

    async fn migrations_can_run_again(backend) {
        let app = spawn_app(&backend).await;
        app.store.migrate().await.unwrap();
        app.store.migrate().await.unwrap();
        assert!(app.store.ping().await);
    }
}

on_both_backends! {
    async fn a_failing_insert_fails_alone_among_concurrent_ones(backend) {
        // On PostgreSQL concurrent one-row inserts share statements; a row that breaks a
        // constraint must fail its own request only.
        use latchkey::domain::scope::{KNOWN, Scopes};
        use latchkey::store::tokens::{Binding, Issue};
        let app = spawn_app(&backend).await;
        let s = std::sync::Arc::new(app.store.clone());
        let stored = stored_confidential_app(&s, "owner@example.com").await;
        let mut tasks = Vec::new();
        for i in 0..64 {
            let (s, app_id) = (s.clone(), if i % 8 == 3 { "no-such-app".to_owned() } else { stored.id.clone() });
            tasks.push(tokio::spawn(async move {
                let scopes = Scopes::parse("read", &KNOWN).unwrap();
                let issue = Issue { app_id: &app_id, user_id: None, grant_id: None, scopes: &scopes, access_ttl: 3600, refresh_ttl: None, binding: &Binding::default() };
                let issued = s.issue_tokens(&issue, now()).await;
                (app_id, issued)
            }));
        }
        let (mut issued, mut refused) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                (app_id, Ok(tokens)) => {
                    assert_eq!(app_id, stored.id);
                    let info = s.token_info(&tokens.access, now()).await.unwrap().expect("committed");
                    assert!(info.active);
                    issued += 1;
                }
                (app_id, Err(_)) => {
                    assert_eq!(app_id, "no-such-app");
                    refused += 1;
                }
            }
        }
        assert_eq!((issued, refused), (56, 8));
    }
}
