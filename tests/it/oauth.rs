//! The authorization server end to end: discovery, authorize and consent, tokens, refresh
//! rotation, revocation, introspection, userinfo, and the exact error for each misuse.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;
use crate::oauth_helpers::*;
use crate::on_both_backends;

on_both_backends! {
    async fn discovery_documents_list_every_endpoint(backend) {
        let app = spawn_app(&backend).await;
        for path in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"] {
            let meta: Value = reqwest::get(app.url(path)).await.unwrap().json().await.unwrap();
            assert_eq!(meta["issuer"], app.base.as_str());
            for (key, suffix) in [
                ("authorization_endpoint", "/oauth/authorize"),
                ("token_endpoint", "/oauth/token"),
                ("userinfo_endpoint", "/oauth/userinfo"),
                ("jwks_uri", "/oauth/jwks"),
                ("revocation_endpoint", "/oauth/revoke"),
                ("introspection_endpoint", "/oauth/introspect"),
            ] {
                assert_eq!(meta[key], format!("{}{suffix}", app.base), "{key}");
            }
            assert_eq!(meta["response_types_supported"], serde_json::json!(["code"]));
            assert_eq!(meta["code_challenge_methods_supported"], serde_json::json!(["S256"]));
            assert_eq!(meta["id_token_signing_alg_values_supported"][0], "RS256");
            assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
            let methods = meta["token_endpoint_auth_methods_supported"].as_array().unwrap();
            for m in ["client_secret_basic", "client_secret_post", "none"] {
                assert!(methods.iter().any(|x| x == m), "{m}");
            }
            let scopes = meta["scopes_supported"].as_array().unwrap();
            for s in ["openid", "profile", "email", "read", "project:read", "offline_access"] {
                assert!(scopes.iter().any(|x| x == s), "{s}");
            }
            assert!(meta["claims_supported"].as_array().unwrap().iter().any(|c| c == "at_hash"));
        }
    }

    async fn the_full_code_flow_for_a_confidential_app(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "profile openid email read").await;
        let browser = app.signed_in("ann@example.com").await;
        let user = app.store.user_by_email("ann@example.com").await.unwrap().unwrap();

        // The consent page shows who asks and who is signed in.
        let (_, challenge) = pkce_pair();
        let consent = app
            .get(&browser, &format!("/oauth/authorize?{}", query(&[
                ("response_type", "code"), ("client_id", &client.client_id), ("redirect_uri", &client.redirect_uri),
                ("scope", "openid profile email"), ("state", "s"), ("code_challenge", &challenge), ("code_challenge_method", "S256"),
            ])))
            .await;
        assert_eq!(consent.status, StatusCode::OK);
        assert!(consent.body.contains("Test Client"));
        assert!(consent.body.contains("Olga Owner"), "the owner's name");
        assert!(consent.body.contains("This app has not been verified"));
        assert!(consent.body.contains("Signed in as ann@example.com"));
        assert!(consent.body.contains(">Authorize</button>") && consent.body.contains(">Deny</button>"));
        assert!(consent.body.contains("See your email address"), "scopes described in plain language");
        assert_eq!(consent.headers["x-frame-options"], "DENY");

        let (code, verifier) = get_code(&app, &browser, &client, "openid profile email read").await;
        assert!(code.starts_with("lk_ac_"));
        let (status, tokens, headers) = token_request(
            &app,
            &client,
            &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &client.redirect_uri), ("code_verifier", &verifier)],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(tokens["token_type"], "Bearer");
        assert_eq!(tokens["scope"], "profile read openid email");
        assert!(tokens["access_token"].as_str().unwrap().starts_with("lk_at_"));
        assert!(tokens["refresh_token"].as_str().unwrap().starts_with("lk_rt_"));
        let expires_in = tokens["expires_in"].as_i64().unwrap();
        assert!((3590..=3600).contains(&expires_in), "{expires_in}");
        assert!((tokens["created_at"].as_i64().unwrap() - latchkey::store::now()).abs() < 10);
        assert!(tokens["id_token"].as_str().unwrap().split('.').count() == 3);
        let access = tokens["access_token"].as_str().unwrap();

        let info: Value = reqwest::Client::new().get(app.url("/oauth/userinfo")).bearer_auth(access).send().await.unwrap().json().await.unwrap();
        assert_eq!(info["sub"], user.id.as_str());
        assert_eq!(info["email"], "ann@example.com");
        assert_eq!(info["email_verified"], false);
        assert_eq!(info["name"], "Test User");

        let intro = introspect(&app, &client, access).await;
        assert_eq!(intro["active"], true);
        assert_eq!(intro["sub"], user.id.as_str());
        assert_eq!(intro["username"], "ann@example.com");
        assert_eq!(intro["client_id"], client.client_id.as_str());
        assert_eq!(intro["scope"], "profile read openid email");
        assert_eq!(intro["token_type"], "Bearer");
        assert_eq!(intro["iss"], app.base.as_str());
        assert!(intro["exp"].as_i64().unwrap() > intro["iat"].as_i64().unwrap());
        assert!(app.audit_kinds().await.contains(&"consent".to_owned()));

        // The grant is remembered: a second request skips the consent page.
        let (verifier2, challenge2) = pkce_pair();
        let again = app
            .get(&browser, &format!("/oauth/authorize?{}", query(&[
                ("response_type", "code"), ("client_id", &client.client_id), ("scope", "openid read"),
                ("code_challenge", &challenge2), ("code_challenge_method", "S256"),
            ])))
            .await;
        assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.body);
        let params = location_params(&again);
        assert!(again.location().starts_with("https://client.example/cb?"));
        assert_eq!(params["iss"], app.base);
        // No redirect_uri in the request (one registered), so none at the token endpoint either.
        let (status, _, _) = token_request(&app, &client, &[("grant_type", "authorization_code"), ("code", &params["code"]), ("code_verifier", &verifier2)]).await;
        assert_eq!(status, StatusCode::OK);
    }

    async fn a_public_app_uses_pkce_and_json_bodies(backend) {
        let app = spawn_app(&backend).await;
        let client = register_with(&app, false, "profile read", &["http://127.0.0.1/callback"]).await;
        let browser = app.signed_in("bo@example.com").await;
        let (verifier, challenge) = pkce_pair();
        // Loopback redirect URIs may use any port (RFC 8252 §7.3).
        let redirect = "http://127.0.0.1:49152/callback";
        let page = authorize(
            &app,
            &browser,
            &[("response_type", "code"), ("client_id", &client.client_id), ("redirect_uri", redirect), ("scope", "read"),
              ("code_challenge", &challenge), ("code_challenge_method", "S256")],
            "allow",
        )
        .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert!(page.location().starts_with("http://127.0.0.1:49152/callback?code="));
        let code = location_params(&page)["code"].clone();
        let response = reqwest::Client::new()
            .post(app.url("/oauth/access_token"))
            .json(&serde_json::json!({
                "grant_type": "authorization_code", "client_id": client.client_id, "code": code,
                "redirect_uri": redirect, "code_verifier": verifier,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let tokens: Value = response.json().await.unwrap();
        assert_eq!(tokens["scope"], "read");
        assert!(tokens.get("id_token").is_none(), "no openid, no ID token");

        // Refresh as a public client, with a JSON body; an unrecognized parameter is ignored
        // whatever its JSON type (RFC 6749 §3.2).
        let refreshed: Value = reqwest::Client::new()
            .post(app.url("/oauth/token"))
            .json(&serde_json::json!({"grant_type": "refresh_token", "client_id": client.client_id, "refresh_token": tokens["refresh_token"], "x_extension": {"a": [1]}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(refreshed["access_token"].as_str().unwrap().starts_with("lk_at_"));
    }

    async fn refresh_rotation_with_grace_and_reuse_detection(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "profile read").await;
        let browser = app.signed_in("cy@example.com").await;
        let (code, verifier) = get_code(&app, &browser, &client, "profile read").await;
        let (_, first) = exchange(&app, &client, &code, &verifier).await;
        let rt1 = first["refresh_token"].as_str().unwrap().to_owned();

        let refresh = |rt: String, scope: Option<&'static str>| {
            let app = &app;
            let client = &client;
            async move {
                let mut form = vec![("grant_type", "refresh_token".to_owned()), ("refresh_token", rt)];
                if let Some(s) = scope {
                    form.push(("scope", s.to_owned()));
                }
                let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let (status, body, _) = token_request(app, client, &form).await;
                (status, body)
            }
        };
        let (status, second) = refresh(rt1.clone(), Some("read")).await;
        assert_eq!(status, StatusCode::OK, "{second}");
        assert_eq!(second["scope"], "read", "a narrower scope on refresh");
        let rt2 = second["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(rt2, rt1, "rotation: a new refresh token");
        assert_eq!(introspect(&app, &client, first["access_token"].as_str().unwrap()).await["active"], true);

        // A retry inside the grace window gets the very same pair; nothing is revoked.
        let (status, retry) = refresh(rt1.clone(), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(retry["access_token"], second["access_token"]);
        assert_eq!(retry["refresh_token"], second["refresh_token"]);
        assert_eq!(introspect(&app, &client, second["access_token"].as_str().unwrap()).await["active"], true);

        // Scope escalation on refresh is refused.
        let (status, error) = refresh(rt2.clone(), Some("profile read email")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error["error"], "invalid_scope");

        // After the window, presenting the retired token revokes the whole chain.
        sqlx::query("UPDATE tokens SET rotated_at = rotated_at - 11 WHERE rotated_at IS NOT NULL")
            .execute(app.store.pool())
            .await
            .unwrap();
        let (status, error) = refresh(rt1, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error["error"], "invalid_grant");
        for token in [first["access_token"].as_str().unwrap(), second["access_token"].as_str().unwrap(), &rt2] {
            assert_eq!(introspect(&app, &client, token).await["active"], false, "chain revoked");
        }
        assert!(app.audit_kinds().await.contains(&"refresh_reuse".to_owned()));
    }

    async fn client_secret_post_and_long_lived_tokens(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "profile read").await;
        // A Hackatime-style app with 16-year access tokens.
        sqlx::query("UPDATE apps SET access_token_ttl = $1 WHERE id = $2")
            .bind(16_i64 * 365 * 24 * 3600)
            .bind(&client.id)
            .execute(app.store.pool())
            .await
            .unwrap();
        let browser = app.signed_in("lo@example.com").await;
        let (code, verifier) = get_code(&app, &browser, &client, "read").await;
        let response = reqwest::Client::new()
            .post(app.url("/oauth/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", client.client_id.as_str()),
                ("client_secret", client.secret.as_deref().unwrap()),
                ("code", &code),
                ("redirect_uri", &client.redirect_uri),
                ("code_verifier", &verifier),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let tokens: Value = response.json().await.unwrap();
        assert!(tokens["expires_in"].as_i64().unwrap() > 15 * 365 * 24 * 3600);
        // Basic and a body secret together are refused.
        let both = reqwest::Client::new()
            .post(app.url("/oauth/token"))
            .basic_auth(&client.client_id, client.secret.as_ref())
            .form(&[("grant_type", "client_credentials"), ("client_secret", client.secret.as_deref().unwrap())])
            .send()
            .await
            .unwrap();
        assert_eq!(both.status(), StatusCode::BAD_REQUEST);
        // A confidential app without its secret is not authenticated.
        let bare = reqwest::Client::new()
            .post(app.url("/oauth/token"))
            .form(&[("grant_type", "client_credentials"), ("client_id", client.client_id.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(bare.json::<Value>().await.unwrap()["error"], "invalid_client");
    }

    async fn code_reuse_fails_and_revokes_the_first_tokens(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "profile").await;
        let browser = app.signed_in("di@example.com").await;
        let (code, verifier) = get_code(&app, &browser, &client, "profile").await;
        let (status, first) = exchange(&app, &client, &code, &verifier).await;
        assert_eq!(status, StatusCode::OK);
        let (status, error) = exchange(&app, &client, &code, &verifier).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error["error"], "invalid_grant");
        assert_eq!(introspect(&app, &client, first["access_token"].as_str().unwrap()).await["active"], false);
        assert_eq!(introspect(&app, &client, first["refresh_token"].as_str().unwrap()).await["active"], false);
        assert!(app.audit_kinds().await.contains(&"code_replay".to_owned()));
    }

    async fn token_endpoint_errors_are_exact(backend) {
        let app = spawn_app(&backend).await;
        let client = register_with(&app, true, "profile", &["https://client.example/cb", "https://client.example/other"]).await;
        let other = register(&app, true, "profile").await;
        let browser = app.signed_in("ed@example.com").await;

        // Wrong redirect URI at token time.
        let (code, verifier) = get_code(&app, &browser, &client, "profile").await;
        let (status, e, _) = token_request(&app, &client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "https://client.example/other"), ("code_verifier", &verifier)]).await;
        assert_eq!((status, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));

        // Missing and wrong verifier.
        let (code, _) = get_code(&app, &browser, &client, "profile").await;
        let (status, e, _) = token_request(&app, &client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &client.redirect_uri)]).await;
        assert_eq!((status, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
        let (code, _) = get_code(&app, &browser, &client, "profile").await;
        let (wrong, _) = pkce_pair();
        let (status, e) = exchange(&app, &client, &code, &wrong).await;
        assert_eq!((status, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));

        // Another app's code.
        let (code, verifier) = get_code(&app, &browser, &client, "profile").await;
        let (status, e) = exchange(&app, &RegisteredApp { redirect_uri: client.redirect_uri.clone(), ..other.clone_app() }, &code, &verifier).await;
        assert_eq!((status, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));

        // Wrong secret with Basic: 401 and WWW-Authenticate.
        let bad = RegisteredApp { secret: Some("lk_cs_wrong".into()), ..client.clone_app() };
        let (status, e, headers) = token_request(&app, &bad, &[("grant_type", "client_credentials")]).await;
        assert_eq!((status, e["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
        assert!(headers["www-authenticate"].to_str().unwrap().starts_with("Basic"));

        // Unsupported grant type; missing grant type; a form body repeating a parameter.
        let (status, e, _) = token_request(&app, &client, &[("grant_type", "password")]).await;
        assert_eq!((status, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
        let (status, e, _) = token_request(&app, &client, &[]).await;
        assert_eq!((status, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
        let (status, e, _) = token_request(&app, &client, &[("grant_type", "client_credentials"), ("grant_type", "client_credentials")]).await;
        assert_eq!((status, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
        // A public client cannot use client_credentials.
        let public = register_with(&app, false, "read", &["https://client.example/cb"]).await;
        let (status, e, _) = token_request(&app, &public, &[("grant_type", "client_credentials")]).await;
        assert_eq!((status, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")));
        // A personal access token is not a refresh token.
        let (_, pat) = app.user_with_pat("pat@example.com", "apps read", false).await;
        let (status, e, _) = token_request(&app, &client, &[("grant_type", "refresh_token"), ("refresh_token", &pat)]).await;
        assert_eq!((status, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    }

    async fn authorize_errors_page_or_redirect_in_the_pinned_order(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "profile read").await;
        let public = register_with(&app, false, "profile", &["com.example.app:/cb"]).await;
        let browser = app.signed_in("fi@example.com").await;
        let (_, challenge) = pkce_pair();

        // Unknown client, unregistered redirect URI: an error page, never a redirect.
        for q in [
            query(&[("response_type", "code"), ("client_id", "0123456789abcdef0123456789abcdef")]),
            query(&[("response_type", "code"), ("client_id", &client.client_id), ("redirect_uri", "https://evil.example/cb")]),
            query(&[("response_type", "code"), ("client_id", &client.client_id), ("redirect_uri", "https://client.example/cb/../x")]),
            query(&[("response_type", "bogus"), ("client_id", &client.client_id), ("redirect_uri", "https://client.example/cb?x=1")]),
        ] {
            let page = app.get(&browser, &format!("/oauth/authorize?{q}")).await;
            assert_eq!(page.status, StatusCode::BAD_REQUEST, "{q}");
            assert!(page.headers.get("location").is_none());
            assert!(page.body.contains("This authorization request cannot be completed"));
        }

        // Parameter errors redirect with error, state and iss.
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![("response_type", "token"), ("client_id", &client.client_id), ("state", "x")], "unsupported_response_type"),
            (vec![("response_type", "code"), ("client_id", &client.client_id), ("scope", "admin"), ("state", "x")], "invalid_scope"),
            (vec![("response_type", "code"), ("client_id", &client.client_id), ("scope", "email"), ("state", "x")], "invalid_scope"),
            (vec![("response_type", "code"), ("client_id", &public.client_id), ("state", "x")], "invalid_request"),
            (vec![("response_type", "code"), ("client_id", &client.client_id), ("code_challenge", &challenge), ("code_challenge_method", "plain"), ("state", "x")], "invalid_request"),
            (vec![("response_type", "code"), ("client_id", &client.client_id), ("code_challenge", &challenge), ("state", "x")], "invalid_request"),
        ];
        for (params, expected) in cases {
            let page = app.get(&browser, &format!("/oauth/authorize?{}", query(&params))).await;
            assert_eq!(page.status, StatusCode::SEE_OTHER, "{params:?}");
            let got = location_params(&page);
            assert_eq!(got["error"], expected, "{params:?}");
            assert_eq!(got["state"], "x");
            assert_eq!(got["iss"], app.base);
            assert!(got.contains_key("error_description"));
        }
    }

    async fn sign_in_prompt_none_and_deny(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "profile").await;
        let (_, challenge) = pkce_pair();
        let params = [("response_type", "code"), ("client_id", client.client_id.as_str()), ("state", "z"), ("code_challenge", &challenge), ("code_challenge_method", "S256")];

        // No session: the sign-in page, then back to the request.
        let anonymous = browser();
        let page = app.get(&anonymous, &format!("/oauth/authorize?{}", query(&params))).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert!(page.location().starts_with("/login?return_to=%2Foauth%2Fauthorize%3F"), "{}", page.location());
        // prompt=none without a session: login_required at the client.
        let mut none = params.to_vec();
        none.push(("prompt", "none"));
        let page = app.get(&anonymous, &format!("/oauth/authorize?{}", query(&none))).await;
        assert_eq!(location_params(&page)["error"], "login_required");

        let signed = app.signed_in("gus@example.com").await;
        // prompt=none, signed in, no consent yet: consent_required.
        let page = app.get(&signed, &format!("/oauth/authorize?{}", query(&none))).await;
        assert_eq!(location_params(&page)["error"], "consent_required");
        // Deny: access_denied with state and iss.
        let page = authorize(&app, &signed, &params, "deny").await;
        let got = location_params(&page);
        assert_eq!(got["error"], "access_denied");
        assert_eq!(got["state"], "z");
        assert_eq!(got["iss"], app.base);
        // After consent, prompt=none succeeds silently; prompt=consent shows the page again;
        // prompt=login sends the user to sign in again.
        authorize(&app, &signed, &params, "allow").await;
        let page = app.get(&signed, &format!("/oauth/authorize?{}", query(&none))).await;
        assert!(location_params(&page).contains_key("code"));
        let mut consent = params.to_vec();
        consent.push(("prompt", "consent"));
        assert_eq!(app.get(&signed, &format!("/oauth/authorize?{}", query(&consent))).await.status, StatusCode::OK);
        let mut login = params.to_vec();
        login.push(("prompt", "login"));
        let page = app.get(&signed, &format!("/oauth/authorize?{}", query(&login))).await;
        assert!(page.location().starts_with("/login?prompt=login&return_to="), "{}", page.location());
        let form = app.get(&signed, page.location()).await;
        assert!(form.body.contains(">Sign in</button>"), "the sign-in form shows even with a session");

        // `GET /` with response_type is an authorization request too.
        let root = app.get(&signed, &format!("/?{}", query(&params))).await;
        assert!(root.location().starts_with("/oauth/authorize?response_type=code"));
    }

    async fn revocation_and_client_credentials(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "profile read").await;
        let other = register(&app, true, "profile").await;
        let browser = app.signed_in("hu@example.com").await;
        let (code, verifier) = get_code(&app, &browser, &client, "profile read").await;
        let (_, tokens) = exchange(&app, &client, &code, &verifier).await;
        let access = tokens["access_token"].as_str().unwrap();
        let refresh = tokens["refresh_token"].as_str().unwrap();

        let revoke = |c: &RegisteredApp, token: &str| {
            reqwest::Client::new()
                .post(app.url("/oauth/revoke"))
                .basic_auth(&c.client_id, c.secret.as_ref())
                .form(&[("token", token.to_owned())])
                .send()
        };
        // Another app cannot revoke it; unknown tokens answer 200 as well.
        assert_eq!(revoke(&other, refresh).await.unwrap().status(), StatusCode::OK);
        assert_eq!(introspect(&app, &client, access).await["active"], true);
        assert_eq!(revoke(&client, "lk_rt_unknown").await.unwrap().status(), StatusCode::OK);
        // Revoking the refresh token revokes its access token.
        assert_eq!(revoke(&client, refresh).await.unwrap().status(), StatusCode::OK);
        assert_eq!(introspect(&app, &client, access).await["active"], false);
        let userinfo = reqwest::Client::new().get(app.url("/oauth/userinfo")).bearer_auth(access).send().await.unwrap();
        assert_eq!(userinfo.status(), StatusCode::UNAUTHORIZED);
        assert!(userinfo.headers()["www-authenticate"].to_str().unwrap().contains("error=\"invalid_token\""));

        let (status, cc, _) = token_request(&app, &client, &[("grant_type", "client_credentials"), ("scope", "read")]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(cc.get("refresh_token").is_none());
        let intro = introspect(&app, &client, cc["access_token"].as_str().unwrap()).await;
        assert_eq!(intro["active"], true);
        assert!(intro.get("sub").is_none(), "no user behind a client_credentials token");
        let userinfo = reqwest::Client::new().get(app.url("/oauth/userinfo")).bearer_auth(cc["access_token"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(userinfo.status(), StatusCode::UNAUTHORIZED);
        let (status, e, _) = token_request(&app, &client, &[("grant_type", "client_credentials"), ("scope", "openid")]).await;
        assert_eq!((status, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")));

        // Personal access tokens are unknown to userinfo and introspection.
        let (_, pat) = app.user_with_pat("pat@example.com", "read", false).await;
        assert_eq!(introspect(&app, &client, &pat).await, serde_json::json!({"active": false}));
        let (status, _) = app.api(Method::GET, "/oauth/userinfo", &pat, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    async fn authorized_applications_page_revokes_grant_and_tokens(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "profile read").await;
        let browser = app.signed_in("iv@example.com").await;
        let (code, verifier) = get_code(&app, &browser, &client, "profile read").await;
        let (_, tokens) = exchange(&app, &client, &code, &verifier).await;
        let access = tokens["access_token"].as_str().unwrap();
        let _ = reqwest::Client::new().get(app.url("/oauth/userinfo")).bearer_auth(access).send().await;

        let page = app.get(&browser, "/oauth/authorized_applications").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("Test Client"));
        assert!(page.body.contains("Read your coding activity"));
        let grant = app.store.grants_of_user(&app.store.user_by_email("iv@example.com").await.unwrap().unwrap().id).await.unwrap().remove(0);
        let revoked = app
            .submit(&browser, "/oauth/authorized_applications", &format!("/oauth/authorized_applications/{}/revoke", grant.id), &[])
            .await;
        assert_eq!(revoked.status, StatusCode::SEE_OTHER);
        assert_eq!(introspect(&app, &client, access).await["active"], false);
        assert_eq!(introspect(&app, &client, tokens["refresh_token"].as_str().unwrap()).await["active"], false);
        let page = app.get(&browser, revoked.location()).await;
        assert!(page.body.contains("Access for Test Client was revoked."));
        assert!(page.body.contains("You have not authorized any apps."));
        assert!(app.audit_kinds().await.contains(&"grant_revoked".to_owned()));
    }

    async fn the_consent_page_in_russian(backend) {
        let app = spawn_app(&backend).await;
        let client = register(&app, true, "profile").await;
        let browser = app.signed_in("ru@example.com").await;
        app.get(&browser, "/lang/ru").await;
        let page = app.get(&browser, &format!("/oauth/authorize?{}", query(&[("response_type", "code"), ("client_id", &client.client_id)]))).await;
        assert!(page.body.contains("Это приложение не проверено"));
        assert!(page.body.contains(">Разрешить</button>") && page.body.contains(">Отклонить</button>"));
        assert!(page.body.contains("Вы вошли как ru@example.com"));
        let stored = app.store.app_by_id(&client.id).await.unwrap().unwrap();
        app.store.set_app_verified(&stored.id, true, latchkey::store::now()).await.unwrap();
        let page = app.get(&browser, &format!("/oauth/authorize?{}", query(&[("response_type", "code"), ("client_id", &client.client_id)]))).await;
        assert!(page.body.contains("Проверено"));
        assert!(!page.body.contains("Это приложение не проверено"));
    }
}

impl RegisteredApp {
    pub fn clone_app(&self) -> RegisteredApp {
        RegisteredApp {
            id: self.id.clone(),
            client_id: self.client_id.clone(),
            secret: self.secret.clone(),
            redirect_uri: self.redirect_uri.clone(),
        }
    }
}
