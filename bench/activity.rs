//! Coding-activity benchmark: one user with 1,000,000 heartbeats over a year, sent through the
//! real ingest API in bulk requests of 1,000; then the latency of `hours` for the whole year and
//! of `projects`, through the real HTTP API. Runs on SQLite, and on PostgreSQL when
//! `LATCHKEY_BENCH_POSTGRES_URL` is set (a database is created for the run and dropped after).
//!
//!     cargo bench --bench activity
//!     LATCHKEY_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench activity
//!
//! `LATCHKEY_BENCH_HEARTBEATS` changes the count (default 1,000,000).

use std::time::{Duration, Instant};

use latchkey::app::{self, AppState};
use latchkey::config::{Config, Settings};
use latchkey::store::{NewUser, Store, now};
use serde_json::{Value, json};

const BULK: usize = 1000;
const PROJECTS: [&str; 8] = [
    "latchkey",
    "website",
    "infra",
    "notes",
    "cli",
    "mobile",
    "docs",
    "experiments",
];
const LANGUAGES: [&str; 5] = ["Rust", "TypeScript", "Python", "Markdown", "SQL"];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// `count` heartbeats over the 365 days before `end`: working sessions of heartbeats 20–40 s
/// apart, with breaks between sessions.
fn heartbeats(count: usize, end: i64) -> Vec<Value> {
    let start = end - 365 * 86_400;
    let per_day = count.div_ceil(365);
    let mut out = Vec::with_capacity(count);
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for day in 0..365 {
        let mut t = (start + day * 86_400 + 8 * 3600) as f64;
        for i in 0..per_day {
            if out.len() == count {
                return out;
            }
            t += 20.0 + (rand() % 20) as f64 + if i % 200 == 199 { 900.0 } else { 0.0 };
            let project = PROJECTS[(day as usize / 7 + i / 500) % PROJECTS.len()];
            out.push(json!({
                "time": t, "entity": format!("/home/dev/{project}/src/file{}.rs", rand() % 50),
                "type": "file", "category": if i % 10 == 0 { "debugging" } else { "coding" },
                "project": project, "language": LANGUAGES[(rand() % 5) as usize], "is_write": i % 3 == 0,
            }));
        }
    }
    out
}

async fn run(label: &str, database_url: &str, count: usize) {
    let store = Store::connect(database_url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Config::resolve(Settings {
        bind: Some(addr.to_string()),
        database_url: Some(database_url.to_owned()),
        rate_limits: Some("off".into()),
        ..Default::default()
    })
    .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app::serve(
        listener,
        AppState::new(config, store.clone()),
        async {
            let _ = rx.await;
        },
    ));
    let base = format!("http://{addr}");

    let user = store
        .create_user(
            NewUser {
                email: "bench@example.com".into(),
                name: "Bench".into(),
                password_hash: None,
                admin: false,
            },
            now(),
        )
        .await
        .unwrap();
    let key = store.api_key(&user.id).await.unwrap();
    let scopes =
        latchkey::domain::scope::Scopes::parse("read", &latchkey::domain::scope::PAT_SCOPES)
            .unwrap();
    let (_, pat) = store
        .create_pat(&user.id, "bench", &scopes, None, now())
        .await
        .unwrap();
    let http = reqwest::Client::new();

    let all = heartbeats(count, now());
    let started = Instant::now();
    let mut bulk_times = Vec::new();
    for chunk in all.chunks(BULK) {
        // The client's JSON encoding is not the server's time: encode before the clock starts,
        // stop it when the whole answer has arrived.
        let body = serde_json::to_vec(chunk).unwrap();
        let t = Instant::now();
        let r = http
            .post(format!("{base}/api/v1/users/current/heartbeats.bulk"))
            .bearer_auth(&key)
            .header("user-agent", "wakatime/13.1.0 (Linux-6.1-x86_64) Python3.11.7.final.0 vscode/1.80.0 vscode-wakatime/24.0.0")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.bytes().await.unwrap();
        bulk_times.push(t.elapsed());
    }
    let ingest_total = started.elapsed();
    bulk_times.sort();

    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let year_ago = today.checked_sub(jiff::Span::new().days(366)).unwrap();
    let hours_url =
        format!("{base}/api/v1/authenticated/hours?start_date={year_ago}&end_date={today}");
    let projects_url = format!("{base}/api/v1/authenticated/projects");
    let measure = async |url: &str| {
        let mut times = Vec::new();
        let mut last = Value::Null;
        for _ in 0..30 {
            let t = Instant::now();
            last = http
                .get(url)
                .bearer_auth(pat.expose())
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            times.push(t.elapsed());
        }
        times.sort();
        (times, last)
    };
    let (hours_times, hours) = measure(&hours_url).await;
    let (project_times, projects) = measure(&projects_url).await;

    println!("== {label}: {count} heartbeats of one user over 365 days");
    println!(
        "ingest: {} in bulk requests of {BULK}: total {:.1} s; per request p50 {} p99 {}",
        count,
        ingest_total.as_secs_f64(),
        ms(percentile(&bulk_times, 0.5)),
        ms(percentile(&bulk_times, 0.99))
    );
    println!(
        "hours (whole year, {:.1} h): p50 {} p99 {} over {} requests",
        hours["total_seconds"].as_f64().unwrap_or(0.0) / 3600.0,
        ms(percentile(&hours_times, 0.5)),
        ms(percentile(&hours_times, 0.99)),
        hours_times.len()
    );
    println!(
        "projects ({} projects): p50 {} p99 {} over {} requests",
        projects["projects"].as_array().map_or(0, Vec::len),
        ms(percentile(&project_times, 0.5)),
        ms(percentile(&project_times, 0.99)),
        project_times.len()
    );
    let _ = tx.send(());
    store.close().await;
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::var("LATCHKEY_BENCH_HEARTBEATS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    run("SQLite", &sqlite, count).await;

    if let Ok(admin) = std::env::var("LATCHKEY_BENCH_POSTGRES_URL") {
        use sqlx::Connection;
        let name = format!("lk_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("postgres");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&format!("/{name}"));
        run("PostgreSQL", url.as_str(), count).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
}
