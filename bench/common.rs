//! Setup shared by the benchmarks that drive a `latchkey serve` process.

// Each benchmark includes this file and uses part of it.
#![allow(dead_code)]

use latchkey::domain::app::AppInput;
use latchkey::domain::scope::Scopes;
use latchkey::domain::secret::Secret;
use latchkey::domain::user::User;
use latchkey::store::{App, NewUser, Store, now};

/// A user who approved a confidential app (refresh tokens on) for `scopes`.
pub struct Approved {
    pub user: User,
    pub app: App,
    pub secret: Secret,
    pub grant_id: String,
    pub scopes: Scopes,
}

pub async fn approved_app(
    store: &Store,
    email: &str,
    redirect_uri: &str,
    scopes: &str,
) -> Approved {
    let t = now();
    let user = store
        .create_user(
            NewUser {
                email: email.into(),
                name: "Bench User".into(),
                password_hash: None,
                admin: false,
            },
            t,
        )
        .await
        .unwrap();
    let draft = AppInput {
        name: "Bench".into(),
        homepage_url: "https://bench.example".into(),
        redirect_uris: vec![redirect_uri.into()],
        scopes: scopes.split(' ').map(str::to_owned).collect(),
        confidential: true,
        access_token_ttl: None,
        issue_refresh: Some(true),
        ..Default::default()
    }
    .validate(3600)
    .unwrap();
    let (app, secret) = store.create_app(&user.id, &draft, t).await.unwrap();
    let scopes = Scopes::from_stored(scopes);
    let grant_id = store
        .upsert_grant(&user.id, &app.id, &scopes, t)
        .await
        .unwrap();
    Approved {
        user,
        app,
        secret: secret.unwrap(),
        grant_id,
        scopes,
    }
}

/// (VmRSS, VmHWM) of a process, in MiB.
pub fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A new PostgreSQL database named `prefix_<random>` on the server of `admin` (a URL); its name
/// and URL.
pub async fn postgres_database(admin: &str, prefix: &str) -> (String, String) {
    use sqlx::Connection;
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .expect("PostgreSQL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut url = url::Url::parse(admin).unwrap();
    url.set_path(&format!("/{name}"));
    (name, url.to_string())
}

pub async fn drop_database(admin: &str, name: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    Ok(())
}
