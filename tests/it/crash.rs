//! Acknowledged writes survive `kill -9`: a stream of token grants, revocations and heartbeat
//! ingests runs against a `latchkey serve` process, which is killed mid-stream and restarted on
//! the same database; everything that got a 2xx answer must still hold, and nothing half-done
//! may be left.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;

use crate::helpers::*;
use crate::oauth_helpers::*;
use crate::on_both_backends;
use crate::process::*;

/// What the server acknowledged before it died.
#[derive(Default)]
struct Acknowledged {
    live_tokens: Vec<String>,
    revoked_tokens: Vec<String>,
    heartbeat_ids: BTreeSet<String>,
    /// Requests that got no answer (cut off by the kill).
    unanswered: usize,
}

/// One worker: grant a token, revoke every other one, send five heartbeats; repeat until the
/// server stops answering.
async fn worker(
    base: String,
    client: Arc<RegisteredApp>,
    key: String,
    worker: u32,
    ack: Arc<Mutex<Acknowledged>>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for round in 0u32.. {
        let grant = http
            .post(format!("{base}/oauth/token"))
            .basic_auth(&client.client_id, client.secret.as_ref())
            .form(&[("grant_type", "client_credentials"), ("scope", "read")])
            .send()
            .await;
        let Ok(grant) = grant else { break };
        let Ok(body) = grant.json::<Value>().await else {
            break;
        };
        let token = body["access_token"].as_str().expect("a token").to_owned();
        if round % 2 == 1 {
            let revoked = http
                .post(format!("{base}/oauth/revoke"))
                .basic_auth(&client.client_id, client.secret.as_ref())
                .form(&[("token", token.as_str())])
                .send()
                .await;
            match revoked {
                Ok(r) if r.status() == StatusCode::OK => {
                    ack.lock().unwrap().revoked_tokens.push(token)
                }
                // Revocation not acknowledged: the token may be either way, so it is not checked.
                _ => break,
            }
        } else {
            ack.lock().unwrap().live_tokens.push(token);
        }

        let base_time = 1_700_000_000.0 + f64::from(worker) * 1_000_000.0 + f64::from(round) * 50.0;
        let items: Vec<Value> = (0..5)
            .map(|i| json!({"time": base_time + f64::from(i) * 7.25, "entity": format!("/w{worker}/f{i}.rs"), "type": "file", "project": format!("p{worker}"), "language": "Rust"}))
            .collect();
        let sent = http
            .post(format!("{base}/api/v1/users/current/heartbeats.bulk"))
            .bearer_auth(&key)
            .json(&items)
            .send()
            .await;
        let Ok(sent) = sent else { break };
        if sent.status() != StatusCode::CREATED {
            break;
        }
        let Ok(body) = sent.json::<Value>().await else {
            break;
        };
        let mut ack = ack.lock().unwrap();
        for item in body["responses"].as_array().unwrap() {
            assert_eq!(item[1], 201, "{item}");
            ack.heartbeat_ids
                .insert(item[0]["data"]["id"].as_str().unwrap().to_owned());
        }
    }
    ack.lock().unwrap().unanswered += 1;
}

on_both_backends! {
    async fn acknowledged_writes_survive_kill_dash_nine(backend) {
        let db = TestDb::new(&backend).await;
        let env = [("LATCHKEY_RATE_LIMITS", "off")];
        let mut server = Server::start(&db.url, &env).await;
        server.wait_for("latchkey is listening").await;
        let node = attach(server.url(""), &db.url).await;
        let client = Arc::new(register(&node, true, "read").await);
        let (user, _) = node.user_with_pat("crash@example.com", "read", false).await;
        let key = node.store.api_key(&user.id).await.unwrap();

        let ack = Arc::new(Mutex::new(Acknowledged::default()));
        let workers: Vec<_> = (0..4)
            .map(|w| tokio::spawn(worker(server.url(""), client.clone(), key.clone(), w, ack.clone())))
            .collect();
        // Let the stream run until it has done enough (on a busy machine that takes longer;
        // at most 30 seconds), then kill the process while requests are in flight.
        let enough = |a: &Acknowledged| {
            a.live_tokens.len() >= 10 && a.revoked_tokens.len() >= 10 && a.heartbeat_ids.len() >= 50
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        while !enough(&ack.lock().unwrap()) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server.kill().await;
        for w in workers {
            w.await.unwrap();
        }
        let ack = Arc::try_unwrap(ack).ok().unwrap().into_inner().unwrap();
        assert!(ack.live_tokens.len() >= 10 && ack.revoked_tokens.len() >= 10 && ack.heartbeat_ids.len() >= 50,
            "too little traffic before the kill: {} live, {} revoked, {} heartbeats",
            ack.live_tokens.len(), ack.revoked_tokens.len(), ack.heartbeat_ids.len());
        assert_eq!(ack.unanswered, 4, "every worker was cut off by the kill");

        // Restart on the same database.
        let server = Server::start(&db.url, &env).await;
        server.wait_for("latchkey is listening").await;
        let node = attach(server.url(""), &db.url).await;
        for token in &ack.live_tokens {
            assert_eq!(introspect(&node, &client, token).await["active"], true, "a granted token was lost");
        }
        for token in &ack.revoked_tokens {
            assert_eq!(introspect(&node, &client, token).await["active"], false, "a revocation was lost");
        }

        let rows = sqlx::query(sqlx::AssertSqlSafe("SELECT id, time_us, gap_us FROM heartbeats WHERE user_id = $1 ORDER BY time_us"))
            .bind(&user.id)
            .fetch_all(node.store.pool())
            .await
            .unwrap();
        let stored: HashMap<String, (i64, i64)> = rows
            .iter()
            .map(|r| (r.get::<String, _>("id"), (r.get::<i64, _>("time_us"), r.get::<i64, _>("gap_us"))))
            .collect();
        let missing = ack.heartbeat_ids.iter().filter(|id| !stored.contains_key(*id)).count();
        assert_eq!(missing, 0, "acknowledged heartbeats were lost");

        // Nothing half-done: every stored heartbeat's gap and the rollups agree with the
        // heartbeats themselves, as if each batch had been ingested whole or not at all.
        let mut times: Vec<(i64, i64)> = stored.values().copied().collect();
        times.sort();
        let mut expected_total = 0;
        for (i, (time, gap)) in times.iter().enumerate() {
            let want = times.get(i + 1).map_or(0, |(next, _)| (next - time).min(120_000_000));
            assert_eq!(*gap, want, "heartbeat at {time} has a stale gap");
            expected_total += want;
        }
        let buckets: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe("SELECT CAST(COALESCE(SUM(total_us), 0) AS BIGINT) FROM activity_buckets WHERE user_id = $1"))
            .bind(&user.id)
            .fetch_one(node.store.pool())
            .await
            .unwrap();
        assert_eq!(buckets, expected_total, "the rollups disagree with the heartbeats");
        eprintln!(
            "crash test ({backend:?}): acknowledged {} live tokens, {} revocations, {} heartbeats; all found intact ({} heartbeats stored)",
            ack.live_tokens.len(), ack.revoked_tokens.len(), ack.heartbeat_ids.len(), stored.len()
        );
    }
}
