//! The real `latchkey` binary: serve with its setup link, migrate, user administration,
//! configuration errors.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::helpers::*;
use crate::on_both_backends;
use crate::process::*;

/// Run a CLI command with `stdin`, returning (exit code, stdout, stderr).
async fn run(db: &TestDb, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = latchkey(&db.url)
        .args(args)
        .spawn()
        .expect("spawn latchkey");
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

on_both_backends! {
    async fn the_first_start_serves_at_once_and_publishes_one_signing_key(backend) {
        // The signing key is made in the background; a JWKS request that comes first makes it
        // itself, so no client ever sees (and caches) an empty key set, and there is one key.
        let db = TestDb::new(&backend).await;
        let mut server = Server::start(&db.url, &[]).await;
        server.wait_for("latchkey is listening").await;
        let kids = |jwks: Value| -> Vec<String> {
            jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
        };
        let first = kids(reqwest::get(server.url("/oauth/jwks")).await.unwrap().json().await.unwrap());
        assert_eq!(first.len(), 1, "{first:?}");
        server.wait_for("generated the first ID-token signing key").await;
        let later = kids(reqwest::get(server.url("/oauth/jwks")).await.unwrap().json().await.unwrap());
        assert_eq!(later, first);
        server.kill().await;
    }

    async fn serve_prints_a_setup_link_that_creates_the_first_admin(backend) {
        let db = TestDb::new(&backend).await;
        // With the per-request lines on, to check they never carry a query string.
        let mut server = Server::start(&db.url, &[("RUST_LOG", "info,latchkey::access=debug")]).await;
        let log = server.wait_for("latchkey is listening").await;
        let setup_url = log
            .iter()
            .find_map(|line| {
                let start = line.find("http://")?;
                line.contains("/setup?token=").then(|| line[start..].split_whitespace().next().unwrap().to_owned())
            })
            .expect("a setup link in the log");
        let port = server.port;
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
        server.kill().await;
        // The request log names paths, never query strings: the token appears only once.
        let log = server.log();
        let token = setup_url.split("token=").nth(1).unwrap();
        assert!(log.iter().any(|l| l.contains("path=/setup")), "requests are logged: {log:#?}");
        assert_eq!(log.iter().filter(|l| l.contains(token)).count(), 1, "the setup token leaked into the log");

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

    async fn json_logs_carry_the_request_id(backend) {
        let db = TestDb::new(&backend).await;
        let mut server = Server::start(
            &db.url,
            &[("LATCHKEY_LOG", "json"), ("RUST_LOG", "info,sqlx=warn,latchkey::access=debug")],
        )
        .await;
        let startup = server.wait_for("latchkey is listening").await;
        for line in &startup {
            serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        }
        let response = reqwest::Client::new()
            .get(server.url("/healthz"))
            .header("x-request-id", "req-7f3a")
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["x-request-id"], "req-7f3a");
        let log = server.wait_for("req-7f3a").await;
        let line: Value = serde_json::from_str(log.iter().find(|l| l.contains("req-7f3a")).unwrap()).unwrap();
        assert_eq!(line["span"]["request_id"], "req-7f3a", "{line}");
        assert_eq!(line["span"]["path"], "/healthz");
        assert_eq!(line["fields"]["status"], 200);
        server.kill().await;
    }

    async fn client_and_pat_commands_print_the_api_objects(backend) {
        let db = TestDb::new(&backend).await;
        let (code, _, err) = run(&db, &["user", "create", "--email", "dev@example.com", "--name", "Dev"], "correct horse battery\n").await;
        assert_eq!(code, 0, "{err}");

        let (code, out, err) = run(
            &db,
            &[
                "client", "create", "--owner", "dev@example.com", "--name", "CLI App",
                "--redirect-uri", "https://cli.example/cb", "--redirect-uri", "http://127.0.0.1/cb",
                "--scopes", "profile read", "--homepage-url", "https://cli.example", "--json",
            ],
            "",
        )
        .await;
        assert_eq!(code, 0, "{err}");
        let client: Value = serde_json::from_str(out.trim()).unwrap();
        let mut keys: Vec<_> = client.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["client_id", "client_secret", "confidential", "created_at", "homepage_url", "id", "name", "redirect_uri", "redirect_uris", "scopes", "verified"]
        );
        assert_eq!(client["redirect_uris"], serde_json::json!(["https://cli.example/cb", "http://127.0.0.1/cb"]));
        assert_eq!(client["scopes"], serde_json::json!(["profile", "read"]));
        let client_id = client["client_id"].as_str().unwrap().to_owned();

        let (code, out, _) = run(&db, &["client", "create", "--owner", "dev@example.com", "--name", "Native", "--redirect-uri", "com.example.native:/cb", "--public", "--require-par", "--json"], "").await;
        assert_eq!(code, 0);
        let public: Value = serde_json::from_str(out.trim()).unwrap();
        assert!(public.get("client_secret").is_none());
        assert_eq!(public["confidential"], false);
        assert_eq!(public["require_pushed_authorization_requests"], true);
        assert!(client.get("require_pushed_authorization_requests").is_none());

        let (code, _, err) = run(&db, &["client", "create", "--owner", "dev@example.com", "--name", "Bad", "--redirect-uri", "http://evil.example/cb"], "").await;
        assert_ne!(code, 0);
        assert!(err.contains("redirect_uris"), "{err}");

        let (code, out, _) = run(&db, &["client", "verify", &client_id], "").await;
        assert_eq!(code, 0);
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["verified"], true);
        let (_, out, _) = run(&db, &["client", "list", "--json"], "").await;
        let list: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(list["clients"].as_array().unwrap().len(), 2);
        assert!(list["clients"].as_array().unwrap().iter().any(|c| c["client_id"] == client_id.as_str() && c["verified"] == true));
        assert!(list["clients"].as_array().unwrap().iter().all(|c| c.get("client_secret").is_none()));
        let (code, out, _) = run(&db, &["client", "unverify", &client_id], "").await;
        assert_eq!(code, 0);
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["verified"], false);

        let (code, out, err) = run(&db, &["pat", "create", "--email", "dev@example.com", "--scopes", "apps read", "--name", "ci", "--json"], "").await;
        assert_eq!(code, 0, "{err}");
        let pat: Value = serde_json::from_str(out.trim()).unwrap();
        assert!(pat["token"].as_str().unwrap().starts_with("lk_pat_"));
        assert_eq!(pat["scopes"], serde_json::json!(["read", "apps"]));
        assert!(uuid::Uuid::parse_str(pat["id"].as_str().unwrap()).is_ok());
        let (code, _, err) = run(&db, &["pat", "create", "--email", "dev@example.com", "--scopes", "openid"], "").await;
        assert_ne!(code, 0);
        assert!(err.contains("openid"), "{err}");

        let (code, _, _) = run(&db, &["client", "delete", &client_id], "").await;
        assert_eq!(code, 0);
        let (code, _, err) = run(&db, &["client", "delete", &client_id], "").await;
        assert_ne!(code, 0);
        assert!(err.contains("no such app"), "{err}");
    }

    async fn keys_and_token_commands(backend) {
        let db = TestDb::new(&backend).await;
        let (code, out, err) = run(&db, &["keys", "rotate", "--json"], "").await;
        assert_eq!(code, 0, "{err}");
        let first: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(first["alg"], "RS256");
        assert_eq!(first["active"], true);
        let (_, out, _) = run(&db, &["keys", "rotate", "--json"], "").await;
        let second: Value = serde_json::from_str(out.trim()).unwrap();
        assert_ne!(first["kid"], second["kid"]);
        let (_, out, _) = run(&db, &["keys", "list", "--json"], "").await;
        let list: Value = serde_json::from_str(out.trim()).unwrap();
        let keys = list["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.iter().filter(|k| k["active"] == true).count(), 1);
        assert!(keys.iter().any(|k| k["kid"] == second["kid"] && k["active"] == true));
        let (code, _, _) = run(&db, &["keys", "retire", first["kid"].as_str().unwrap()], "").await;
        assert_eq!(code, 0);
        let (code, _, err) = run(&db, &["keys", "retire", second["kid"].as_str().unwrap()], "").await;
        assert_ne!(code, 0, "the signing key cannot be retired");
        assert!(err.contains("signing key"), "{err}");

        // token revoke: issue a client_credentials token through the store, revoke it by CLI.
        let store = latchkey::store::Store::connect(&db.url).await.unwrap();
        let stored = stored_confidential_app(&store, "o@example.com").await;
        let scopes = latchkey::domain::scope::Scopes::parse("read", &latchkey::domain::scope::KNOWN).unwrap();
        let issued = store
            .issue_tokens(
                &latchkey::store::tokens::Issue { app_id: &stored.id, user_id: None, grant_id: None, scopes: &scopes, access_ttl: 3600, binding: &Default::default(), refresh_ttl: None },
                latchkey::store::now(),
            )
            .await
            .unwrap();
        let (code, out, err) = run(&db, &["token", "revoke"], &format!("{}\n", issued.access.expose())).await;
        assert_eq!(code, 0, "{err}");
        assert_eq!(serde_json::from_str::<Value>(out.trim()).unwrap()["revoked"], 1);
        let info = store.token_info(&issued.access, latchkey::store::now()).await.unwrap().unwrap();
        assert!(!info.active);
        let (code, _, _) = run(&db, &["token", "revoke", "lk_at_nonsense"], "").await;
        assert_ne!(code, 0);
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
        let out = latchkey(&db.url)
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
    let out = latchkey(&db.url)
        .env("LATCHKEY_CONFIG", &file)
        .arg("migrate")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`log`"));
    // …and the environment, then a flag, win over it.
    let out = latchkey(&db.url)
        .env("LATCHKEY_CONFIG", &file)
        .env("LATCHKEY_LOG", "json")
        .arg("migrate")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = latchkey(&db.url)
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
