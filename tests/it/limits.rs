//! Rate limits and the per-user API quota: 429 with `Retry-After`, `RateLimit-*` headers.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::helpers::*;
use crate::oauth_helpers::*;
use crate::on_both_backends;

fn header(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.parse().ok()
}

/// GET `path` with a bearer token; (status, RateLimit-Remaining, Retry-After).
async fn get(app: &TestApp, token: &str, path: &str) -> (StatusCode, Option<u64>, Option<u64>) {
    let response = reqwest::Client::new()
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let h = response.headers();
    if let Some(limit) = header(h, "ratelimit-limit") {
        let reset = header(h, "ratelimit-reset").expect("RateLimit-Reset with RateLimit-Limit");
        assert!((1..=60).contains(&reset), "reset {reset}");
        assert!(limit >= 1);
    }
    (
        response.status(),
        header(h, "ratelimit-remaining"),
        header(h, "retry-after"),
    )
}

/// A client_credentials request as `client`, from `ip` (the app trusts `X-Forwarded-For`).
async fn client_credentials(
    app: &TestApp,
    client: &RegisteredApp,
    ip: &str,
) -> (StatusCode, Value, Option<u64>) {
    let mut request = reqwest::Client::new()
        .post(app.url("/oauth/token"))
        .header("x-forwarded-for", ip);
    let mut form = vec![("grant_type", "client_credentials")];
    match &client.secret {
        Some(secret) => request = request.basic_auth(&client.client_id, Some(secret)),
        None => form.push(("client_id", &client.client_id)),
    }
    let response = request.form(&form).send().await.unwrap();
    let status = response.status();
    let retry = header(response.headers(), "retry-after");
    (status, response.json().await.unwrap_or(Value::Null), retry)
}

on_both_backends! {
    async fn the_token_endpoint_is_limited_per_ip_and_per_confidential_app(backend) {
        let app = spawn_app_with(&backend, |s| {
            s.token_rate_per_minute = Some(3);
            s.trust_proxy = Some(true);
        })
        .await;
        fresh_rate_window().await;
        let a = register(&app, true, "read").await;
        let b = register(&app, true, "read").await;
        for _ in 0..3 {
            assert_eq!(client_credentials(&app, &a, "10.0.0.1").await.0, StatusCode::OK);
        }
        let (status, body, retry) = client_credentials(&app, &a, "10.0.0.1").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(body["error"], "rate_limited");
        assert!((1..=60).contains(&retry.expect("Retry-After")));
        // The same IP is refused for another app too, and at the leak-report endpoint.
        assert_eq!(client_credentials(&app, &b, "10.0.0.1").await.0, StatusCode::TOO_MANY_REQUESTS);
        let leak = reqwest::Client::new()
            .post(app.url("/oauth/leaked"))
            .header("x-forwarded-for", "10.0.0.1")
            .json(&serde_json::json!(["lk_at_nothing"]))
            .send()
            .await
            .unwrap();
        assert_eq!(leak.status(), StatusCode::TOO_MANY_REQUESTS);

        // App `a` has spent its own three as well: from a new IP it is still refused, while
        // app `b` from that IP is not.
        let (status, _, _) = client_credentials(&app, &a, "10.0.0.2").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(client_credentials(&app, &b, "10.0.0.2").await.0, StatusCode::OK);

        // A public app is counted per IP only: anyone may name its client_id.
        let public = register(&app, false, "read").await;
        for ip in ["10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4", "10.0.1.5"] {
            let (status, body, _) = client_credentials(&app, &public, ip).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(body["error"], "unauthorized_client", "{body}");
        }
    }

    async fn the_resource_api_quota_is_shared_by_all_of_a_users_tokens(backend) {
        let app = spawn_app_with(&backend, |s| s.api_rate_per_minute = Some(5)).await;
        fresh_rate_window().await;
        let (_, pat) = app.user_with_pat("quota@example.com", "read", false).await;
        let client = register(&app, true, "openid profile read").await;
        let browser = app.signed_in("quota-oauth@example.com").await;
        let (code, verifier) = get_code(&app, &browser, &client, "openid profile read").await;
        let (_, tokens) = exchange(&app, &client, &code, &verifier).await;
        let oauth = tokens["access_token"].as_str().unwrap().to_owned();
        let (_, other_pat) = app.user_with_pat("other@example.com", "read", false).await;

        // The OAuth user: the resource API and userinfo draw on one quota.
        assert_eq!(get(&app, &oauth, "/api/v1/authenticated/hours").await, (StatusCode::OK, Some(4), None));
        assert_eq!(get(&app, &oauth, "/oauth/userinfo").await, (StatusCode::OK, Some(3), None));
        assert_eq!(get(&app, &oauth, "/api/v1/authenticated/streak").await, (StatusCode::OK, Some(2), None));
        assert_eq!(get(&app, &oauth, "/oauth/userinfo").await.1, Some(1));
        assert_eq!(get(&app, &oauth, "/api/v1/authenticated/me").await.1, Some(0));
        let (status, remaining, retry) = get(&app, &oauth, "/api/v1/authenticated/hours").await;
        assert_eq!((status, remaining), (StatusCode::TOO_MANY_REQUESTS, Some(0)));
        assert!((1..=60).contains(&retry.expect("Retry-After")));
        assert_eq!(get(&app, &oauth, "/oauth/userinfo").await.0, StatusCode::TOO_MANY_REQUESTS);

        // Another user, and the same user's other kinds of calls, have quotas of their own.
        assert_eq!(get(&app, &pat, "/api/v1/authenticated/hours").await, (StatusCode::OK, Some(4), None));
        assert_eq!(get(&app, &other_pat, "/api/v1/authenticated/hours").await, (StatusCode::OK, Some(4), None));
        // The client API counts apart from the resource API (this PAT may not list apps).
        assert_eq!(get(&app, &pat, "/oauth/clients").await, (StatusCode::FORBIDDEN, Some(4), None));
        let (_, dev_pat) = app.user_with_pat("dev@example.com", "apps", false).await;
        assert_eq!(get(&app, &dev_pat, "/oauth/clients").await, (StatusCode::OK, Some(4), None));

        // Unauthenticated and wrong tokens spend nobody's quota and carry no quota headers.
        assert_eq!(get(&app, "lk_at_nonsense", "/api/v1/authenticated/hours").await, (StatusCode::UNAUTHORIZED, None, None));
    }

    async fn a_large_limit_is_counted_in_blocks_and_exactly_on_one_node(backend) {
        let app = spawn_app_with(&backend, |s| s.api_rate_per_minute = Some(1600)).await;
        fresh_rate_window().await;
        let (_, pat) = app.user_with_pat("blocks@example.com", "read", false).await;
        for remaining in [1599, 1598, 1597] {
            assert_eq!(
                get(&app, &pat, "/api/v1/authenticated/streak").await,
                (StatusCode::OK, Some(remaining), None)
            );
        }
        if app.store.backend() == latchkey::store::Backend::Postgres {
            // One write took a block of a sixteenth of the limit for all three requests.
            let hits: Vec<i64> = sqlx::query_scalar("SELECT hits FROM rate_counters")
                .fetch_all(app.store.pool())
                .await
                .unwrap();
            assert_eq!(hits, [100]);
        }
    }

    async fn heartbeat_ingestion_has_its_own_quota(backend) {
        let app = spawn_app_with(&backend, |s| s.api_rate_per_minute = Some(2)).await;
        fresh_rate_window().await;
        let (user, _) = app.user_with_pat("hb@example.com", "read", false).await;
        let key = app.store.api_key(&user.id).await.unwrap();
        let send = || {
            reqwest::Client::new()
                .post(app.url("/api/v1/users/current/heartbeats"))
                .bearer_auth(&key)
                .json(&serde_json::json!({"time": 1_700_000_000.5, "entity": "main.rs", "type": "file"}))
                .send()
        };
        let first = send().await.unwrap();
        assert_eq!(first.status(), StatusCode::CREATED);
        assert_eq!(header(first.headers(), "ratelimit-remaining"), Some(1));
        assert_eq!(send().await.unwrap().status(), StatusCode::CREATED);
        let third = send().await.unwrap();
        assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(header(third.headers(), "retry-after").is_some());
        let body: Value = third.json().await.unwrap();
        assert_eq!(body["error"], "rate_limited");
    }

    async fn with_rate_limits_off_no_quota_is_counted_or_reported(backend) {
        let app = spawn_app_with(&backend, |s| {
            s.api_rate_per_minute = Some(1);
            s.token_rate_per_minute = Some(1);
            s.rate_limits = Some("off".into());
        })
        .await;
        let (_, pat) = app.user_with_pat("free@example.com", "read", false).await;
        for _ in 0..3 {
            assert_eq!(get(&app, &pat, "/api/v1/authenticated/hours").await, (StatusCode::OK, None, None));
        }
        let client = register(&app, true, "read").await;
        for _ in 0..3 {
            assert_eq!(client_credentials(&app, &client, "10.0.0.1").await.0, StatusCode::OK);
        }
    }
}
