//! The real legacy `wakatime` CLI (13.1.0, from PyPI) sends heartbeats to latchkey; an app then
//! reads them back with an OAuth token. `.ci/run` installs the CLI and points
//! `LATCHKEY_TEST_WAKATIME` at it.

use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::helpers::*;
use crate::oauth_helpers::*;
use crate::on_both_backends;

fn wakatime_cli() -> Option<String> {
    match std::env::var("LATCHKEY_TEST_WAKATIME") {
        Ok(path) if !path.is_empty() => Some(path),
        _ => {
            assert!(
                std::env::var("LATCHKEY_TEST_REQUIRE_WAKATIME").as_deref() != Ok("1"),
                "LATCHKEY_TEST_REQUIRE_WAKATIME=1 but LATCHKEY_TEST_WAKATIME is not set"
            );
            eprintln!("wakatime CLI test skipped: LATCHKEY_TEST_WAKATIME is not set");
            None
        }
    }
}

on_both_backends! {
    async fn the_wakatime_cli_sends_heartbeats_an_app_reads_back(backend) {
        let Some(cli) = wakatime_cli() else { return };
        let app = spawn_app(&backend).await;
        let browser = app.signed_in("editor@example.com").await;
        let user = app.store.user_by_email("editor@example.com").await.unwrap().unwrap();
        let key = app.store.api_key(&user.id).await.unwrap();

        let home = tempfile::tempdir().unwrap();
        let source = home.path().join("main.rs");
        std::fs::write(&source, "fn main() {}\n").unwrap();
        let site = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wakatime");
        let base = (latchkey::store::now() - 86_400) as f64;
        for offset in [0.0, 30.0, 90.0] {
            let out = tokio::time::timeout(
                Duration::from_secs(60),
                tokio::process::Command::new(&cli)
                    .env("HOME", home.path())
                    .env("PYTHONPATH", site)
                    .args(["--key", &key])
                    .args(["--api-url", &app.url("/api/v1/users/current/heartbeats.bulk")])
                    .args(["--entity", source.to_str().unwrap()])
                    .args(["--time", &format!("{:.3}", base + offset)])
                    .args(["--project", "cli-demo", "--language", "Rust", "--category", "coding"])
                    .args(["--plugin", "vscode/1.80.0 vscode-wakatime/24.0.0", "--hostname", "cli-box", "--timeout", "10"])
                    .arg("--write")
                    .output(),
            )
            .await
            .expect("the CLI finishes")
            .expect("the CLI runs");
            assert!(out.status.success() || out.status.code() == Some(0), "wakatime exited {:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
        }
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM heartbeats WHERE user_id = $1")
            .bind(&user.id)
            .fetch_one(app.store.pool())
            .await
            .unwrap();
        let log = std::fs::read_to_string(home.path().join(".wakatime.log")).unwrap_or_default();
        assert_eq!(stored, 3, "the CLI's heartbeats arrived; its log:\n{log}");

        // An app reads them back through an OAuth token.
        let client = register(&app, true, "profile read").await;
        let (code, verifier) = get_code(&app, &browser, &client, "read").await;
        let (_, tokens) = exchange(&app, &client, &code, &verifier).await;
        let access = tokens["access_token"].as_str().unwrap();
        let (status, latest) = app.api(Method::GET, "/api/v1/authenticated/heartbeats/latest", access, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(latest["project"], "cli-demo");
        assert_eq!(latest["language"], "Rust");
        assert_eq!(latest["editor"], "VS Code");
        assert_eq!(latest["machine"], "cli-box");
        assert_eq!(latest["entity"], source.to_str().unwrap());
        let (_, projects) = app.api(Method::GET, "/api/v1/authenticated/projects", access, None).await;
        assert_eq!(projects["projects"][0]["name"], "cli-demo");
        assert!((projects["projects"][0]["total_seconds"].as_f64().unwrap() - 90.0).abs() < 0.01, "{projects}");
    }
}
