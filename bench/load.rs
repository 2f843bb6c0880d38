//! Load test: a `latchkey serve` process (the release binary) held at 1,000 concurrent HTTP/1.1
//! connections, first on the resource API (`GET /api/v1/authenticated/me` with a user's OAuth
//! access token), then on the token endpoint (`client_credentials` with Basic authentication).
//! Every answer must be a 200 and the server's peak RSS must stay under 512 MiB; the run fails
//! otherwise. Reports requests per second, p50/p99 latency, and the server's RSS and peak RSS.
//!
//!     cargo bench --bench load                                   # SQLite, 30 s per phase
//!     cargo bench --bench load -- --seconds 5 --postgres URL     # also PostgreSQL, shorter
//!
//! Options: `--seconds N` (per phase, default 30), `--connections N` (default 1000),
//! `--postgres URL` (an admin URL; a database is created for the run and dropped after).
//! Rate limits stay on, with limits far above the load, so their counting is part of the cost.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use latchkey::store::tokens::Issue;
use latchkey::store::{Store, now};

mod common;
use common::{approved_app, drop_database, free_port, postgres_database, rss_mib};

/// Memory must stay bounded under load: the run fails if the server's peak RSS passes this.
const PEAK_RSS_LIMIT_MIB: f64 = 512.0;

struct Options {
    seconds: u64,
    connections: usize,
    postgres: Option<String>,
}

fn options() -> Options {
    let mut o = Options {
        seconds: 30,
        connections: 1000,
        postgres: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                o.seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seconds N")
            }
            "--connections" => {
                o.connections = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--connections N")
            }
            "--postgres" => o.postgres = args.next(),
            _ => {} // `cargo bench` adds `--bench`
        }
    }
    o
}

/// What one phase measured.
struct Phase {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    latencies_us: Vec<u32>,
    elapsed: Duration,
}

/// `connections` tasks, each on its own connection, sending `request()` back to back until
/// `seconds` have passed.
async fn phase(
    addr: std::net::SocketAddr,
    connections: usize,
    seconds: u64,
    request: Arc<dyn Fn() -> Request<Full<Bytes>> + Send + Sync>,
) -> Phase {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (stop, request) = (stop.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Phase {
                ok: 0,
                errors: 0,
                first_error: None,
                latencies_us: Vec::new(),
                elapsed: Duration::ZERO,
            };
            let fail = |mine: &mut Phase, why: String| {
                mine.errors += 1;
                mine.first_error.get_or_insert(why);
            };
            let stream = match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => s,
                Err(e) => {
                    fail(&mut mine, format!("connect: {e}"));
                    return mine;
                }
            };
            let _ = stream.set_nodelay(true);
            let (mut sender, conn) =
                match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                    Ok(pair) => pair,
                    Err(e) => {
                        fail(&mut mine, format!("handshake: {e}"));
                        return mine;
                    }
                };
            tokio::spawn(conn);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match sender.send_request(request()).await {
                    Ok(response) => {
                        let status = response.status();
                        let body = response.into_body().collect().await;
                        if status == 200 && body.is_ok() {
                            mine.ok += 1;
                            mine.latencies_us
                                .push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        } else {
                            fail(&mut mine, format!("status {status}"));
                        }
                    }
                    Err(e) => {
                        fail(&mut mine, format!("request: {e}"));
                        break;
                    }
                }
            }
            mine
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Phase {
        ok: 0,
        errors: 0,
        first_error: None,
        latencies_us: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let mine = task.await.expect("load task");
        all.ok += mine.ok;
        all.errors += mine.errors;
        if all.first_error.is_none() {
            all.first_error = mine.first_error;
        }
        all.latencies_us.extend(mine.latencies_us);
    }
    all.elapsed = started.elapsed();
    all.latencies_us.sort_unstable();
    all
}

/// Returns whether every request succeeded.
async fn run(label: &str, database_url: &str, o: &Options) -> bool {
    let store = Store::connect(database_url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let port = free_port();
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("LATCHKEY_DATABASE_URL", database_url)
        .env("LATCHKEY_API_RATE_PER_MINUTE", "100000000")
        .env("LATCHKEY_TOKEN_RATE_PER_MINUTE", "100000000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start latchkey serve");
    let pid = server.id().expect("server pid");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let ready = Instant::now();
    while reqwest::get(format!("http://{addr}/healthz"))
        .await
        .is_err()
    {
        assert!(
            ready.elapsed() < Duration::from_secs(30),
            "the server did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A user who authorized an app, and the app's credentials.
    let approved = approved_app(
        &store,
        &format!("load-{port}@example.com"),
        "https://load.example/cb",
        "profile read",
    )
    .await;
    let (app, secret, scopes) = (&approved.app, &approved.secret, &approved.scopes);
    let t = now();
    let issued = store
        .issue_tokens(
            &Issue {
                app_id: &app.id,
                user_id: Some(&approved.user.id),
                grant_id: Some(&approved.grant_id),
                scopes,
                access_ttl: 3600,
                refresh_ttl: None,
                binding: &Default::default(),
            },
            t,
        )
        .await
        .unwrap();
    let bearer = format!("Bearer {}", issued.access.expose());
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            app.client_id,
            secret.expose()
        ))
    );

    let (idle_rss, _) = rss_mib(pid);
    println!(
        "== {label}: {} connections, {} s per phase; server idle RSS {idle_rss:.1} MiB",
        o.connections, o.seconds
    );
    let host = addr.to_string();
    let me: Arc<dyn Fn() -> Request<Full<Bytes>> + Send + Sync> = {
        let host = host.clone();
        Arc::new(move || {
            Request::builder()
                .method(Method::GET)
                .uri("/api/v1/authenticated/me")
                .header("host", &host)
                .header("authorization", &bearer)
                .body(Full::new(Bytes::new()))
                .unwrap()
        })
    };
    let token: Arc<dyn Fn() -> Request<Full<Bytes>> + Send + Sync> = Arc::new(move || {
        Request::builder()
            .method(Method::POST)
            .uri("/oauth/token")
            .header("host", &host)
            .header("authorization", &basic)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from_static(
                b"grant_type=client_credentials&scope=read",
            )))
            .unwrap()
    });
    let mut clean = true;
    for (name, request) in [
        ("resource API GET /api/v1/authenticated/me", me),
        ("token endpoint client_credentials", token),
    ] {
        let p = phase(addr, o.connections, o.seconds, request).await;
        let pct = |q: f64| {
            let v = &p.latencies_us;
            if v.is_empty() {
                0.0
            } else {
                v[((v.len() - 1) as f64 * q) as usize] as f64 / 1000.0
            }
        };
        let (rss, peak) = rss_mib(pid);
        println!(
            "{name}: {} ok, {} errors, {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms; server RSS {rss:.1} MiB, peak {peak:.1} MiB",
            p.ok,
            p.errors,
            p.ok as f64 / p.elapsed.as_secs_f64(),
            pct(0.5),
            pct(0.99),
        );
        if let Some(e) = p.first_error {
            println!("   first error: {e}");
        }
        clean &= p.errors == 0 && p.ok > 0;
        if peak > PEAK_RSS_LIMIT_MIB {
            println!("   the server's memory grew past {PEAK_RSS_LIMIT_MIB} MiB");
            clean = false;
        }
    }
    let alive = server.try_wait().ok().flatten().is_none();
    if !alive {
        println!("   the server exited during the run");
    }
    let _ = server.kill().await;
    store.close().await;
    clean && alive
}

#[tokio::main]
async fn main() {
    let o = options();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("load.db").display());
    let mut clean = run("SQLite", &sqlite, &o).await;
    if let Some(admin) = &o.postgres {
        let (name, url) = postgres_database(admin, "lk_load").await;
        clean &= run("PostgreSQL", &url, &o).await;
        drop_database(admin, &name).await.unwrap();
    }
    if !clean {
        eprintln!("load test FAILED: some requests did not get a 200");
        std::process::exit(1);
    }
}
