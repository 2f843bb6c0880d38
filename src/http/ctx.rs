//! The request context every page handler takes.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;

use super::{PageError, client_ip};
use crate::app::AppState;
use crate::domain::secret::sha256_hex;
use crate::domain::user::User;
use crate::i18n::Lang;
use crate::store::now;

/// The CSRF cookie value minted by [`super::csrf::ensure_cookie`] for a first visit.
#[derive(Debug, Clone)]
pub struct FreshCsrfCookie(pub String);

pub struct LangChoice {
    pub code: &'static str,
    pub name: &'static str,
    pub current: bool,
    pub link: String,
}

#[derive(Debug, Clone)]
pub struct Ctx {
    pub lang: Lang,
    pub user: Option<User>,
    /// Hash of the session id, when signed in.
    pub session_hash: Option<String>,
    pub auth_time: Option<i64>,
    /// The token forms must echo back.
    pub csrf: String,
    /// Path and query of this request, for `return_to`.
    pub path: String,
    pub ip: String,
    pub user_agent: String,
    /// Whether the sign-up link is offered.
    pub registration_open: bool,
}

impl Ctx {
    pub fn t(&self, key: &str) -> String {
        self.lang.t(key)
    }

    pub fn t_args(&self, key: &str, args: &[(&'static str, &str)]) -> String {
        self.lang.t_args(key, args)
    }

    /// The signed-in user, or a redirect to the sign-in page that comes back here.
    pub fn require_user(&self) -> Result<&User, PageError> {
        self.user.as_ref().ok_or_else(|| PageError::SignInRequired {
            return_to: self.path.clone(),
        })
    }

    /// The language switcher's entries, each linking back to this page.
    pub fn lang_choices(&self) -> Vec<LangChoice> {
        Lang::ALL
            .iter()
            .map(|&lang| LangChoice {
                code: lang.code(),
                name: lang.native_name(),
                current: lang == self.lang,
                link: format!("/lang/{}?return_to={}", lang.code(), urlencode(&self.path)),
            })
            .collect()
    }
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The token for a CSRF cookie value: a hash, so the page never shows the cookie itself.
pub fn csrf_token(cookie_value: &str) -> String {
    sha256_hex(format!("latchkey-csrf:{cookie_value}").as_bytes())
}

/// The language a request asks for: the switcher's cookie, else `Accept-Language`.
pub fn request_lang(parts_headers: &axum::http::HeaderMap, jar: &CookieJar, cookie: &str) -> Lang {
    jar.get(cookie)
        .and_then(|c| Lang::from_code(c.value()))
        .unwrap_or_else(|| {
            Lang::negotiate(
                parts_headers
                    .get(axum::http::header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
            )
        })
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        let names = &state.cookies;
        let lang = request_lang(&parts.headers, &jar, names.lang);

        let mut user = None;
        let mut session_hash = None;
        let mut auth_time = None;
        if let Some(cookie) = jar.get(names.session)
            && let Some(session) = state.store.session(cookie.value(), now()).await?
        {
            session_hash = Some(session.id_hash);
            auth_time = Some(session.auth_time);
            user = Some(session.user);
        }

        let csrf_cookie = parts
            .extensions
            .get::<FreshCsrfCookie>()
            .map(|c| c.0.clone())
            .or_else(|| jar.get(names.csrf).map(|c| c.value().to_owned()))
            .unwrap_or_default();

        Ok(Ctx {
            lang,
            user,
            session_hash,
            auth_time,
            csrf: csrf_token(&csrf_cookie),
            path: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/".into()),
            ip: client_ip(parts, state.config.trust_proxy),
            user_agent: parts
                .headers
                .get(axum::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
            registration_open: state.config.registration_open,
        })
    }
}
