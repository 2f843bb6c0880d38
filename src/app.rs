//! Application state, the router, and serving. Shared by `latchkey serve` and the tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, Response};
use axum::middleware;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use crate::http::ratelimit::Limits;
use crate::http::{self, CookieNames};
use crate::store::{Store, now};
use crate::{api, oauth, ops, web};

/// Everything a handler may need. Cheap to clone: one reference count (axum clones the state
/// for every request).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub config: Arc<Config>,
    pub store: Store,
    pub cookies: Arc<CookieNames>,
    pub limits: Limits,
    pub metrics: PrometheusHandle,
    /// Parsed ID-token signing keys.
    pub keys: oauth::keys::KeyCache,
    /// The OpenAPI document, made at its first request.
    pub openapi: std::sync::OnceLock<axum::body::Bytes>,
}

impl AppState {
    pub fn new(config: Config, store: Store) -> AppState {
        let limits = Limits::new(&config, &store);
        AppState(Arc::new(Shared {
            cookies: Arc::new(CookieNames::new(config.https())),
            config: Arc::new(config),
            store,
            limits,
            metrics: http::metrics::handle(),
            keys: oauth::keys::KeyCache::default(),
            openapi: Default::default(),
        }))
    }
}

/// Every JSON endpoint, each described by its handler's OpenAPI attribute.
pub fn json_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(ops::router())
        .merge(api::router().layer(middleware::from_fn(http::ratelimit::quota_headers)))
        .merge(oauth::api_router())
        .routes(routes!(api::openapi::openapi_json))
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every browser page.
pub fn page_routes() -> Router<AppState> {
    web::router().merge(oauth::page_router())
}

pub fn router(state: AppState) -> Router {
    // Browser pages: CSRF cookie, translated error pages, never cached.
    let pages = page_routes()
        .layer(middleware::from_fn_with_state(
            state.clone(),
            http::error::render_error_pages,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            http::csrf::ensure_cookie,
        ));
    let pages = http::headers::no_store(pages);

    let https = state.config.https();
    // Metrics need the matched route, so they wrap each route; everything else wraps the
    // router once (a layer on a `Router` wraps every route and costs each request a clone).
    let (json, _) = json_routes().split_for_parts();
    let json = json.method_not_allowed_fallback(|| async {
        http::error::json_error(
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "this endpoint does not accept that method",
        )
    });
    let routes = Router::new()
        .merge(pages)
        .merge(json)
        .with_state(state)
        .layer(middleware::from_fn(http::metrics::track));
    let stack = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, SequentialIds::default()))
        .layer(
            // Per-request spans and lines are debug-level (`RUST_LOG=…,latchkey::access=debug`):
            // at the default level a request does no logging work. A server error is always
            // logged, with its request ID.
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    // The path only: query strings can carry tokens (`/setup?token=…`).
                    tracing::debug_span!(target: "latchkey::access", "request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                .on_response(|res: &Response<_>, latency: Duration, _: &tracing::Span| {
                    if res.status().is_server_error() {
                        let id = res.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok());
                        tracing::error!(target: "latchkey::access", status = res.status().as_u16(), request_id = id.unwrap_or(""), "request failed");
                    } else {
                        tracing::debug!(target: "latchkey::access", status = res.status().as_u16(), ?latency, "finished");
                    }
                })
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a request handler panicked");
            axum::response::IntoResponse::into_response(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
        }))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .map_response(move |mut res: axum::response::Response| {
            http::headers::secure(res.headers_mut(), https);
            res
        })
        .service(routes);
    Router::new().fallback_service(stack)
}

/// Request IDs: a random prefix for this process and a counter (unique without a system call
/// per request).
#[derive(Clone)]
struct SequentialIds {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl Default for SequentialIds {
    fn default() -> Self {
        SequentialIds {
            prefix: uuid::Uuid::new_v4().simple().to_string()[..12].into(),
            next: Arc::default(),
        }
    }
}

impl MakeRequestId for SequentialIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n:x}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// Work that keeps the database, limiters and metrics tidy: expired sessions, stale limiter
/// keys, histogram samples.
fn spawn_housekeeping(state: &AppState) {
    let metrics = state.metrics.clone();
    let state = state.clone();
    tokio::spawn(async move {
        let period = Duration::from_secs(600);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tick.tick().await;
            if let Err(e) = state.store.purge_expired_sessions(now()).await {
                tracing::warn!(error = %e, "purging expired sessions failed");
            }
            if let Err(e) = state.store.purge_dpop_proofs(now()).await {
                tracing::warn!(error = %e, "purging old DPoP proofs failed");
            }
            state.limits.purge().await;
        }
    });
    // The latency histograms keep every sample until they are folded into their buckets; the
    // exporter does that only when asked, so ask often (otherwise memory grows with every
    // request between scrapes).
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            metrics.run_upkeep();
        }
    });
}

/// Serve on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The first node to start makes the ID-token signing key (an RSA key takes ~100 ms), in
    // the background so that the first requests are not kept waiting: signing and the JWKS
    // make it themselves if they come first, and the database keeps exactly one first key.
    let store = state.store.clone();
    tokio::spawn(async move {
        if let Err(e) = oauth::keys::ensure_key(&store).await {
            tracing::warn!(error = %format!("{e:#}"), "making the signing key failed; the first signature will try again");
        }
    });
    spawn_housekeeping(&state);
    crate::outbox::spawn(&state);
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
