//! Concurrent redemption of one code, and concurrent refresh of one refresh token: the
//! database's conditional update lets exactly one through. Concurrent resource requests with
//! many tokens (gathered into shared lookups on PostgreSQL) each get their own user's answer.

use reqwest::StatusCode;

use crate::helpers::*;
use crate::oauth_helpers::*;
use crate::on_both_backends;

const N: usize = 50;

on_both_backends! {
    async fn fifty_concurrent_redemptions_of_one_code_succeed_once(backend) {
        let app = spawn_app_with(&backend, |s| s.rate_limits = Some("off".into())).await;
        let client = register(&app, true, "profile").await;
        let browser = app.signed_in("race@example.com").await;
        let (code, verifier) = get_code(&app, &browser, &client, "profile").await;
        let client = std::sync::Arc::new(client);
        let app = std::sync::Arc::new(app);
        let mut tasks = Vec::new();
        for _ in 0..N {
            let (app, client, code, verifier) = (app.clone(), client.clone(), code.clone(), verifier.clone());
            tasks.push(tokio::spawn(async move { exchange(&app, &client, &code, &verifier).await }));
        }
        let mut ok = 0;
        let mut invalid_grant = 0;
        for t in tasks {
            let (status, body) = t.await.unwrap();
            match status {
                StatusCode::OK => ok += 1,
                StatusCode::BAD_REQUEST if body["error"] == "invalid_grant" => invalid_grant += 1,
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert_eq!((ok, invalid_grant), (1, N - 1));
    }

    async fn fifty_concurrent_refreshes_rotate_once(backend) {
        let app = spawn_app_with(&backend, |s| s.rate_limits = Some("off".into())).await;
        let client = register(&app, true, "profile").await;
        let browser = app.signed_in("race@example.com").await;
        let (code, verifier) = get_code(&app, &browser, &client, "profile").await;
        let (_, tokens) = exchange(&app, &client, &code, &verifier).await;
        let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
        let client = std::sync::Arc::new(client);
        let app = std::sync::Arc::new(app);
        let mut tasks = Vec::new();
        for _ in 0..N {
            let (app, client, refresh) = (app.clone(), client.clone(), refresh.clone());
            tasks.push(tokio::spawn(async move {
                let (status, body, _) = token_request(&app, &client, &[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await;
                (status, body)
            }));
        }
        let mut pairs = std::collections::HashSet::new();
        for t in tasks {
            let (status, body) = t.await.unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
            pairs.insert((body["access_token"].as_str().unwrap().to_owned(), body["refresh_token"].as_str().unwrap().to_owned()));
        }
        assert_eq!(pairs.len(), 1, "every success carries the same successor pair");
        let rotated: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE kind = 'refresh'")
            .fetch_one(app.store.pool())
            .await
            .unwrap();
        assert_eq!(rotated, 2, "one rotation: the original and one successor");
        let (access, _) = pairs.into_iter().next().unwrap();
        assert_eq!(introspect(&app, &client, &access).await["active"], true);
    }

    async fn concurrent_requests_with_many_tokens_each_get_their_own_answer(backend) {
        let app = spawn_app_with(&backend, |s| s.rate_limits = Some("off".into())).await;
        let client = register(&app, true, "profile").await;
        let mut tokens = Vec::new();
        for i in 0..5 {
            let email = format!("reader{i}@example.com");
            let browser = app.signed_in(&email).await;
            let (code, verifier) = get_code(&app, &browser, &client, "profile").await;
            let (status, body) = exchange(&app, &client, &code, &verifier).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            tokens.push((Some(email), body["access_token"].as_str().unwrap().to_owned()));
        }
        // One token revoked, one never issued: both are refused, alongside the others' answers.
        let revoked = reqwest::Client::new().post(app.url("/oauth/revoke"))
            .basic_auth(&client.client_id, client.secret.as_ref())
            .form(&[("token", tokens[4].1.as_str())])
            .send().await.unwrap();
        assert_eq!(revoked.status(), StatusCode::OK);
        tokens[4].0 = None;
        tokens.push((None, "lk_at_never_issued_0123456789".into()));
        let app = std::sync::Arc::new(app);
        let mut tasks = Vec::new();
        for i in 0..120 {
            let (app, (email, token)) = (app.clone(), tokens[i % tokens.len()].clone());
            tasks.push(tokio::spawn(async move {
                let (status, body) = app.api(reqwest::Method::GET, "/api/v1/authenticated/me", &token, None).await;
                (email, status, body)
            }));
        }
        for t in tasks {
            match t.await.unwrap() {
                (Some(email), status, body) => {
                    assert_eq!(status, StatusCode::OK, "{body}");
                    assert_eq!(body["emails"], serde_json::json!([email]));
                }
                (None, status, body) => {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
                    assert_eq!(body["error"], "invalid_token");
                }
            }
        }
    }
}

on_both_backends! {
    async fn concurrent_client_credentials_grants_each_get_their_own_committed_token(backend) {
        let app = spawn_app_with(&backend, |s| s.rate_limits = Some("off".into())).await;
        let client = std::sync::Arc::new(register(&app, true, "read").await);
        let app = std::sync::Arc::new(app);
        let mut tasks = Vec::new();
        for _ in 0..N {
            let (app, client) = (app.clone(), client.clone());
            tasks.push(tokio::spawn(async move {
                let (status, body, _) = token_request(&app, &client, &[("grant_type", "client_credentials")]).await;
                (status, body)
            }));
        }
        let mut tokens = std::collections::HashSet::new();
        for t in tasks {
            let (status, body) = t.await.unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
            tokens.insert(body["access_token"].as_str().unwrap().to_owned());
        }
        assert_eq!(tokens.len(), N, "every grant has a token of its own");
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE kind = 'access'")
            .fetch_one(app.store.pool())
            .await
            .unwrap();
        assert_eq!(stored, N as i64);
        for token in &tokens {
            assert_eq!(introspect(&app, &client, token).await["active"], true);
        }
    }
}

on_both_backends! {
    async fn concurrent_refreshes_of_many_chains_each_rotate_their_own(backend) {
        // Rotations of different tokens made at once (one statement on PostgreSQL), each sent
        // twice as a client retrying would: every chain moves one step a round, both copies of
        // a request get the same new pair, and no chain gets a pair of another's.
        const CHAINS: usize = 24;
        const ROUNDS: usize = 3;
        let app = spawn_app_with(&backend, |s| s.rate_limits = Some("off".into())).await;
        let client = register(&app, true, "profile").await;
        let browser = app.signed_in("chains@example.com").await;
        let mut chains = Vec::new();
        for _ in 0..CHAINS {
            let (code, verifier) = get_code(&app, &browser, &client, "profile").await;
            let (status, body) = exchange(&app, &client, &code, &verifier).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            chains.push(body["refresh_token"].as_str().unwrap().to_owned());
        }
        let (app, client) = (std::sync::Arc::new(app), std::sync::Arc::new(client));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..ROUNDS {
            let mut tasks = Vec::new();
            for refresh in chains.iter().flat_map(|r| [r.clone(), r.clone()]) {
                let (app, client) = (app.clone(), client.clone());
                tasks.push(tokio::spawn(async move {
                    token_request(&app, &client, &[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await
                }));
            }
            let mut answers = Vec::new();
            for t in tasks {
                let (status, body, _) = t.await.unwrap();
                assert_eq!(status, StatusCode::OK, "{body}");
                answers.push((body["access_token"].as_str().unwrap().to_owned(), body["refresh_token"].as_str().unwrap().to_owned()));
            }
            for (chain, copies) in chains.iter_mut().zip(answers.chunks(2)) {
                assert_eq!(copies[0], copies[1], "a retried rotation gets the first one's pair");
                assert!(seen.insert(copies[0].clone()), "a pair given to two chains");
                *chain = copies[0].1.clone();
            }
        }
        let count = |sql: &'static str| {
            let app = app.clone();
            async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(app.store.pool()).await.unwrap() }
        };
        assert_eq!(count("SELECT COUNT(*) FROM tokens WHERE kind = 'refresh'").await, (CHAINS * (ROUNDS + 1)) as i64);
        assert_eq!(
            count("SELECT COUNT(*) FROM tokens WHERE kind = 'refresh' AND rotated_at IS NOT NULL AND successor IS NOT NULL").await,
            (CHAINS * ROUNDS) as i64
        );
        assert_eq!(count("SELECT COUNT(DISTINCT family_id) FROM tokens").await, CHAINS as i64);
        for (access, _) in seen.iter().take(4) {
            assert_eq!(introspect(&app, &client, access).await["active"], true);
        }
    }
}

on_both_backends! {
    async fn concurrent_redemptions_of_many_codes_each_succeed_once(backend) {
        // Codes redeemed at once (one statement on PostgreSQL), each sent twice: each code
        // gives tokens to exactly one of its two requests.
        const CODES: usize = 24;
        let app = spawn_app_with(&backend, |s| s.rate_limits = Some("off".into())).await;
        let client = register(&app, true, "profile").await;
        let browser = app.signed_in("codes@example.com").await;
        let mut codes = Vec::new();
        for _ in 0..CODES {
            codes.push(get_code(&app, &browser, &client, "profile").await);
        }
        let (app, client) = (std::sync::Arc::new(app), std::sync::Arc::new(client));
        let mut tasks = Vec::new();
        for (code, verifier) in codes.iter().flat_map(|c| [c.clone(), c.clone()]) {
            let (app, client) = (app.clone(), client.clone());
            tasks.push(tokio::spawn(async move { exchange(&app, &client, &code, &verifier).await }));
        }
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        let mut issued = std::collections::HashSet::new();
        for copies in answers.chunks(2) {
            let ok: Vec<_> = copies.iter().filter(|(status, _)| *status == StatusCode::OK).collect();
            assert_eq!(ok.len(), 1, "{copies:?}");
            let other = copies.iter().find(|(status, _)| *status != StatusCode::OK).unwrap();
            assert_eq!((other.0, other.1["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
            assert!(issued.insert(ok[0].1["access_token"].as_str().unwrap().to_owned()));
        }
        let count = |sql: &'static str| {
            let app = app.clone();
            async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(app.store.pool()).await.unwrap() }
        };
        assert_eq!(count("SELECT COUNT(*) FROM tokens WHERE kind = 'access'").await, CODES as i64);
        assert_eq!(count("SELECT COUNT(DISTINCT family_id) FROM tokens").await, CODES as i64);
        assert_eq!(count("SELECT COUNT(*) FROM auth_codes WHERE used_at IS NOT NULL").await, CODES as i64);
    }
}
