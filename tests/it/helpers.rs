//! `spawn_app` and request helpers shared by every test.

use latchkey::app::{self, AppState};
use latchkey::config::{Config, Settings};
use latchkey::store::Store;
use reqwest::header::HeaderMap;
use reqwest::{Client, StatusCode};

/// Which database a test runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    /// PostgreSQL when `LATCHKEY_TEST_POSTGRES_URL` is set. When
    /// `LATCHKEY_TEST_REQUIRE_POSTGRES=1` (as in CI) a missing URL fails the test instead.
    pub fn postgres() -> Option<Backend> {
        match std::env::var("LATCHKEY_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ => {
                assert!(
                    std::env::var("LATCHKEY_TEST_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                    "LATCHKEY_TEST_REQUIRE_POSTGRES=1 but LATCHKEY_TEST_POSTGRES_URL is not set"
                );
                eprintln!("PostgreSQL run skipped: LATCHKEY_TEST_POSTGRES_URL is not set");
                None
            }
        }
    }
}

/// Define each test once; it runs as `NAME::sqlite` and `NAME::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($(async fn $name:ident($backend:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                async fn body($backend: $crate::helpers::Backend) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    body($crate::helpers::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(backend) = $crate::helpers::Backend::postgres() {
                        body(backend).await
                    }
                }
            }
        )*
    };
}

/// A database made for one test and removed after it.
pub struct TestDb {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    pub async fn new(backend: &Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("latchkey.db").display()
                );
                TestDb {
                    url,
                    cleanup: Cleanup::Sqlite(dir),
                }
            }
            Backend::Postgres(admin_url) => {
                use sqlx::Connection;
                let name = format!("lk_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(admin_url)
                    .await
                    .expect("connecting to LATCHKEY_TEST_POSTGRES_URL");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("creating a test database");
                let _ = conn.close().await;
                let mut url = url::Url::parse(admin_url).expect("postgres url");
                url.set_path(&format!("/{name}"));
                TestDb {
                    url: url.to_string(),
                    cleanup: Cleanup::Postgres {
                        admin_url: admin_url.clone(),
                        name,
                    },
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime; do the async clean-up on a thread of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    use sqlx::Connection;
                    let mut conn = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await
                    .ok()?;
                    Some(())
                })
            })
            .join();
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub store: Store,
    pub database_url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    // Dropped last: the server and pool go first.
    _db: Option<TestDb>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn spawn_app(backend: &Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Start the real app on 127.0.0.1 with a random port and a fresh database.
pub async fn spawn_app_with(backend: &Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDb::new(backend).await;
    start(db.url.clone(), Some(db), tweak).await
}

/// A second server on `of`'s database and with `of`'s issuer: another node behind the same
/// load balancer.
pub async fn spawn_node(of: &TestApp) -> TestApp {
    let issuer = of.base.clone();
    start(of.database_url.clone(), None, |s| s.issuer = Some(issuer)).await
}

async fn start(
    database_url: String,
    db: Option<TestDb>,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut settings = Settings {
        bind: Some(addr.to_string()),
        database_url: Some(database_url.clone()),
        ..Default::default()
    };
    tweak(&mut settings);
    let config = Config::resolve(settings).expect("test config");
    let store = Store::connect(&config.database_url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let state = AppState::new(config.clone(), store.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app::serve(listener, state, async {
        let _ = rx.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        store,
        database_url,
        shutdown: Some(tx),
        _db: db,
    }
}

/// The helpers of [`TestApp`] for a server started elsewhere (a `latchkey serve` process)
/// at `base`, with a store on its database.
pub async fn attach(base: String, database_url: &str) -> TestApp {
    TestApp {
        base,
        store: Store::connect(database_url).await.expect("connect"),
        database_url: database_url.to_owned(),
        shutdown: None,
        _db: None,
    }
}

/// A browser-like client: keeps cookies, does not follow redirects (tests look at them).
pub fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A browser-like client that opens a new connection for every request: for tests that send
/// bodies the server cuts off, after which a pooled connection would be dead.
pub fn browser_without_pool() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub async fn from(response: reqwest::Response) -> Page {
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap_or_default(),
        }
    }

    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The CSRF token a form on this page carries.
    pub fn csrf(&self) -> String {
        hidden_value(&self.body, "csrf").expect("page has a csrf field")
    }
}

/// The value of a read-only text input with `id` (secrets and keys shown on pages).
pub fn readonly_value(html: &str, id: &str) -> Option<String> {
    let marker = format!("id=\"{id}\" type=\"text\" readonly value=\"");
    let start = html.find(&marker)? + marker.len();
    Some(html[start..start + html[start..].find('"')?].to_owned())
}

/// The value of `<input type="hidden" name=NAME value=...>` in `html`.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, client: &Client, path: &str) -> Page {
        Page::from(client.get(self.url(path)).send().await.expect("GET")).await
    }

    /// Load `page_path`, then post `fields` (plus its CSRF token) to `action`.
    pub async fn submit(
        &self,
        client: &Client,
        page_path: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> Page {
        let page = self.get(client, page_path).await;
        let csrf = page.csrf();
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf", &csrf));
        Page::from(
            client
                .post(self.url(action))
                .form(&form)
                .send()
                .await
                .expect("POST"),
        )
        .await
    }

    pub async fn sign_up(&self, client: &Client, email: &str, password: &str) -> Page {
        self.submit(
            client,
            "/signup",
            "/signup",
            &[
                ("email", email),
                ("name", "Test User"),
                ("password", password),
            ],
        )
        .await
    }

    pub async fn sign_in(&self, client: &Client, email: &str, password: &str) -> Page {
        self.submit(
            client,
            "/login",
            "/login",
            &[("email", email), ("password", password)],
        )
        .await
    }

    /// A fresh client signed in as a new user with `email`.
    pub async fn signed_in(&self, email: &str) -> Client {
        let client = browser();
        let page = self.sign_up(&client, email, "correct horse battery").await;
        assert_eq!(
            page.status,
            StatusCode::SEE_OTHER,
            "sign-up failed: {}",
            page.body
        );
        client
    }

    /// A new user (admin or not) and a personal access token with `scopes` for them.
    pub async fn user_with_pat(
        &self,
        email: &str,
        scopes: &str,
        admin: bool,
    ) -> (latchkey::domain::user::User, String) {
        let now = latchkey::store::now();
        let user = self
            .store
            .create_user(
                latchkey::store::NewUser {
                    email: email.into(),
                    name: format!("Owner {email}"),
                    password_hash: None,
                    admin,
                },
                now,
            )
            .await
            .expect("create user");
        let scopes =
            latchkey::domain::scope::Scopes::parse(scopes, &latchkey::domain::scope::PAT_SCOPES)
                .unwrap();
        let (_, token) = self
            .store
            .create_pat(&user.id, "test", &scopes, None, now)
            .await
            .expect("pat");
        (user, token.expose().to_owned())
    }

    /// Send `body` as JSON with a bearer token; returns (status, JSON body or Null).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, serde_json::Value) {
        let mut request = reqwest::Client::new()
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn audit_kinds(&self) -> Vec<String> {
        self.store
            .recent_audit_events(1000)
            .await
            .expect("audit events")
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }
}

/// Rate limits count in one-minute windows: wait for a new one when this one is nearly over, so
/// a test's few requests all fall into the same window.
pub async fn fresh_rate_window() {
    let into = latchkey::store::now().rem_euclid(60);
    if into >= 54 {
        tokio::time::sleep(std::time::Duration::from_secs((61 - into) as u64)).await;
    }
}

/// A confidential app owned by a new user `owner_email`, made through the store.
pub async fn stored_confidential_app(store: &Store, owner_email: &str) -> latchkey::store::App {
    let now = latchkey::store::now();
    let owner = store
        .create_user(
            latchkey::store::NewUser {
                email: owner_email.into(),
                name: String::new(),
                password_hash: None,
                admin: false,
            },
            now,
        )
        .await
        .unwrap();
    let draft = latchkey::domain::app::AppInput {
        name: "A".into(),
        redirect_uris: vec!["https://a.example/cb".into()],
        confidential: true,
        ..Default::default()
    }
    .validate(3600)
    .unwrap();
    store.create_app(&owner.id, &draft, now).await.unwrap().0
}
