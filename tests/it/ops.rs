//! Health, readiness and metrics.

use reqwest::StatusCode;

use crate::helpers::*;
use crate::on_both_backends;

on_both_backends! {
    async fn health_and_readiness(backend) {
        let app = spawn_app(&backend).await;
        let client = browser();
        let health = app.get(&client, "/healthz").await;
        assert_eq!(health.status, StatusCode::OK);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&health.body).unwrap()["status"], "ok");
        let ready = app.get(&client, "/readyz").await;
        assert_eq!(ready.status, StatusCode::OK);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&ready.body).unwrap()["database"], "ok");

        app.store.close().await;
        let down = app.get(&client, "/readyz").await;
        assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(app.get(&client, "/healthz").await.status, StatusCode::OK, "the process is still up");
    }

    async fn metrics_count_requests_by_route_and_status(backend) {
        let app = spawn_app(&backend).await;
        let client = browser();
        app.get(&client, "/login").await;
        app.get(&client, "/definitely/missing").await;
        let metrics = app.get(&client, "/metrics").await;
        assert_eq!(metrics.status, StatusCode::OK);
        assert!(metrics.headers["content-type"].to_str().unwrap().starts_with("text/plain"));
        let body = metrics.body;
        assert!(
            body.lines().any(|l| l.starts_with("http_requests_total{") && l.contains("route=\"/login\"") && l.contains("status=\"200\"")),
            "{body}"
        );
        assert!(body.lines().any(|l| l.starts_with("http_requests_total{") && l.contains("status=\"404\"")));
        assert!(body.contains("http_request_duration_seconds_bucket{"), "latency histogram");
    }
}
