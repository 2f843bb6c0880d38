//! Security headers on every response (SPEC §6, §8).

use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use tower_http::set_header::SetResponseHeaderLayer;

/// No inline scripts and nothing from other hosts; pages cannot be framed. There is no
/// `form-action` directive: the consent form's answer redirects to the app's own URI.
pub const CSP: &str = "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
     img-src 'self' data:; style-src 'self'; script-src 'self'";

/// Set the security headers every response carries (replacing any a handler set).
pub fn secure(headers: &mut HeaderMap, https: bool) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
}

/// Pages carry CSRF tokens and personal data: never cache them.
pub fn no_store<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router.layer(SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    ))
}
