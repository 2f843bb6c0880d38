//! The attack suite: each test tries one family of attacks on a serious identity provider and
//! asserts the refusal. See also `malformed.rs` (bad input of every kind), `concurrency.rs`
//! (racing redemptions), `limits.rs` (brute force) and `pages.rs` (security headers).

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::oauth_helpers::*;
use crate::on_both_backends;
use crate::process::*;

const ME: &str = "/api/v1/authenticated/me";

/// Tokens of a user who authorized `client` for `scope`: (access, refresh, id token or "").
async fn tokens_for(
    app: &TestApp,
    client: &RegisteredApp,
    email: &str,
    scope: &str,
) -> (String, String, String) {
    let browser = app.signed_in(email).await;
    let (code, verifier) = get_code(app, &browser, client, scope).await;
    let (status, t) = exchange(app, client, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let s = |k: &str| t[k].as_str().unwrap_or("").to_owned();
    (s("access_token"), s("refresh_token"), s("id_token"))
}

async fn status_of(app: &TestApp, method: Method, path: &str, token: &str) -> StatusCode {
    app.api(method, path, token, None).await.0
}

on_both_backends! {
    async fn open_redirects_through_redirect_uri_tricks_are_refused(backend) {
        let app = spawn_app(&backend).await;
        let client = register_with(&app, true, "profile", &["https://client.example/cb", "http://127.0.0.1/cb"]).await;
        let browser = app.signed_in("redirect@example.com").await;
        let (_, challenge) = pkce_pair();
        let tricks = [
            "https://client.example/cb/extra",            // prefix match
            "https://client.example/c",                   // truncated
            "https://client.example/cb/",                 // trailing slash
            "https://client.example.evil.example/cb",     // suffix host
            "https://evil.example/https://client.example/cb",
            "https://client.example/cb/../evil",          // path traversal
            "https://client.example/cb/%2e%2e/evil",      // encoded traversal
            "https://client.example/%63b",                // encoded character
            "https://client.example@evil.example/cb",     // userinfo
            "https://evil.example@client.example/cb",
            "https://client.example\\@evil.example/cb",  // backslash
            "https://client.example:8443/cb",             // other port, not loopback
            "http://client.example/cb",                   // downgraded scheme
            "https://CLIENT.EXAMPLE/cb",                  // not byte-for-byte equal
            "https://client.example/cb#fragment",         // fragment
            "https://client.example/cb?next=https://evil.example",
            "http://localhost/cb",                        // loopback by another name
            "http://127.0.0.1.evil.example/cb",
            "http://127.0.0.1:8080/other",                // loopback, other path
            "//evil.example/cb",
            "javascript:alert(1)",
        ];
        for uri in tricks {
            let q = query(&[("response_type", "code"), ("client_id", &client.client_id), ("redirect_uri", uri), ("state", "s"), ("code_challenge", &challenge), ("code_challenge_method", "S256")]);
            let page = app.get(&browser, &format!("/oauth/authorize?{q}")).await;
            assert_eq!(page.status, StatusCode::BAD_REQUEST, "{uri}");
            assert!(page.headers.get("location").is_none(), "redirected to {uri}");
        }
        // The consent form's redirect URI cannot be swapped either.
        let q = query(&[("response_type", "code"), ("client_id", &client.client_id), ("redirect_uri", "https://client.example/cb"), ("state", "s"), ("code_challenge", &challenge), ("code_challenge_method", "S256")]);
        let page = app.get(&browser, &format!("/oauth/authorize?{q}")).await;
        let mut form = consent_fields(&page.body);
        for (k, v) in form.iter_mut() {
            if k == "redirect_uri" {
                *v = "https://evil.example/cb".into();
            }
        }
        form.push(("decision".into(), "allow".into()));
        let posted = Page::from(browser.post(app.url("/oauth/authorize")).form(&form).send().await.unwrap()).await;
        assert!(!posted.headers.get("location").is_some_and(|l| l.to_str().unwrap().contains("evil")), "{:?}", posted.headers);
        assert_ne!(posted.status, StatusCode::SEE_OTHER);
        // Loopback redirect URIs may use any port (RFC 8252 §7.3), and only that.
        let q = query(&[("response_type", "code"), ("client_id", &client.client_id), ("redirect_uri", "http://127.0.0.1:49152/cb"), ("state", "s"), ("code_challenge", &challenge), ("code_challenge_method", "S256")]);
        assert_eq!(app.get(&browser, &format!("/oauth/authorize?{q}")).await.status, StatusCode::OK);
    }

    async fn authorization_codes_cannot_be_injected(backend) {
        let app = spawn_app(&backend).await;
        let a = register(&app, true, "profile").await;
        let b = register(&app, true, "profile").await;
        let victim = app.signed_in("victim@example.com").await;

        // A code for app A presented by app B.
        let (code, verifier) = get_code(&app, &victim, &a, "profile").await;
        let (status, e) = exchange(&app, &b, &code, &verifier).await;
        assert_eq!((status, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));

        // A stolen code with the attacker's own verifier (PKCE binds the code to the real client).
        let (code, _) = get_code(&app, &victim, &a, "profile").await;
        let (attacker_verifier, _) = pkce_pair();
        let (status, e) = exchange(&app, &a, &code, &attacker_verifier).await;
        assert_eq!((status, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));

        // A code with another redirect URI than the one it was issued for.
        let (code, verifier) = get_code(&app, &victim, &a, "profile").await;
        let (status, e, _) = token_request(&app, &a, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "https://client.example/other"), ("code_verifier", &verifier)]).await;
        assert_eq!((status, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    }

    async fn pkce_cannot_be_downgraded(backend) {
        let app = spawn_app(&backend).await;
        let confidential = register(&app, true, "profile").await;
        let browser = app.signed_in("pkce@example.com").await;

        // Issued with a challenge, redeemed without a verifier.
        let (code, _) = get_code(&app, &browser, &confidential, "profile").await;
        let (status, e, _) = token_request(&app, &confidential, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &confidential.redirect_uri)]).await;
        assert_eq!((status, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));

        // Issued without a challenge (a confidential app may), redeemed with a verifier: refused
        // (RFC 9700 §4.8.2), so an attacker cannot pass off a PKCE-less code as protected.
        let page = authorize(&app, &browser, &[("response_type", "code"), ("client_id", &confidential.client_id), ("state", "s")], "allow").await;
        let code = location_params(&page)["code"].clone();
        let (verifier, _) = pkce_pair();
        let (status, e, _) = token_request(&app, &confidential, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &confidential.redirect_uri), ("code_verifier", &verifier)]).await;
        assert_eq!((status, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));

        // `plain` is not offered; a public app cannot skip PKCE.
        let public = register(&app, false, "profile").await;
        for params in [
            vec![("response_type", "code"), ("client_id", confidential.client_id.as_str()), ("code_challenge", "x".repeat(43).leak() as &str), ("code_challenge_method", "plain"), ("state", "s")],
            vec![("response_type", "code"), ("client_id", public.client_id.as_str()), ("state", "s")],
        ] {
            let page = app.get(&browser, &format!("/oauth/authorize?{}", query(&params))).await;
            assert_eq!(location_params(&page)["error"], "invalid_request", "{params:?}");
        }
    }

    async fn every_authorization_response_names_its_issuer(backend) {
        // Mix-up defence (RFC 9207): success and error responses both carry `iss`.
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "profile").await;
        let browser = app.signed_in("mixup@example.com").await;
        let (_, challenge) = pkce_pair();
        let base = [("response_type", "code"), ("client_id", client.client_id.as_str()), ("state", "s"), ("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")];
        for decision in ["allow", "deny"] {
            let page = authorize(&app, &browser, &base, decision).await;
            assert_eq!(location_params(&page)["iss"], app.base, "{decision}");
        }
        let meta: Value = reqwest::get(app.url("/.well-known/oauth-authorization-server")).await.unwrap().json().await.unwrap();
        assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
        assert_eq!(meta["issuer"], app.base);
    }

    async fn every_form_refuses_a_missing_or_forged_csrf_token(backend) {
        let app = spawn_app(&backend).await;
        let browser = app.signed_in("csrf@example.com").await;
        let user = app.store.user_by_email("csrf@example.com").await.unwrap().unwrap();
        app.store.set_admin(&user.id, true, latchkey::store::now()).await.unwrap();
        let owned = register_for(&app, &user.id, true, "profile", &["https://client.example/cb"]).await;
        let (_, challenge) = pkce_pair();
        let consent = app.get(&browser, &format!("/oauth/authorize?{}", query(&[("response_type", "code"), ("client_id", &owned.client_id), ("state", "s"), ("code_challenge", &challenge), ("code_challenge_method", "S256")]))).await;
        let mut decision = consent_fields(&consent.body);
        decision.retain(|(k, _)| k != "csrf");
        decision.push(("decision".into(), "allow".into()));
        let id = owned.id.as_str();
        let mut forms: Vec<(String, Vec<(String, String)>)> = vec![("/oauth/authorize".into(), decision)];
        let plain = |fields: &[(&str, &str)]| fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        for (path, fields) in [
            ("/login".to_owned(), plain(&[("email", "csrf@example.com"), ("password", "correct horse battery")])),
            ("/signup".to_owned(), plain(&[("email", "new@example.com"), ("name", "N"), ("password", "correct horse battery")])),
            ("/logout".to_owned(), vec![]),
            ("/setup".to_owned(), plain(&[("email", "root@example.com"), ("password", "correct horse battery")])),
            ("/oauth/applications".to_owned(), plain(&[("name", "Forged"), ("homepage_url", "https://f.example"), ("redirect_uris", "https://f.example/cb"), ("scopes", "profile")])),
            (format!("/oauth/applications/{id}"), plain(&[("name", "Renamed"), ("redirect_uris", "https://evil.example/cb")])),
            (format!("/oauth/applications/{id}/secret"), vec![]),
            (format!("/oauth/applications/{id}/revoke_tokens"), vec![]),
            (format!("/oauth/applications/{id}/delete"), vec![]),
            ("/settings/profile".to_owned(), plain(&[("name", "Forged")])),
            ("/settings/password".to_owned(), plain(&[("current_password", "correct horse battery"), ("new_password", "attacker password 1")])),
            ("/settings/tokens".to_owned(), plain(&[("name", "forged"), ("scopes", "apps")])),
            ("/settings/api_key".to_owned(), vec![]),
            ("/settings/projects".to_owned(), plain(&[("project", "p"), ("archived", "1")])),
            ("/settings/tokens/x/revoke".to_owned(), vec![]),
            ("/oauth/authorized_applications/x/revoke".to_owned(), vec![]),
            (format!("/admin/apps/{id}/verify"), plain(&[("verified", "1")])),
            (format!("/admin/users/{}", user.id), plain(&[("admin", "0")])),
        ] {
            forms.push((path, fields));
        }
        let api_key = app.store.api_key(&user.id).await.unwrap();
        for (path, fields) in forms {
            for csrf in [None, Some("forged"), Some("")] {
                let mut fields = fields.clone();
                if let Some(c) = csrf {
                    fields.push(("csrf".into(), c.into()));
                }
                let page = Page::from(browser.post(app.url(&path)).form(&fields).send().await.unwrap()).await;
                assert_eq!(page.status, StatusCode::FORBIDDEN, "{path} with csrf {csrf:?}");
                assert!(page.body.contains("This form has expired"), "{path}");
            }
        }
        // Nothing changed: still signed in, same app, same key, no new app or token, not verified.
        assert_eq!(app.get(&browser, "/settings").await.status, StatusCode::OK);
        let after = app.store.app_by_client_id(&owned.client_id).await.unwrap().expect("not deleted");
        assert_eq!(after.name, "Test Client");
        assert!(!after.verified);
        assert!(app.store.user_by_email("new@example.com").await.unwrap().is_none());
        assert_eq!(app.store.api_key(&user.id).await.unwrap(), api_key);
        assert_eq!(app.store.user_by_id(&user.id).await.unwrap().unwrap().name, "Test User");
        assert_eq!(app.sign_in(&crate::helpers::browser(), "csrf@example.com", "correct horse battery").await.status, StatusCode::SEE_OTHER);
    }

    async fn the_consent_page_cannot_be_framed(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "profile").await;
        let browser = app.signed_in("frame@example.com").await;
        let (_, challenge) = pkce_pair();
        let page = app.get(&browser, &format!("/oauth/authorize?{}", query(&[("response_type", "code"), ("client_id", &client.client_id), ("code_challenge", &challenge), ("code_challenge_method", "S256")]))).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.headers["x-frame-options"], "DENY");
        let csp = page.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    }

    async fn a_planted_session_id_is_never_adopted(backend) {
        // Session fixation: a cookie set by an attacker before sign-in is not the session after it.
        let app = spawn_app(&backend).await;
        app.signed_in("fix@example.com").await;
        let planted = "attacker-chosen-session-id-0123456789";
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let login = app.get(&browser(), "/login").await;
        let csrf_cookie = login.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned()).collect::<Vec<_>>().join("; ");
        let response = client
            .post(app.url("/login"))
            .header("cookie", format!("{csrf_cookie}; lk_session={planted}"))
            .form(&[("csrf", login.csrf().as_str()), ("email", "fix@example.com"), ("password", "correct horse battery")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let issued: Vec<String> = response.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        let session = issued.iter().find(|c| c.starts_with("lk_session=")).expect("a new session cookie");
        assert!(!session.contains(planted));
        let with_planted = client.get(app.url("/settings")).header("cookie", format!("lk_session={planted}")).send().await.unwrap();
        assert_eq!(with_planted.status(), StatusCode::SEE_OTHER, "the planted id is not signed in");
    }

    async fn sign_in_does_not_tell_unknown_emails_from_wrong_passwords(backend) {
        let app = spawn_app_with(&backend, |s| s.rate_limits = Some("off".into())).await;
        app.signed_in("known@example.com").await;
        let mut timings = [Vec::new(), Vec::new()];
        let mut bodies = Vec::new();
        for round in 0..12 {
            let (i, email) = if round % 2 == 0 { (0, "known@example.com") } else { (1, "nobody@example.com") };
            let started = Instant::now();
            let page = app.sign_in(&browser(), email, "wrong password here").await;
            timings[i].push(started.elapsed());
            assert_eq!(page.status, StatusCode::UNAUTHORIZED);
            let csrf = page.csrf();
            bodies.push(page.body.replace(email, "EMAIL").replace(&csrf, "CSRF"));
        }
        assert!(bodies.windows(2).all(|w| w[0] == w[1]), "the answers differ");
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2].as_secs_f64()
        };
        let (known, unknown) = (median(&mut timings[0]), median(&mut timings[1]));
        let ratio = known.max(unknown) / known.min(unknown);
        assert!(ratio < 2.0, "wrong password {known:.3}s vs unknown email {unknown:.3}s");
    }

    async fn tokens_only_work_where_they_belong(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "openid profile read").await;
        let (access, refresh, _) = tokens_for(&app, &client, "subst@example.com", "openid profile read").await;
        let (user, pat) = app.user_with_pat("pat-subst@example.com", "apps read profile", false).await;
        let api_key = app.store.api_key(&user.id).await.unwrap();
        let (_, cc, _) = token_request(&app, &client, &[("grant_type", "client_credentials"), ("scope", "read")]).await;
        let cc = cc["access_token"].as_str().unwrap().to_owned();

        // A client_credentials token is about no user.
        assert_eq!(status_of(&app, Method::GET, ME, &cc).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status_of(&app, Method::GET, "/oauth/userinfo", &cc).await, StatusCode::UNAUTHORIZED);
        // A PAT is not an OAuth token: userinfo, introspection and refresh do not know it.
        assert_eq!(status_of(&app, Method::GET, "/oauth/userinfo", &pat).await, StatusCode::UNAUTHORIZED);
        assert_eq!(introspect(&app, &client, &pat).await["active"], false);
        let (status, e, _) = token_request(&app, &client, &[("grant_type", "refresh_token"), ("refresh_token", &pat)]).await;
        assert_eq!((status, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
        // An OAuth access token cannot manage apps; a refresh token is not an access token.
        assert_eq!(status_of(&app, Method::GET, "/oauth/clients", &access).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status_of(&app, Method::GET, ME, &refresh).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status_of(&app, Method::GET, "/oauth/userinfo", &refresh).await, StatusCode::UNAUTHORIZED);
        let (status, _, _) = token_request(&app, &client, &[("grant_type", "refresh_token"), ("refresh_token", &access)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // The WakaTime API key is for ingestion only, and tokens are not API keys.
        assert_eq!(status_of(&app, Method::GET, ME, &api_key).await, StatusCode::UNAUTHORIZED);
        let sent = reqwest::Client::new().post(app.url("/api/v1/users/current/heartbeats")).bearer_auth(&access).json(&json!({"time": 1.7e9, "entity": "x"})).send().await.unwrap();
        assert_eq!(sent.status(), StatusCode::UNAUTHORIZED);
        // A token of one app cannot be revoked or introspected as another's.
        let other = register(&app, true, "profile").await;
        let r = reqwest::Client::new().post(app.url("/oauth/revoke")).basic_auth(&other.client_id, other.secret.as_ref()).form(&[("token", access.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(status_of(&app, Method::GET, ME, &access).await, StatusCode::OK, "another app revoked this token");
    }

    async fn refresh_cannot_widen_the_scope(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "profile read").await;
        let (_, refresh, _) = tokens_for(&app, &client, "widen@example.com", "profile").await;
        for scope in ["profile read", "read", "profile email", "openid"] {
            let (status, e, _) = token_request(&app, &client, &[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("scope", scope)]).await;
            assert_eq!((status, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")), "{scope}");
        }
        let (status, t, _) = token_request(&app, &client, &[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await;
        assert_eq!(status, StatusCode::OK, "{t}");
        assert_eq!(t["scope"], "profile");
    }

    async fn revoked_expired_and_orphaned_tokens_are_refused_everywhere(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "openid profile read").await;
        let scope = "openid profile read";
        let check_dead = |access: String, refresh: String, why: &'static str| {
            let app = &app;
            let client = &client;
            async move {
                assert_eq!(status_of(app, Method::GET, ME, &access).await, StatusCode::UNAUTHORIZED, "{why}: resource API");
                assert_eq!(status_of(app, Method::GET, "/oauth/userinfo", &access).await, StatusCode::UNAUTHORIZED, "{why}: userinfo");
                if why != "app deleted" {
                    assert_eq!(introspect(app, client, &access).await["active"], false, "{why}: introspection");
                }
                let (status, e, _) = token_request(app, client, &[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await;
                assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED, "{why}: refresh {status} {e}");
            }
        };

        // Revoked (the refresh token, which takes its access tokens along).
        let (access, refresh, _) = tokens_for(&app, &client, "rev@example.com", scope).await;
        let r = reqwest::Client::new().post(app.url("/oauth/revoke")).basic_auth(&client.client_id, client.secret.as_ref()).form(&[("token", refresh.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        check_dead(access, refresh, "revoked").await;

        // Expired.
        let (access, refresh, _) = tokens_for(&app, &client, "exp@example.com", scope).await;
        for token in [&access, &refresh] {
            sqlx::query("UPDATE tokens SET expires_at = $1 WHERE token_hash = $2")
                .bind(latchkey::store::now() - 1)
                .bind(latchkey::domain::secret::sha256_hex(token.as_bytes()))
                .execute(app.store.pool())
                .await
                .unwrap();
        }
        check_dead(access, refresh, "expired").await;

        // The user was disabled.
        let (access, refresh, _) = tokens_for(&app, &client, "off@example.com", scope).await;
        let user = app.store.user_by_email("off@example.com").await.unwrap().unwrap();
        app.store.set_disabled(&user.id, true, latchkey::store::now()).await.unwrap();
        check_dead(access, refresh, "user disabled").await;

        // The app was deleted.
        let (access, refresh, _) = tokens_for(&app, &client, "gone@example.com", scope).await;
        assert!(app.store.delete_app(&client.id).await.unwrap());
        check_dead(access, refresh, "app deleted").await;
    }

    async fn a_code_outlives_no_withdrawn_consent(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "openid read").await;
        let browser = app.signed_in("race@example.com").await;
        let (code, verifier) = get_code(&app, &browser, &client, "openid read").await;
        assert_eq!(exchange(&app, &client, &code, &verifier).await.0, StatusCode::OK);
        // Consent is remembered now: this code is issued under the existing grant.
        let (code, verifier) = get_code(&app, &browser, &client, "openid read").await;
        // The user withdraws consent while the code is on its way to the app. Only the grant
        // goes here, as when the withdrawal lands between the code's issue and its insert.
        let user = app.store.user_by_email("race@example.com").await.unwrap().unwrap();
        let gone = sqlx::query("DELETE FROM grants WHERE user_id = $1")
            .bind(&user.id)
            .execute(app.store.pool())
            .await
            .unwrap();
        assert_eq!(gone.rows_affected(), 1);
        let (status, e) = exchange(&app, &client, &code, &verifier).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
        assert_eq!(e["error"], "invalid_grant");
    }

    async fn another_apps_refresh_token_neither_rotates_nor_revokes(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "profile").await;
        let other = register(&app, true, "profile").await;
        let (_, refresh, _) = tokens_for(&app, &client, "thief@example.com", "profile").await;
        let (status, body, _) = token_request(&app, &other, &[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
        // Still unrotated: its own app rotates it.
        let (status, rotated, _) = token_request(&app, &client, &[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await;
        assert_eq!(status, StatusCode::OK, "{rotated}");
        // The retired token shown by another app is not reuse: the new pair stays good.
        let (status, body, _) = token_request(&app, &other, &[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
        let access = rotated["access_token"].as_str().unwrap();
        assert_eq!(status_of(&app, Method::GET, ME, access).await, StatusCode::OK);
        let next = rotated["refresh_token"].as_str().unwrap();
        let (status, _, _) = token_request(&app, &client, &[("grant_type", "refresh_token"), ("refresh_token", next)]).await;
        assert_eq!(status, StatusCode::OK);
    }
}

/// Secrets never reach the log, even at debug level: a real server process is driven through
/// every flow that handles a secret, and its whole output is searched for each of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_log() {
    let db = TestDb::new(&Backend::Sqlite).await;
    let mut server = Server::start(
        &db.url,
        &[("RUST_LOG", "debug"), ("LATCHKEY_RATE_LIMITS", "off")],
    )
    .await;
    server.wait_for("latchkey is listening").await;
    let app = attach(server.url(""), &db.url).await;
    let mut secrets: Vec<String> = Vec::new();

    let password = "a-password-only-the-user-knows-31337";
    let browser = browser();
    let page = app.sign_up(&browser, "logs@example.com", password).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    secrets.push(password.into());
    secrets.push(app.get(&browser, "/settings").await.csrf());
    assert_eq!(
        app.sign_in(
            &crate::helpers::browser(),
            "logs@example.com",
            "a-wrong-password-guess-31337"
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    secrets.push("a-wrong-password-guess-31337".into());

    let (user, pat) = app
        .user_with_pat("dev-logs@example.com", "apps", false)
        .await;
    secrets.push(pat.clone());
    let (status, created) = app.api(Method::POST, "/oauth/clients", &pat, Some(json!({"name": "Logged", "redirect_uris": ["https://l.example/cb"], "scopes": "openid profile read offline_access"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let client = RegisteredApp {
        id: created["id"].as_str().unwrap_or_default().to_owned(),
        client_id: created["client_id"].as_str().unwrap().to_owned(),
        secret: created["client_secret"].as_str().map(str::to_owned),
        redirect_uri: "https://l.example/cb".into(),
    };
    secrets.push(client.secret.clone().unwrap());

    let (code, verifier) = get_code(&app, &browser, &client, "openid profile read").await;
    secrets.extend([code.clone(), verifier.clone()]);
    let (_, tokens) = exchange(&app, &client, &code, &verifier).await;
    for k in ["access_token", "refresh_token", "id_token"] {
        secrets.push(tokens[k].as_str().unwrap().to_owned());
    }
    let (_, refreshed, _) = token_request(
        &app,
        &client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    secrets.push(refreshed["access_token"].as_str().unwrap().to_owned());
    secrets.push(refreshed["refresh_token"].as_str().unwrap().to_owned());
    let wrong = RegisteredApp {
        secret: Some("lk_cs_not-the-secret-31337".into()),
        ..client
    };
    assert_eq!(
        token_request(&app, &wrong, &[("grant_type", "client_credentials")])
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    secrets.push("lk_cs_not-the-secret-31337".into());
    assert_eq!(
        status_of(
            &app,
            Method::GET,
            "/oauth/userinfo",
            refreshed["access_token"].as_str().unwrap()
        )
        .await,
        StatusCode::OK
    );

    let key = app.store.api_key(&user.id).await.unwrap();
    secrets.push(key.clone());
    let sent = reqwest::Client::new()
        .post(app.url(&format!("/api/v1/users/current/heartbeats?api_key={key}")))
        .json(&json!({"time": 1.7e9, "entity": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::CREATED);
    let leaked = reqwest::Client::new()
        .post(app.url("/oauth/leaked"))
        .json(&json!([tokens["access_token"]]))
        .send()
        .await
        .unwrap();
    assert_eq!(leaked.status(), StatusCode::OK);

    server.kill().await;
    let log = server.log().join("\n");
    assert!(
        log.contains("DEBUG") && log.contains("/oauth/token"),
        "the debug log was captured"
    );
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a secret ({}…) is in the log",
            &secret[..secret.len().min(8)]
        );
    }
}
