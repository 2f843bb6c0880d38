//! The guide at `/docs`: every example in it is taken from the served page and run, as a reader
//! would paste it into a shell, against this live server; each must succeed.

use std::collections::BTreeMap;
use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::oauth_helpers::*;
use crate::on_both_backends;

/// The redirect URI the guide's example app registers.
const REDIRECT: &str = "http://127.0.0.1:9000/callback";
const USER: &str = "you@example.com";

struct Example {
    id: String,
    /// `success` (a 2xx or 3xx answer, or exit status 0) or an HTTP status.
    expect: String,
    command: String,
}

/// The examples of a guide page, in page order.
fn examples(html: &str) -> Vec<Example> {
    html.split("<pre class=\"example\"")
        .skip(1)
        .map(|block| {
            let attr = |name: &str| {
                let start = block.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                block[start..start + block[start..].find('"').unwrap()].to_owned()
            };
            let code = &block[block.find("<code>").unwrap() + 6..block.find("</code>").unwrap()];
            Example {
                id: attr("data-example"),
                expect: attr("data-expect"),
                command: unescape(code),
            }
        })
        .collect()
}

/// The reader of the guide: a signed-in person with a personal access token.
struct Reader<'a> {
    app: &'a TestApp,
    browser: reqwest::Client,
    pat: String,
}

impl Reader<'_> {
    /// A new app through the client API, as the guide creates it.
    async fn new_app(&self, confidential: bool, device_flow: bool) -> RegisteredApp {
        let (status, body) = self
            .app
            .api(
                Method::POST,
                "/oauth/clients",
                &self.pat,
                Some(json!({
                    "name": "My editor plugin",
                    "redirect_uri": REDIRECT,
                    "scopes": "openid profile email read offline_access",
                    "confidential": confidential,
                    "device_flow": device_flow,
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        RegisteredApp {
            id: body["id"].as_str().unwrap().to_owned(),
            client_id: body["client_id"].as_str().unwrap().to_owned(),
            secret: body["client_secret"].as_str().map(str::to_owned),
            redirect_uri: REDIRECT.to_owned(),
        }
    }

    /// The shell variables `command` uses, made fresh for it.
    async fn variables(&self, command: &str) -> BTreeMap<&'static str, String> {
        let uses = |name: &str| command.contains(&format!("${name}"));
        let mut vars = BTreeMap::new();
        vars.insert("PAT", self.pat.clone());
        let confidential = self.new_app(true, false).await;
        vars.insert("APP_ID", confidential.id.clone());
        vars.insert("CLIENT_ID", confidential.client_id.clone());
        vars.insert("CLIENT_SECRET", confidential.secret.clone().unwrap());
        let (_, challenge) = pkce_pair();
        vars.insert("CODE_CHALLENGE", challenge);
        let public = match uses("PUBLIC_CLIENT_ID") {
            true => Some(self.new_app(false, false).await),
            false => None,
        };
        if let Some(public) = &public {
            vars.insert("PUBLIC_CLIENT_ID", public.client_id.clone());
        }
        let scope = "openid profile email read offline_access";
        if uses("CODE") {
            // The code is for the app the command names.
            let client = public.as_ref().unwrap_or(&confidential);
            let (code, verifier) = get_code(self.app, &self.browser, client, scope).await;
            vars.insert("CODE", code);
            vars.insert("CODE_VERIFIER", verifier);
        }
        if uses("ID_TOKEN") {
            // The app registered where people may go after signing out.
            let (status, body) = self
                .app
                .api(
                    Method::PATCH,
                    &format!("/oauth/clients/{}", confidential.id),
                    &self.pat,
                    Some(
                        json!({"post_logout_redirect_uris": ["http://127.0.0.1:9000/signed-out"]}),
                    ),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let (code, verifier) = get_code(self.app, &self.browser, &confidential, scope).await;
            let (status, tokens) = exchange(self.app, &confidential, &code, &verifier).await;
            assert_eq!(status, StatusCode::OK, "{tokens}");
            vars.insert("ID_TOKEN", tokens["id_token"].as_str().unwrap().to_owned());
        }
        if uses("ACCESS_TOKEN") || uses("REFRESH_TOKEN") {
            let (code, verifier) = get_code(self.app, &self.browser, &confidential, scope).await;
            let (status, tokens) = exchange(self.app, &confidential, &code, &verifier).await;
            assert_eq!(status, StatusCode::OK, "{tokens}");
            vars.insert(
                "ACCESS_TOKEN",
                tokens["access_token"].as_str().unwrap().to_owned(),
            );
            vars.insert(
                "REFRESH_TOKEN",
                tokens["refresh_token"].as_str().unwrap().to_owned(),
            );
        }
        if uses("DEVICE_CLIENT_ID") {
            let device = self.new_app(false, true).await;
            vars.insert("DEVICE_CLIENT_ID", device.client_id.clone());
            if uses("DEVICE_CODE") {
                // The person has already typed the code and authorized the device.
                let started: Value = reqwest::Client::new()
                    .post(self.app.url("/oauth/device/code"))
                    .form(&[
                        ("client_id", device.client_id.as_str()),
                        ("scope", "profile read"),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let user_code = started["user_code"].as_str().unwrap();
                let done = approve(self.app, &self.browser, user_code, "allow").await;
                assert_eq!(done.status, StatusCode::OK, "{}", done.body);
                vars.insert(
                    "DEVICE_CODE",
                    started["device_code"].as_str().unwrap().to_owned(),
                );
            }
        }
        if uses("REQUEST_URI") {
            let response = reqwest::Client::new()
                .post(self.app.url("/oauth/par"))
                .basic_auth(&confidential.client_id, confidential.secret.as_ref())
                .form(&[
                    ("response_type", "code"),
                    ("redirect_uri", REDIRECT),
                    ("scope", "read"),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::CREATED);
            let pushed: Value = response.json().await.unwrap();
            vars.insert(
                "REQUEST_URI",
                pushed["request_uri"].as_str().unwrap().to_owned(),
            );
        }
        if uses("REGISTRATION_ACCESS_TOKEN") {
            let response = reqwest::Client::new()
                .post(self.app.url("/oauth/register"))
                .bearer_auth(&self.pat)
                .json(&json!({"client_name": "Guide", "redirect_uris": [REDIRECT]}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::CREATED);
            let info: Value = response.json().await.unwrap();
            for (var, field) in [
                ("REGISTRATION_ACCESS_TOKEN", "registration_access_token"),
                ("REGISTERED_CLIENT_ID", "client_id"),
            ] {
                vars.insert(var, info[field].as_str().unwrap().to_owned());
            }
        }
        if uses("API_KEY") {
            let (status, key) = self
                .app
                .api(
                    Method::GET,
                    "/api/v1/authenticated/api_keys",
                    &self.pat,
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{key}");
            vars.insert("API_KEY", key["token"].as_str().unwrap().to_owned());
        }
        vars
    }
}

/// Run `command` in bash as a reader would, with `curl` printing each answer's status on a
/// last line of its own; returns (exit status, output).
fn run(app: &TestApp, command: &str, vars: &BTreeMap<&'static str, String>) -> (i32, String) {
    let bin_dir = std::path::Path::new(crate::process::BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = format!(
        "set -euo pipefail\ncurl() {{ command curl -sS --max-time 20 -w '\\n%{{http_code}}\\n' \"$@\"; }}\n{command}\n"
    );
    // A directory of the example's own, for the files it makes (a DPoP key).
    let dir = tempfile::tempdir().expect("a scratch directory");
    let output = Command::new("bash")
        .current_dir(dir.path())
        .arg("-c")
        .arg(script)
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PATH", path)
        .env("LATCHKEY_DATABASE_URL", &app.database_url)
        .env("LATCHKEY_ISSUER", &app.base)
        .output()
        .expect("bash runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

on_both_backends! {
    async fn every_example_in_the_guide_runs_and_succeeds(backend) {
        // Registration with a personal access token, as the guide shows it.
        let app = spawn_app_with(&backend, |s| s.client_registration = Some("token".into())).await;
        let browser = app.signed_in(USER).await;
        let user = app.store.user_by_email(USER).await.unwrap().unwrap();
        let scopes = latchkey::domain::scope::Scopes::parse("apps profile read", &latchkey::domain::scope::PAT_SCOPES).unwrap();
        let (_, pat) = app.store.create_pat(&user.id, "guide", &scopes, None, latchkey::store::now()).await.unwrap();
        let reader = Reader { app: &app, browser, pat: pat.expose().to_owned() };
        // A heartbeat, so "the newest heartbeat" has one to show.
        let (_, key) = app.api(Method::GET, "/api/v1/authenticated/api_keys", &reader.pat, None).await;
        let sent = reqwest::Client::new()
            .post(app.url("/api/v1/users/current/heartbeats"))
            .bearer_auth(key["token"].as_str().unwrap())
            .json(&json!({"time": latchkey::store::now(), "entity": "README.md"}))
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), StatusCode::CREATED);

        let english = browser_page(&app, &reader.browser, "en").await;
        let russian = browser_page(&app, &reader.browser, "ru").await;
        let list = examples(&english);
        assert!(list.len() >= 30, "{} examples", list.len());
        let ids = |l: &[Example]| l.iter().map(|e| (e.id.clone(), e.command.clone())).collect::<Vec<_>>();
        assert_eq!(ids(&list), ids(&examples(&russian)), "both languages show the same commands");
        assert!(english.contains(REDIRECT));

        let mut ran = Vec::new();
        for example in &list {
            assert!(example.command.contains(&app.base) || !example.command.starts_with("curl"), "{}: the server's own issuer", example.id);
            let vars = reader.variables(&example.command).await;
            let (code, output) = run(&app, &example.command, &vars);
            assert_eq!(code, 0, "{} failed:\n{}\n---\n{output}", example.id, example.command);
            if example.command.starts_with("curl") {
                let status: u16 = output.trim_end().lines().last().unwrap().parse().unwrap_or_else(|_| panic!("{}: {output}", example.id));
                match example.expect.as_str() {
                    "success" => assert!((200..400).contains(&status), "{} answered {status}:\n{output}", example.id),
                    expected => assert_eq!(status.to_string(), expected, "{}:\n{output}", example.id),
                }
                // Plain calls answer JSON (`-i` ones show headers first).
                let body = output.trim_end().rsplit_once('\n').map(|(b, _)| b).unwrap_or("");
                if !example.command.contains("curl -i") && status != 204 {
                    serde_json::from_str::<Value>(body).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {body}", example.id));
                }
            }
            if example.id == "dpop" {
                // The script's token is bound, and the API took it with a proof.
                assert!(output.contains(r#""token_type":"DPoP""#), "{output}");
                assert!(output.contains(r#""trust_factor""#), "{output}");
            }
            ran.push(example.id.clone());
        }
        // The examples really exercised the flows: a few answers the guide promises.
        for id in ["logout", "dpop", "register", "register-read", "par-push", "par-authorize", "create-app", "token-form", "token-json", "token-public", "refresh", "device-poll", "heartbeat", "hours", "verify-cli", "pat-cli"] {
            assert!(ran.iter().any(|r| r == id), "{id} ran");
        }
    }
}

/// The guide in `lang`, as the reader's browser gets it.
async fn browser_page(app: &TestApp, browser: &reqwest::Client, lang: &str) -> String {
    let response = browser
        .get(app.url("/docs"))
        .header("accept-language", lang)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}
