//! The real `latchkey` binary: serve with its setup link, migrate, user administration,
//! configuration errors.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::helpers::*;
use crate::on_both_backends;

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

fn latchkey(db: &TestDb) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LATCHKEY_DATABASE_URL", &db.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Run a CLI command with `stdin`, returning (exit code, stdout, stderr).
async fn run(db: &TestDb, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = latchkey(db).args(args).spawn().expect("spawn latchkey");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the command finishes")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

on_both_backends! {
    async fn serve_prints_a_setup_link_that_creates_the_first_admin(backend) {
        let db = TestDb::new(&backend).await;
        let port = free_port();
        let mut child = latchkey(&db)
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .spawn()
            .expect("spawn serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut setup_url = None;
        let mut listening = false;
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(start) = line.find("http://") && line.contains("/setup?token=") {
                    let url = line[start..].split_whitespace().next().unwrap().to_owned();
                    setup_url = Some(url);
                }
                if line.contains("latchkey is listening") {
                    listening = true;
                }
                if listening && setup_url.is_some() {
                    break;
                }
            }
        })
        .await;
        assert!(found.is_ok(), "serve did not log a setup link and start listening in time");
        let setup_url = setup_url.unwrap();
        assert!(setup_url.starts_with(&format!("http://127.0.0.1:{port}/setup?token=lk_setup_")), "{setup_url}");

        let client = browser();
        let form = Page::from(client.get(&setup_url).send().await.unwrap()).await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        let done = client
            .post(format!("http://127.0.0.1:{port}/setup"))
            .form(&[
                ("csrf", form.csrf()),
                ("token", hidden_value(&form.body, "token").unwrap()),
                ("email", "admin@example.com".into()),
                ("password", "correct horse battery".into()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), StatusCode::SEE_OTHER);
        let signup = Page::from(client.get(format!("http://127.0.0.1:{port}/signup")).send().await.unwrap()).await;
        assert_eq!(signup.status, StatusCode::OK, "the sign-up page is served");
        child.kill().await.unwrap();

        let (code, out, _) = run(&db, &["user", "list", "--json"], "").await;
        assert_eq!(code, 0);
        let list: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(list["users"][0]["email"], "admin@example.com");
        assert_eq!(list["users"][0]["admin"], true);
    }

    async fn user_commands_print_json(backend) {
        let db = TestDb::new(&backend).await;
        let (code, out, err) = run(&db, &["user", "create", "--email", "ops@example.com", "--name", "Ops", "--admin", "--json"], "correct horse battery\n").await;
        assert_eq!(code, 0, "{err}");
        let user: Value = serde_json::from_str(out.trim()).expect("one JSON object");
        assert_eq!(user["email"], "ops@example.com");
        assert_eq!(user["name"], "Ops");
        assert_eq!(user["admin"], true);
        let id = user["id"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");

        let (code, _, err) = run(&db, &["user", "create", "--email", "ops@example.com", "--json"], "another password\n").await;
        assert_ne!(code, 0);
        assert!(err.contains("already exists"), "{err}");
        let (code, _, err) = run(&db, &["user", "create", "--email", "weak@example.com"], "short\n").await;
        assert_ne!(code, 0);
        assert!(err.contains("at least 8"), "{err}");

        let (code, out, _) = run(&db, &["user", "set-admin", "--email", "ops@example.com", "--remove", "--json"], "").await;
        assert_eq!(code, 0);
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["admin"], false);
        let (code, out, _) = run(&db, &["user", "set-trust", "--email", "ops@example.com", "--level", "green", "--json"], "").await;
        assert_eq!(code, 0);
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["trust_level"], "green");
        let (code, _, err) = run(&db, &["user", "set-trust", "--email", "ops@example.com", "--level", "purple"], "").await;
        assert_ne!(code, 0);
        assert!(err.contains("purple"), "{err}");
        let (code, _, err) = run(&db, &["user", "set-admin", "--email", "ghost@example.com"], "").await;
        assert_ne!(code, 0);
        assert!(err.contains("no user"), "{err}");

        // The created user can sign in on a server over the same database.
        let store = latchkey::store::Store::connect(&db.url).await.unwrap();
        let (user, hash) = store.user_credentials("ops@example.com").await.unwrap().unwrap();
        assert!(latchkey::domain::password::verify("correct horse battery", hash.as_deref().unwrap()));
        assert_eq!(user.trust_level, latchkey::domain::user::TrustLevel::Green);
        store.close().await;
    }

    async fn migrate_is_idempotent(backend) {
        let db = TestDb::new(&backend).await;
        for _ in 0..2 {
            let (code, out, err) = run(&db, &["migrate"], "").await;
            assert_eq!(code, 0, "{err}");
            assert_eq!(out.trim(), r#"{"migrated":true}"#);
        }
    }
}

#[tokio::test]
async fn invalid_settings_fail_at_start_with_one_line() {
    let db = TestDb::new(&Backend::Sqlite).await;
    for (var, value, name) in [
        ("LATCHKEY_BIND", "not-an-address", "bind"),
        ("LATCHKEY_ISSUER", "ftp://x", "issuer"),
        ("LATCHKEY_REGISTRATION", "sometimes", "registration"),
        ("LATCHKEY_LOG", "xml", "log"),
        ("LATCHKEY_RATE_LIMITS", "maybe", "rate_limits"),
    ] {
        let out = latchkey(&db)
            .env(var, value)
            .arg("serve")
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.starts_with(&format!("latchkey: invalid setting `{name}`")),
            "{err}"
        );
    }
}

#[tokio::test]
async fn flags_win_over_environment_and_the_toml_file() {
    let db = TestDb::new(&Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("latchkey.toml");
    std::fs::write(&file, "log = \"xml\"\n").unwrap();
    // The file's bad value is reported when nothing overrides it…
    let out = latchkey(&db)
        .env("LATCHKEY_CONFIG", &file)
        .arg("migrate")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`log`"));
    // …and the environment, then a flag, win over it.
    let out = latchkey(&db)
        .env("LATCHKEY_CONFIG", &file)
        .env("LATCHKEY_LOG", "json")
        .arg("migrate")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = latchkey(&db)
        .env("LATCHKEY_CONFIG", &file)
        .env("LATCHKEY_LOG", "xml")
        .args(["--log", "pretty", "migrate"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
