//! The coding-activity API: WakaTime ingestion and the Hackatime endpoints, on both backends.

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::oauth_helpers::*;
use crate::on_both_backends;

const VSCODE_UA: &str = "wakatime/13.1.0 (Linux-6.1-x86_64-with-glibc2.36) Python3.11.7.final.0 vscode/1.80.0 vscode-wakatime/24.0.0";

/// A user with an API key and a personal access token carrying `scopes`.
async fn coder(
    app: &TestApp,
    email: &str,
    scopes: &str,
) -> (latchkey::domain::user::User, String, String) {
    let (user, pat) = app.user_with_pat(email, scopes, false).await;
    let key = app.store.api_key(&user.id).await.unwrap();
    (user, key, pat)
}

fn hb(time: f64, project: &str, category: &str) -> Value {
    json!({"time": time, "entity": format!("/src/{project}/main.rs"), "type": "file", "category": category,
           "project": project, "language": "Rust", "is_write": false})
}

async fn send_bulk(app: &TestApp, key: &str, items: &[Value]) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/users/current/heartbeats.bulk"))
        .header(
            "authorization",
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(key)
            ),
        )
        .header("user-agent", VSCODE_UA)
        .header("x-machine-name", "devbox")
        .json(&items)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    app.api(Method::GET, path, token, None).await
}

/// Midnight UTC of the day `days` ago, as epoch seconds.
fn midnight_utc(days_ago: i64) -> i64 {
    let now = latchkey::store::now();
    now - now.rem_euclid(86_400) - days_ago * 86_400
}

fn date_of(epoch: i64) -> String {
    jiff::Timestamp::from_second(epoch)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string()
}

on_both_backends! {
    async fn single_heartbeats_with_each_kind_of_api_key(backend) {
        let app = spawn_app(&backend).await;
        let (user, key, _) = coder(&app, "wk@example.com", "read").await;
        let t = midnight_utc(1) as f64 + 100.5;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
        let client = reqwest::Client::new();
        let requests = [
            client.post(app.url("/api/v1/users/current/heartbeats")).header("authorization", format!("Basic {basic}")),
            client.post(app.url("/api/v1/users/current/heartbeats")).bearer_auth(&key),
            client.post(app.url(&format!("/api/v1/users/current/heartbeats?api_key={key}"))),
            client.post(app.url(&format!("/api/hackatime/v1/users/{}/heartbeats", user.id))).bearer_auth(&key),
        ];
        for (i, request) in requests.into_iter().enumerate() {
            let response = request
                .header("user-agent", VSCODE_UA)
                .header("x-machine-name", "devbox")
                .json(&hb(t + i as f64, "latchkey", "coding"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::CREATED, "request {i}");
            let body: Value = response.json().await.unwrap();
            let data = &body["data"];
            assert_eq!(data["editor"], "VS Code");
            assert_eq!(data["operating_system"], "Linux");
            assert_eq!(data["machine"], "devbox");
            assert_eq!(data["project"], "latchkey");
            assert_eq!(data["time"].as_f64().unwrap(), t + i as f64);
            assert!(data["id"].is_string());
        }
        // Wrong, malformed or missing keys are refused.
        for auth in ["Bearer 00000000-0000-0000-0000-000000000000", "Bearer nonsense", "Basic !!!"] {
            let r = client.post(app.url("/api/v1/users/current/heartbeats")).header("authorization", auth).json(&hb(t, "x", "coding")).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth}");
        }
        let r = client.post(app.url("/api/v1/users/current/heartbeats")).json(&hb(t, "x", "coding")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        // Someone else's id in the path is refused.
        let r = client.post(app.url("/api/v1/users/someone-else/heartbeats")).bearer_auth(&key).json(&hb(t, "x", "coding")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        // A bad heartbeat gets a 400 of its own.
        let r = client.post(app.url("/api/v1/users/current/heartbeats")).bearer_auth(&key).json(&json!({"time": -5, "entity": "x"})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }

    async fn bulk_ingest_answers_per_item_and_ignores_duplicates(backend) {
        let app = spawn_app(&backend).await;
        let (_, key, pat) = coder(&app, "bulk@example.com", "read").await;
        let t = midnight_utc(1) as f64 + 3600.0;
        let items = vec![hb(t, "p", "coding"), json!({"entity": "no time"}), hb(t + 60.0, "p", "coding"), hb(t, "p", "coding")];
        let (status, body) = send_bulk(&app, &key, &items).await;
        assert_eq!(status, StatusCode::CREATED);
        let responses = body["responses"].as_array().unwrap();
        assert_eq!(responses.len(), 4);
        assert_eq!(responses[0][1], 201);
        assert_eq!(responses[1][1], 400);
        assert!(responses[1][0]["error"].as_str().unwrap().contains("time"));
        assert_eq!(responses[2][1], 201);
        assert_eq!(responses[3][1], 201, "a duplicate is answered as stored");
        assert_eq!(responses[0][0]["data"]["id"], responses[3][0]["data"]["id"]);
        // Sending the same again stores nothing new.
        send_bulk(&app, &key, &items).await;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM heartbeats").fetch_one(app.store.pool()).await.unwrap();
        assert_eq!(count, 2);
        // Heartbeats stored under ids of another form (as an earlier release made them) are
        // still known by their content: sending them again stores nothing.
        sqlx::query("UPDATE heartbeats SET id = 'f' || substr(id, 2)").execute(app.store.pool()).await.unwrap();
        send_bulk(&app, &key, &items).await;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM heartbeats").fetch_one(app.store.pool()).await.unwrap();
        assert_eq!(count, 2);
        let (_, hours) = get(&app, &pat, &format!("/api/v1/authenticated/hours?start_date={0}&end_date={0}", date_of(t as i64))).await;
        assert_eq!(hours["total_seconds"].as_f64().unwrap(), 60.0);
    }

    async fn hours_follow_the_definition_worked_out_by_hand(backend) {
        let app = spawn_app(&backend).await;
        let (_, key, pat) = coder(&app, "hours@example.com", "read").await;
        let day = midnight_utc(3);
        let d = day as f64;
        // The day before: one heartbeat 50 s before midnight.
        // The day: 0, +30, +60 (gaps 30, 30), +300 (gap 240 → 120), +310 (gap 10), then a
        // heartbeat at 23:59:00 (gap from +310 is huge → 120) and one the next day at 00:00:30
        // (gap 90, which belongs to the pair straddling midnight: not in this day).
        let times = [d - 50.0, d, d + 30.0, d + 60.0, d + 300.0, d + 310.0, d + 86_340.0, d + 86_430.0];
        // Send them out of order, in three requests, to exercise backfill.
        let order = [[4, 0, 7], [2, 6, 1], [5, 3, 3]];
        for batch in order {
            let items: Vec<Value> = batch.iter().map(|&i| hb(times[i], "p", "coding")).collect();
            assert_eq!(send_bulk(&app, &key, &items).await.0, StatusCode::CREATED);
        }
        let one_day = format!("/api/v1/authenticated/hours?start_date={0}&end_date={0}", date_of(day));
        let (status, body) = get(&app, &pat, &one_day).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // 30 + 30 + 120 + 10 + 120 = 310; the first heartbeat of the range counts nothing before it.
        assert_eq!(body["total_seconds"].as_f64().unwrap(), 310.0, "{body}");
        assert_eq!(body["start_date"], date_of(day));
        assert_eq!(body["end_date"], date_of(day));
        let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 3);

        // With the day before: its heartbeat's 50 s gap to midnight now lies inside the range.
        let two = format!("/api/v1/authenticated/hours?start_date={}&end_date={}", date_of(day - 86_400), date_of(day));
        assert_eq!(get(&app, &pat, &two).await.1["total_seconds"].as_f64().unwrap(), 360.0);
        // With the day after: the straddling 90 s pair counts too.
        let three = format!("/api/v1/authenticated/hours?start_date={}&end_date={}", date_of(day - 86_400), date_of(day + 86_400));
        assert_eq!(get(&app, &pat, &three).await.1["total_seconds"].as_f64().unwrap(), 450.0);

        // Bad dates are 400.
        for q in ["start_date=2024-13-01", "start_date=yesterday", "end_date=2024-1-1", "start_date=2024-05-02&end_date=2024-05-01"] {
            let (status, body) = get(&app, &pat, &format!("/api/v1/authenticated/hours?{q}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{q}");
            assert_eq!(body["error"], "invalid_request");
        }
        // Defaults: the last seven days up to today.
        let (_, default) = get(&app, &pat, "/api/v1/authenticated/hours").await;
        assert_eq!(default["end_date"], date_of(latchkey::store::now()));
        assert_eq!(default["start_date"], date_of(latchkey::store::now() - 7 * 86_400));
        assert_eq!(default["total_seconds"].as_f64().unwrap(), 450.0);
    }

    async fn dates_are_in_the_users_timezone(backend) {
        let app = spawn_app(&backend).await;
        let (user, key, pat) = coder(&app, "tz@example.com", "read").await;
        let mut profile = latchkey::domain::user::Profile { timezone: "Asia/Tokyo".into(), ..Default::default() };
        profile.name = user.name.clone();
        app.store.update_profile(&user.id, &profile, latchkey::store::now()).await.unwrap();
        // 15:00 UTC is midnight in Tokyo (UTC+9).
        let utc_midnight = midnight_utc(5);
        let tokyo_midnight = utc_midnight + 15 * 3600;
        let t = tokyo_midnight as f64;
        // 14:59 and 14:59:30 UTC belong to the previous Tokyo day; 15:00:00 onwards to the next.
        let items: Vec<Value> = [t - 60.0, t - 30.0, t, t + 60.0].iter().map(|&x| hb(x, "p", "coding")).collect();
        send_bulk(&app, &key, &items).await;
        let tokyo_date = jiff::Timestamp::from_second(tokyo_midnight).unwrap().to_zoned(jiff::tz::TimeZone::get("Asia/Tokyo").unwrap()).date();
        let previous = tokyo_date.yesterday().unwrap();
        let day = |d: jiff::civil::Date| format!("/api/v1/authenticated/hours?start_date={d}&end_date={d}");
        assert_eq!(get(&app, &pat, &day(tokyo_date)).await.1["total_seconds"].as_f64().unwrap(), 60.0);
        assert_eq!(get(&app, &pat, &day(previous)).await.1["total_seconds"].as_f64().unwrap(), 30.0);
        // Kathmandu is UTC+5:45: its midnight still falls on the 15-minute grid.
        profile.timezone = "Asia/Kathmandu".into();
        app.store.update_profile(&user.id, &profile, latchkey::store::now()).await.unwrap();
        let kathmandu = jiff::tz::TimeZone::get("Asia/Kathmandu").unwrap();
        let date = jiff::Timestamp::from_second(tokyo_midnight).unwrap().to_zoned(kathmandu).date();
        let (status, body) = get(&app, &pat, &day(date)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["total_seconds"].as_f64().unwrap(), 120.0, "all four heartbeats fall on one Kathmandu day: 30 + 30 + 60");
    }

    async fn streaks_count_days_with_fifteen_minutes_of_coding(backend) {
        let app = spawn_app(&backend).await;
        let (_, key, pat) = coder(&app, "streak@example.com", "read").await;
        // 16 minutes of coding: heartbeats every 60 s for 16 minutes.
        let session = |start: i64, category: &str| -> Vec<Value> { (0..=16).map(|i| hb((start + i * 60) as f64, "p", category)).collect() };
        for days_ago in [1, 2, 3] {
            send_bulk(&app, &key, &session(midnight_utc(days_ago) + 3600, "coding")).await;
        }
        // Five days ago also, but four days ago is a gap; and a browsing-only day does not count.
        send_bulk(&app, &key, &session(midnight_utc(5) + 3600, "coding")).await;
        send_bulk(&app, &key, &session(midnight_utc(4) + 3600, "browsing")).await;
        let (status, body) = get(&app, &pat, "/api/v1/authenticated/streak").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"streak_days": 3}), "today has nothing yet: the streak ends yesterday");
        // Ten minutes today is not enough to count today, and does not break the streak.
        send_bulk(&app, &key, &(0..=10).map(|i| hb((midnight_utc(0) + 60 + i * 60) as f64, "p", "coding")).collect::<Vec<_>>()).await;
        assert_eq!(get(&app, &pat, "/api/v1/authenticated/streak").await.1["streak_days"], 3);
        // Six more minutes make sixteen: today counts.
        send_bulk(&app, &key, &(11..=16).map(|i| hb((midnight_utc(0) + 60 + i * 60) as f64, "p", "coding")).collect::<Vec<_>>()).await;
        assert_eq!(get(&app, &pat, "/api/v1/authenticated/streak").await.1["streak_days"], 4);
    }

    async fn projects_languages_recency_and_archiving(backend) {
        let app = spawn_app(&backend).await;
        let (user, key, pat) = coder(&app, "proj@example.com", "read").await;
        let t = midnight_utc(2) as f64;
        let mut items = vec![hb(t, "alpha", "coding"), hb(t + 60.0, "alpha", "coding"), hb(t + 90.0, "beta", "coding"), hb(t + 100.0, "beta", "coding")];
        items[1]["language"] = json!("Python");
        send_bulk(&app, &key, &items).await;
        let (status, body) = get(&app, &pat, "/api/v1/authenticated/projects").await;
        assert_eq!(status, StatusCode::OK);
        let projects = body["projects"].as_array().unwrap();
        assert_eq!(projects.len(), 2);
        let beta = &projects[0];
        assert_eq!(beta["name"], "beta", "most recent first");
        assert_eq!(beta["total_seconds"].as_f64().unwrap(), 10.0, "the newest heartbeat counts 0");
        let alpha = &projects[1];
        assert_eq!(alpha["total_seconds"].as_f64().unwrap(), 90.0, "alpha's gaps: 60 + 30 to beta's first heartbeat");
        assert_eq!(alpha["languages"], json!(["Python", "Rust"]));
        assert_eq!(alpha["archived"], false);
        let keys: Vec<&str> = alpha.as_object().unwrap().keys().map(String::as_str).collect();
        for k in ["name", "total_seconds", "most_recent_heartbeat", "languages", "archived"] {
            assert!(keys.contains(&k), "{k}");
        }
        assert_eq!(alpha["most_recent_heartbeat"], latchkey::api::rfc3339(t as i64 + 60));

        app.store.set_project_archived(&user.id, "alpha", true, latchkey::store::now()).await.unwrap();
        let (_, body) = get(&app, &pat, "/api/v1/authenticated/projects").await;
        assert_eq!(body["projects"].as_array().unwrap().len(), 1);
        let (_, body) = get(&app, &pat, "/api/v1/authenticated/projects?include_archived=true").await;
        let all = body["projects"].as_array().unwrap();
        assert_eq!(all.len(), 2);
        assert!(all.iter().any(|p| p["name"] == "alpha" && p["archived"] == true));
        assert_eq!(get(&app, &pat, "/api/v1/authenticated/projects?include_archived=maybe").await.0, StatusCode::BAD_REQUEST);
    }

    async fn me_latest_and_api_keys_have_the_exact_shapes(backend) {
        let app = spawn_app(&backend).await;
        let (user, key, pat) = coder(&app, "shape@example.com", "read profile").await;
        app.store.set_trust_level(&user.id, latchkey::domain::user::TrustLevel::Green, latchkey::store::now()).await.unwrap();
        let (status, me) = get(&app, &pat, "/api/v1/authenticated/me").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            me,
            json!({"id": user.id, "emails": ["shape@example.com"], "slack_id": "", "github_username": "",
                   "trust_factor": {"trust_level": "green", "trust_value": 2}})
        );
        assert_eq!(get(&app, &pat, "/api/v1/authenticated/heartbeats/latest").await.0, StatusCode::NOT_FOUND);
        let t = midnight_utc(1) as f64 + 10.25;
        send_bulk(&app, &key, &[hb(t - 5.0, "old", "coding"), hb(t, "new", "debugging")]).await;
        let (_, latest) = get(&app, &pat, "/api/v1/authenticated/heartbeats/latest").await;
        let mut keys: Vec<&str> = latest.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["category", "created_at", "editor", "entity", "id", "language", "machine", "operating_system", "project", "time"]);
        assert_eq!(latest["project"], "new");
        assert_eq!(latest["category"], "debugging");
        assert_eq!(latest["time"].as_f64().unwrap(), t);
        assert_eq!(latest["editor"], "VS Code");
        let (_, keys) = get(&app, &pat, "/api/v1/authenticated/api_keys").await;
        assert_eq!(keys, json!({"token": key}));
    }

    async fn scopes_are_enforced_and_client_tokens_refused(backend) {
        let app = spawn_app(&backend).await;
        let (_, _, profile_only) = coder(&app, "sc1@example.com", "profile").await;
        let (_, _, project_read) = coder(&app, "sc2@example.com", "project:read").await;
        for path in ["hours", "streak", "projects", "heartbeats/latest", "api_keys"] {
            let (status, body) = get(&app, &profile_only, &format!("/api/v1/authenticated/{path}")).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
            assert_eq!(body["error"], "insufficient_scope");
        }
        assert_eq!(get(&app, &project_read, "/api/v1/authenticated/projects").await.0, StatusCode::OK);
        assert_eq!(get(&app, &project_read, "/api/v1/authenticated/hours").await.0, StatusCode::FORBIDDEN);
        assert_eq!(get(&app, &project_read, "/api/v1/authenticated/me").await.0, StatusCode::FORBIDDEN);

        // An OAuth token of a user works within its scopes; a client_credentials token never.
        let client = register(&app, true, "profile read").await;
        let browser = app.signed_in("oauth@example.com").await;
        let (code, verifier) = get_code(&app, &browser, &client, "profile").await;
        let (_, tokens) = exchange(&app, &client, &code, &verifier).await;
        let access = tokens["access_token"].as_str().unwrap();
        assert_eq!(get(&app, access, "/api/v1/authenticated/me").await.0, StatusCode::OK);
        assert_eq!(get(&app, access, "/api/v1/authenticated/hours").await.0, StatusCode::FORBIDDEN);
        let (_, cc, _) = token_request(&app, &client, &[("grant_type", "client_credentials"), ("scope", "read")]).await;
        let (status, body) = get(&app, cc["access_token"].as_str().unwrap(), "/api/v1/authenticated/hours").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "invalid_token");
        let (status, _) = get(&app, "lk_at_forged", "/api/v1/authenticated/me").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let anonymous = reqwest::Client::new().get(app.url("/api/v1/authenticated/me")).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    }

    async fn the_activity_page_and_settings_show_and_manage_activity(backend) {
        let app = spawn_app(&backend).await;
        let browser = app.signed_in("page@example.com").await;
        let user = app.store.user_by_email("page@example.com").await.unwrap().unwrap();
        let settings = app.get(&browser, "/settings").await;
        let key = readonly_value(&settings.body, "api_key").expect("API key shown on settings");
        assert!(uuid::Uuid::parse_str(&key).is_ok());
        let t = midnight_utc(0) as f64 + 60.0;
        let items: Vec<Value> = (0..=30).map(|i| hb(t + (i * 60) as f64, "shown-project", "coding")).collect();
        assert_eq!(send_bulk(&app, &key, &items).await.0, StatusCode::CREATED);

        let page = app.get(&browser, "/activity").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("shown-project"));
        assert!(page.body.contains("0 h 30 min"), "today's thirty minutes: {}", page.body);
        assert!(page.body.contains(&date_of(latchkey::store::now())));

        let archived = app.submit(&browser, "/settings", "/settings/projects", &[("project", "shown-project"), ("archived", "1")]).await;
        assert_eq!(archived.status, StatusCode::SEE_OTHER);
        assert!(app.store.projects(&user.id).await.unwrap()[0].archived);
        app.submit(&browser, "/settings", "/settings/projects", &[("project", "shown-project"), ("archived", "0")]).await;
        assert!(!app.store.projects(&user.id).await.unwrap()[0].archived);

        let regenerated = app.submit(&browser, "/settings", "/settings/api_key", &[]).await;
        assert_eq!(regenerated.status, StatusCode::SEE_OTHER);
        let new_key = app.store.api_key(&user.id).await.unwrap();
        assert_ne!(new_key, key);
        assert_eq!(send_bulk(&app, &key, &items).await.0, StatusCode::UNAUTHORIZED, "the old key is dead");
        assert_eq!(send_bulk(&app, &new_key, &items).await.0, StatusCode::CREATED);
    }
}
