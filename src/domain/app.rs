//! OAuth apps (clients): the rules for their fields, with no I/O.

use std::net::IpAddr;

use url::{Host, Url};

use super::scope::{self, Scopes};
use super::user::FieldError;
use crate::config::MAX_TOKEN_TTL;

pub const MAX_REDIRECT_URIS: usize = 10;
pub const MAX_NAME_CHARS: usize = 100;
const MAX_URI_LEN: usize = 2000;

/// Schemes that would run code or read local data in a browser: never a redirect target.
const FORBIDDEN_SCHEMES: [&str; 7] = [
    "javascript",
    "data",
    "file",
    "vbscript",
    "about",
    "blob",
    "filesystem",
];

/// A `client_id`: 32 lowercase hex characters (128 random bits).
pub fn new_client_id() -> String {
    let mut bytes = [0u8; 16];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn is_client_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `host` is a loopback address (or `localhost`), where plain http is acceptable.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Why a redirect URI is refused; each is a message key.
fn redirect_uri_error(uri: &str, confidential: bool) -> Option<&'static str> {
    if uri.len() > MAX_URI_LEN || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("error-redirect-uri-invalid");
    }
    let Ok(url) = Url::parse(uri) else {
        return Some("error-redirect-uri-invalid");
    };
    if uri.contains('#') {
        return Some("error-redirect-uri-fragment");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Some("error-redirect-uri-userinfo");
    }
    match url.scheme() {
        "https" if url.host().is_some() => None,
        "http" if is_loopback(&url) => None,
        "http" => Some("error-redirect-uri-http"),
        "https" => Some("error-redirect-uri-invalid"),
        scheme if FORBIDDEN_SCHEMES.contains(&scheme) => Some("error-redirect-uri-scheme"),
        // RFC 8252 §7.1: private-use schemes are reverse domain names, and only native
        // (public) apps use them.
        scheme if !scheme.contains('.') => Some("error-redirect-uri-scheme"),
        _ if confidential => Some("error-redirect-uri-custom-confidential"),
        _ => None,
    }
}

/// The registered URI that `requested` names, compared exactly (RFC 6749 §3.1.2.3, RFC 9700
/// §2.1), except that for loopback IP redirects the port may differ (RFC 8252 §7.3): native
/// apps listen on whatever port is free. With no `requested`, the only registered URI is used.
pub fn match_redirect_uri<'a>(
    registered: &'a [String],
    requested: Option<&str>,
) -> Option<&'a str> {
    let Some(requested) = requested else {
        return match registered {
            [only] => Some(only.as_str()),
            _ => None,
        };
    };
    if let Some(exact) = registered.iter().find(|r| r.as_str() == requested) {
        return Some(exact);
    }
    let asked = Url::parse(requested).ok()?;
    let loopback_ip = matches!(asked.host(), Some(Host::Ipv4(ip)) if ip.is_loopback())
        || matches!(asked.host(), Some(Host::Ipv6(ip)) if ip.is_loopback());
    if asked.scheme() != "http" || !loopback_ip || requested.contains('#') {
        return None;
    }
    registered.iter().map(String::as_str).find(|r| {
        Url::parse(r).is_ok_and(|mut reg| {
            let mut asked = asked.clone();
            // Compare everything but the port.
            reg.set_port(None).is_ok() && asked.set_port(None).is_ok() && reg == asked
        })
    })
}

/// Whether latchkey may POST to `url` (empty: nothing to POST to): HTTPS, or HTTP on loopback,
/// without credentials or a fragment.
fn delivery_url_ok(url: &str) -> bool {
    url.is_empty()
        || (url.len() <= MAX_URI_LEN
            && !url.contains('#')
            && Url::parse(url).is_ok_and(|u| {
                u.username().is_empty()
                    && u.password().is_none()
                    && match u.scheme() {
                        "https" => u.host().is_some(),
                        "http" => is_loopback(&u),
                        _ => false,
                    }
            }))
}

/// What an owner submits for an app (from a form, the API or the CLI).
#[derive(Debug, Clone, Default)]
pub struct AppInput {
    pub name: String,
    pub homepage_url: String,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub confidential: bool,
    pub access_token_ttl: Option<u64>,
    pub issue_refresh: Option<bool>,
    /// The device authorization grant (RFC 8628); off unless asked for.
    pub device_flow: Option<bool>,
    /// Accept authorization requests only when pushed (RFC 9126 §6); off unless asked for.
    pub require_par: Option<bool>,
    /// Issue only DPoP-bound tokens (RFC 9449 §5.2); off unless asked for.
    pub dpop_bound: Option<bool>,
    /// Where the browser may go after a logout the app asked for (RP-Initiated Logout).
    pub post_logout_redirect_uris: Vec<String>,
    /// Where latchkey POSTs logout tokens (Back-Channel Logout); empty for none.
    pub backchannel_logout_uri: String,
    /// Where latchkey POSTs the app's events (webhooks); empty for none.
    pub webhook_url: String,
}

/// A validated app definition, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppDraft {
    pub name: String,
    pub homepage_url: String,
    pub redirect_uris: Vec<String>,
    pub scopes: Scopes,
    pub confidential: bool,
    pub access_token_ttl: i64,
    pub issue_refresh: bool,
    pub device_flow: bool,
    pub require_par: bool,
    pub dpop_bound: bool,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: String,
    pub webhook_url: String,
}

/// Split a textarea of redirect URIs, one per line, dropping blank lines.
pub fn split_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

impl AppInput {
    /// Check every field; all problems are reported at once, each against its field.
    pub fn validate(&self, default_ttl: u64) -> Result<AppDraft, Vec<FieldError>> {
        let mut errors = Vec::new();

        let name = self.name.trim();
        if name.is_empty() {
            errors.push(FieldError::new("name", "error-required"));
        } else if name.chars().count() > MAX_NAME_CHARS {
            errors.push(FieldError::new("name", "error-too-long"));
        } else if name.chars().any(char::is_control) {
            errors.push(FieldError::new("name", "error-invalid-characters"));
        }

        let homepage = self.homepage_url.trim();
        if !homepage.is_empty() {
            let ok = homepage.len() <= MAX_URI_LEN
                && Url::parse(homepage)
                    .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some());
            if !ok {
                errors.push(FieldError::new("homepage_url", "error-homepage-url"));
            }
        }

        let mut redirect_uris: Vec<String> = Vec::new();
        for uri in self
            .redirect_uris
            .iter()
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
        {
            if !redirect_uris.iter().any(|u| u == uri) {
                redirect_uris.push(uri.to_owned());
            }
        }
        if redirect_uris.is_empty() {
            errors.push(FieldError::new(
                "redirect_uris",
                "error-redirect-uri-required",
            ));
        } else if redirect_uris.len() > MAX_REDIRECT_URIS {
            errors.push(FieldError::new(
                "redirect_uris",
                "error-redirect-uri-too-many",
            ));
        } else if let Some(message) = redirect_uris
            .iter()
            .find_map(|u| redirect_uri_error(u, self.confidential))
        {
            errors.push(FieldError::new("redirect_uris", message));
        }

        let scopes = if self.scopes.iter().all(|s| s.trim().is_empty()) {
            Ok(Scopes::parse(scope::DEFAULT, &scope::KNOWN).unwrap_or_default())
        } else {
            Scopes::from_names(self.scopes.iter().map(String::as_str), &scope::KNOWN)
        };
        let scopes = scopes
            .map_err(|_| errors.push(FieldError::new("scopes", "error-scope-unknown")))
            .unwrap_or_default();

        let mut post_logout_redirect_uris: Vec<String> = Vec::new();
        for uri in self
            .post_logout_redirect_uris
            .iter()
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
        {
            if !post_logout_redirect_uris.iter().any(|u| u == uri) {
                post_logout_redirect_uris.push(uri.to_owned());
            }
        }
        if post_logout_redirect_uris.len() > MAX_REDIRECT_URIS {
            errors.push(FieldError::new(
                "post_logout_redirect_uris",
                "error-redirect-uri-too-many",
            ));
        } else if let Some(message) = post_logout_redirect_uris
            .iter()
            .find_map(|u| redirect_uri_error(u, self.confidential))
        {
            errors.push(FieldError::new("post_logout_redirect_uris", message));
        }

        // latchkey itself POSTs to these: HTTPS, or HTTP on this machine's loopback
        // (development).
        let backchannel = self.backchannel_logout_uri.trim();
        if !delivery_url_ok(backchannel) {
            errors.push(FieldError::new(
                "backchannel_logout_uri",
                "error-backchannel-logout-uri",
            ));
        }
        let webhook = self.webhook_url.trim();
        if !delivery_url_ok(webhook) {
            errors.push(FieldError::new(
                "webhook_url",
                "error-backchannel-logout-uri",
            ));
        }

        let ttl = self.access_token_ttl.unwrap_or(default_ttl);
        if ttl == 0 || ttl > MAX_TOKEN_TTL {
            errors.push(FieldError::new("access_token_ttl", "error-ttl-range"));
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(AppDraft {
            name: name.to_owned(),
            homepage_url: homepage.to_owned(),
            redirect_uris,
            scopes,
            confidential: self.confidential,
            access_token_ttl: i64::try_from(ttl).unwrap_or(i64::MAX),
            issue_refresh: self.issue_refresh.unwrap_or(true),
            device_flow: self.device_flow.unwrap_or(false),
            require_par: self.require_par.unwrap_or(false),
            dpop_bound: self.dpop_bound.unwrap_or(false),
            post_logout_redirect_uris,
            backchannel_logout_uri: backchannel.to_owned(),
            webhook_url: webhook.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(uris: &[&str], confidential: bool) -> AppInput {
        AppInput {
            name: "My App".into(),
            redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
            confidential,
            ..Default::default()
        }
    }

    fn error_of(uri: &str, confidential: bool) -> Option<&'static str> {
        input(&[uri], confidential)
            .validate(3600)
            .err()
            .and_then(|e| {
                e.into_iter()
                    .find(|e| e.field == "redirect_uris")
                    .map(|e| e.message)
            })
    }

    #[test]
    fn client_ids_are_32_lowercase_hex() {
        let id = new_client_id();
        assert!(is_client_id(&id), "{id}");
        assert_ne!(id, new_client_id());
        assert!(!is_client_id("ABCDEF0123456789abcdef0123456789"));
    }

    #[test]
    fn redirect_uris_follow_the_rules() {
        for ok in [
            "https://myapp.com/callback",
            "https://myapp.com/cb?x=1",
            "http://127.0.0.1:8765/cb",
            "http://[::1]/cb",
            "http://localhost:3000/auth",
        ] {
            assert_eq!(error_of(ok, true), None, "{ok}");
        }
        assert_eq!(error_of("com.example.app:/cb", false), None);
        assert_eq!(
            error_of("com.example.app:/cb", true),
            Some("error-redirect-uri-custom-confidential")
        );
        assert_eq!(
            error_of("http://myapp.com/cb", true),
            Some("error-redirect-uri-http")
        );
        assert_eq!(
            error_of("https://myapp.com/cb#frag", true),
            Some("error-redirect-uri-fragment")
        );
        assert_eq!(
            error_of("https://user:pw@myapp.com/cb", true),
            Some("error-redirect-uri-userinfo")
        );
        assert_eq!(
            error_of("/relative", true),
            Some("error-redirect-uri-invalid")
        );
        assert_eq!(
            error_of("javascript:alert(1)", false),
            Some("error-redirect-uri-scheme")
        );
        assert_eq!(
            error_of("myapp:/cb", false),
            Some("error-redirect-uri-scheme")
        );
        assert_eq!(
            error_of("https://my app.com/", true),
            Some("error-redirect-uri-invalid")
        );
    }

    #[test]
    fn apps_need_one_to_ten_uris_and_known_scopes() {
        let errs = input(&[], true).validate(3600).unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.message == "error-redirect-uri-required")
        );
        let many: Vec<String> = (0..11).map(|i| format!("https://a.example/{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(input(&refs, true).validate(3600).is_err());

        let mut i = input(&["https://a.example/cb", "https://a.example/cb"], true);
        i.scopes = vec!["read".into(), "nope".into()];
        let errs = i.validate(3600).unwrap_err();
        assert_eq!(errs, vec![FieldError::new("scopes", "error-scope-unknown")]);
        i.scopes = vec![];
        let draft = i.validate(3600).unwrap();
        assert_eq!(draft.redirect_uris.len(), 1, "duplicates dropped");
        assert_eq!(draft.scopes.to_string(), "profile", "default scope");
        assert_eq!(draft.access_token_ttl, 3600);
        assert!(draft.issue_refresh);
    }

    #[test]
    fn long_lived_tokens_up_to_sixteen_years() {
        let mut i = input(&["https://a.example/cb"], true);
        i.access_token_ttl = Some(16 * 365 * 24 * 3600);
        assert!(i.validate(3600).is_ok());
        i.access_token_ttl = Some(MAX_TOKEN_TTL + 1);
        assert!(i.validate(3600).is_err());
        i.access_token_ttl = Some(0);
        assert!(i.validate(3600).is_err());
    }

    #[test]
    fn redirect_uris_match_exactly_except_loopback_ports() {
        let reg = vec![
            "https://a.example/cb".to_owned(),
            "http://127.0.0.1/cb".to_owned(),
            "http://[::1]:8080/cb".to_owned(),
        ];
        assert_eq!(
            match_redirect_uri(&reg, Some("https://a.example/cb")),
            Some("https://a.example/cb")
        );
        for bad in [
            "https://a.example/cb/",
            "https://a.example/cb?x=1",
            "https://a.example/CB",
            "https://a.example:443/cbx",
            "https://a.example.evil.com/cb",
            "https://a.example/cb#x",
            "https://user@a.example/cb",
            "http://127.0.0.1/cb/../cb2",
            "http://127.0.0.1:9000/other",
            "http://localhost:9000/cb",
        ] {
            assert_eq!(match_redirect_uri(&reg, Some(bad)), None, "{bad}");
        }
        assert_eq!(
            match_redirect_uri(&reg, Some("http://127.0.0.1:53123/cb")),
            Some("http://127.0.0.1/cb")
        );
        assert_eq!(
            match_redirect_uri(&reg, Some("http://[::1]:1/cb")),
            Some("http://[::1]:8080/cb")
        );
        assert_eq!(
            match_redirect_uri(&reg, None),
            None,
            "several registered: the request must name one"
        );
        assert_eq!(
            match_redirect_uri(&reg[..1], None),
            Some("https://a.example/cb")
        );
    }

    #[test]
    fn textarea_lines() {
        assert_eq!(
            split_lines(" https://a/cb \r\n\r\nhttps://b/cb\n"),
            vec!["https://a/cb", "https://b/cb"]
        );
    }
}
