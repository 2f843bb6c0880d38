//! Prometheus metrics: request counts and latencies by route and status.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide recorder (metrics are global; every app in one process shares it).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    LATENCY_BUCKETS,
                )
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only if another recorder is installed, in which case ours just stays empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The counter and histogram of each route, method and status seen, so that a request costs
/// one map lookup rather than building labels and finding them in the registry.
type Handles = HashMap<String, Vec<(Method, u16, Counter, Histogram)>>;

fn handles_for(route: &str, method: &Method, status: u16) -> (Counter, Histogram) {
    static HANDLES: OnceLock<Mutex<Handles>> = OnceLock::new();
    let mut all = HANDLES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let seen = all
        .get(route)
        .and_then(|list| list.iter().find(|(m, s, _, _)| m == method && *s == status));
    if let Some((_, _, counter, histogram)) = seen {
        return (counter.clone(), histogram.clone());
    }
    let labels = [
        ("method", method.as_str().to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    let counter = metrics::counter!("http_requests_total", &labels);
    let histogram = metrics::histogram!("http_request_duration_seconds", &labels);
    all.entry(route.to_owned()).or_default().push((
        method.clone(),
        status,
        counter.clone(),
        histogram.clone(),
    ));
    (counter, histogram)
}

pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let response = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let (counter, histogram) = handles_for(route, &method, response.status().as_u16());
    counter.increment(1);
    histogram.record(started.elapsed().as_secs_f64());
    response
}
