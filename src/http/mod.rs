//! What every request needs: the request context (language, session, CSRF token, client),
//! CSRF-checked forms, error pages, security headers, rate limits and metrics.

pub mod api;
pub mod csrf;
pub mod ctx;
pub mod error;
pub mod headers;
pub mod metrics;
pub mod ratelimit;
pub mod resource;

pub use csrf::CsrfForm;
pub use ctx::Ctx;
pub use error::PageError;

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;

/// Cookie names; `__Host-` prefixed when latchkey is served over https, so that no other host
/// (not even a subdomain) can set them.
#[derive(Debug, Clone)]
pub struct CookieNames {
    pub session: &'static str,
    pub csrf: &'static str,
    pub lang: &'static str,
    pub secure: bool,
}

impl CookieNames {
    pub fn new(https: bool) -> Self {
        if https {
            CookieNames {
                session: "__Host-lk_session",
                csrf: "__Host-lk_csrf",
                lang: "__Host-lk_lang",
                secure: true,
            }
        } else {
            CookieNames {
                session: "lk_session",
                csrf: "lk_csrf",
                lang: "lk_lang",
                secure: false,
            }
        }
    }

    /// A cookie for the whole site: HttpOnly, SameSite=Lax, path `/`, Secure under https.
    pub fn build(
        &self,
        name: &'static str,
        value: String,
        max_age_secs: Option<i64>,
    ) -> axum_extra::extract::cookie::Cookie<'static> {
        let mut cookie = axum_extra::extract::cookie::Cookie::build((name, value))
            .http_only(true)
            .same_site(axum_extra::extract::cookie::SameSite::Lax)
            .path("/")
            .secure(self.secure);
        if let Some(secs) = max_age_secs {
            cookie = cookie.max_age(time::Duration::seconds(secs));
        }
        cookie.build()
    }
}

/// The client's address: the socket peer, or the first `X-Forwarded-For` entry when the operator
/// said latchkey runs behind a proxy it trusts.
pub fn client_ip(parts: &Parts, trust_proxy: bool) -> String {
    if trust_proxy
        && let Some(forwarded) = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        && let Some(ip) = forwarded
            .split(',')
            .next()
            .and_then(|s| s.trim().parse::<IpAddr>().ok())
    {
        return ip.to_string();
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_default()
}

/// `return_to` values are followed only when they are local paths: `/x`, never `//host`,
/// `/\host`, or anything with a scheme. Otherwise the answer is `/`.
pub fn safe_return_to(candidate: Option<&str>) -> String {
    match candidate {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && !path.chars().any(|c| c.is_control() || c == '\\')
                && path.len() <= 2048 =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_return_to;

    #[test]
    fn return_to_accepts_only_local_paths() {
        assert_eq!(safe_return_to(Some("/settings?x=1")), "/settings?x=1");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "evil",
            "/\t/evil",
            "",
        ] {
            assert_eq!(safe_return_to(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_return_to(None), "/");
    }
}
