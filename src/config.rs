//! Settings: flags > `LATCHKEY_*` environment > optional TOML file (`--config`) > defaults.
//!
//! clap resolves flags and environment variables; the TOML file fills whatever neither gave.
//! [`Config::resolve`] validates the result so a bad setting fails at start with one line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;
use url::Url;

/// Every setting, as flags with `LATCHKEY_*` environment fallbacks. All optional here so that the
/// TOML file can fill the gaps; defaults are applied in [`Config::resolve`].
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// TOML file with settings (keys as the long flag names, with `_` for `-`).
    #[arg(long, global = true, env = "LATCHKEY_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, global = true, env = "LATCHKEY_BIND")]
    pub bind: Option<String>,

    /// Public base URL, used as the OAuth issuer [default: http://<bind>].
    #[arg(long, global = true, env = "LATCHKEY_ISSUER")]
    pub issuer: Option<String>,

    /// `sqlite://PATH?mode=rwc` or `postgres://…` [default: sqlite://data/latchkey.db?mode=rwc].
    #[arg(long, global = true, env = "LATCHKEY_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Whether anyone may sign up: `open` or `closed` [default: open].
    #[arg(long, global = true, env = "LATCHKEY_REGISTRATION")]
    pub registration: Option<String>,

    /// `on`, or `off` to disable every rate limit and quota (test suites and benchmarks only).
    #[arg(long, global = true, env = "LATCHKEY_RATE_LIMITS")]
    pub rate_limits: Option<String>,

    /// Sign-in attempts allowed per minute, per client IP and per account [default: 10].
    #[arg(long, global = true, env = "LATCHKEY_LOGIN_RATE_PER_MINUTE")]
    pub login_rate_per_minute: Option<u32>,

    /// Token, revocation, introspection and leak-report requests allowed per minute, per client
    /// IP and per confidential app [default: 600].
    #[arg(long, global = true, env = "LATCHKEY_TOKEN_RATE_PER_MINUTE")]
    pub token_rate_per_minute: Option<u32>,

    /// API requests allowed per minute and user, shared by all of the user's apps and tokens
    /// (resource API, userinfo, client API, heartbeats) [default: 300].
    #[arg(long, global = true, env = "LATCHKEY_API_RATE_PER_MINUTE")]
    pub api_rate_per_minute: Option<u32>,

    /// Log format: `pretty` or `json` [default: pretty].
    #[arg(long, global = true, env = "LATCHKEY_LOG")]
    pub log: Option<String>,

    /// Browser session lifetime in seconds [default: 1209600, two weeks].
    #[arg(long, global = true, env = "LATCHKEY_SESSION_TTL")]
    pub session_ttl: Option<u64>,

    /// Default access-token lifetime in seconds for new apps [default: 3600].
    #[arg(long, global = true, env = "LATCHKEY_ACCESS_TOKEN_TTL")]
    pub access_token_ttl: Option<u64>,

    /// Refresh-token lifetime in seconds [default: 2592000, thirty days].
    #[arg(long, global = true, env = "LATCHKEY_REFRESH_TOKEN_TTL")]
    pub refresh_token_ttl: Option<u64>,

    /// Authorization-code lifetime in seconds [default: 60].
    #[arg(long, global = true, env = "LATCHKEY_CODE_TTL")]
    pub code_ttl: Option<u64>,

    /// Trust `X-Forwarded-For` for the client IP (only behind a reverse proxy you run).
    #[arg(long, global = true, env = "LATCHKEY_TRUST_PROXY")]
    pub trust_proxy: Option<bool>,

    /// Dynamic client registration at `/oauth/register` (RFC 7591): `off`, `open` (anyone; the
    /// apps have no owner) or `token` (a personal access token with scope `apps`; the caller
    /// owns the app) [default: off].
    #[arg(long, global = true, env = "LATCHKEY_CLIENT_REGISTRATION")]
    pub client_registration: Option<String>,

    /// `on` to require a server nonce in every DPoP proof (RFC 9449 §8), `off` to accept proofs
    /// without one [default: off].
    #[arg(long, global = true, env = "LATCHKEY_DPOP_NONCE")]
    pub dpop_nonce: Option<String>,
}

/// Names of the environment variables latchkey reads; anything else under `LATCHKEY_` is warned about.
pub const KNOWN_ENV: &[&str] = &[
    "LATCHKEY_CONFIG",
    "LATCHKEY_BIND",
    "LATCHKEY_ISSUER",
    "LATCHKEY_DATABASE_URL",
    "LATCHKEY_REGISTRATION",
    "LATCHKEY_RATE_LIMITS",
    "LATCHKEY_LOGIN_RATE_PER_MINUTE",
    "LATCHKEY_TOKEN_RATE_PER_MINUTE",
    "LATCHKEY_API_RATE_PER_MINUTE",
    "LATCHKEY_LOG",
    "LATCHKEY_SESSION_TTL",
    "LATCHKEY_ACCESS_TOKEN_TTL",
    "LATCHKEY_REFRESH_TOKEN_TTL",
    "LATCHKEY_CODE_TTL",
    "LATCHKEY_TRUST_PROXY",
    "LATCHKEY_DPOP_NONCE",
    "LATCHKEY_CLIENT_REGISTRATION",
    // read by the test suite, not by the server
    "LATCHKEY_TEST_POSTGRES_URL",
    "LATCHKEY_TEST_REQUIRE_POSTGRES",
];

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/latchkey.db?mode=rwc";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The validated configuration every part of latchkey reads.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    /// Issuer without a trailing slash, e.g. `https://id.example.com`.
    pub issuer: String,
    pub database_url: String,
    pub registration_open: bool,
    pub rate_limits: bool,
    pub login_rate_per_minute: u32,
    pub token_rate_per_minute: u32,
    pub api_rate_per_minute: u32,
    pub log: LogFormat,
    pub session_ttl: Duration,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub code_ttl: Duration,
    pub trust_proxy: bool,
    /// Require a server nonce in DPoP proofs.
    pub dpop_nonce: bool,
    pub client_registration: ClientRegistration,
}

/// Who may register apps at `/oauth/register`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRegistration {
    Off,
    /// Anyone; the apps have no owner and are marked as registered by software.
    Open,
    /// With a personal access token with scope `apps`; the token's user owns the app.
    Token,
}

/// A setting that cannot be used; its `Display` is the one line printed at start.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting `{name}`: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub reason: String,
}

fn bad(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        name,
        reason: reason.into(),
    }
}

impl Settings {
    /// Fill every unset field from `file`.
    fn or(self, file: Settings) -> Settings {
        Settings {
            config: self.config,
            bind: self.bind.or(file.bind),
            issuer: self.issuer.or(file.issuer),
            database_url: self.database_url.or(file.database_url),
            registration: self.registration.or(file.registration),
            rate_limits: self.rate_limits.or(file.rate_limits),
            login_rate_per_minute: self.login_rate_per_minute.or(file.login_rate_per_minute),
            token_rate_per_minute: self.token_rate_per_minute.or(file.token_rate_per_minute),
            api_rate_per_minute: self.api_rate_per_minute.or(file.api_rate_per_minute),
            log: self.log.or(file.log),
            session_ttl: self.session_ttl.or(file.session_ttl),
            access_token_ttl: self.access_token_ttl.or(file.access_token_ttl),
            refresh_token_ttl: self.refresh_token_ttl.or(file.refresh_token_ttl),
            code_ttl: self.code_ttl.or(file.code_ttl),
            trust_proxy: self.trust_proxy.or(file.trust_proxy),
            dpop_nonce: self.dpop_nonce.or(file.dpop_nonce),
            client_registration: self.client_registration.or(file.client_registration),
        }
    }
}

fn ttl(
    name: &'static str,
    value: Option<u64>,
    default: u64,
    max: u64,
) -> Result<Duration, ConfigError> {
    let secs = value.unwrap_or(default);
    if secs == 0 || secs > max {
        return Err(bad(name, format!("must be between 1 and {max} seconds")));
    }
    Ok(Duration::from_secs(secs))
}

fn on_off(name: &'static str, value: Option<&str>, default: bool) -> Result<bool, ConfigError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("on" | "true" | "1" | "yes") => Ok(true),
        Some("off" | "false" | "0" | "no") => Ok(false),
        Some(other) => Err(bad(name, format!("expected `on` or `off`, got `{other}`"))),
    }
}

/// Sixteen years, the longest access-token lifetime an app may ask for (Hackatime-style tokens).
pub const MAX_TOKEN_TTL: u64 = 16 * 366 * 24 * 3600;

impl Config {
    /// Merge the TOML file (if any) under `settings` and validate everything.
    pub fn resolve(settings: Settings) -> Result<Config, ConfigError> {
        let settings = match &settings.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| bad("config", format!("cannot read {}: {e}", path.display())))?;
                let file: Settings = toml::from_str(&text)
                    .map_err(|e| bad("config", format!("{}: {}", path.display(), e.message())))?;
                settings.or(file)
            }
            None => settings,
        };

        let bind_text = settings.bind.as_deref().unwrap_or("127.0.0.1:8080");
        let bind: SocketAddr = bind_text.parse().map_err(|_| {
            bad(
                "bind",
                format!("`{bind_text}` is not an address like 127.0.0.1:8080"),
            )
        })?;

        let issuer = match settings.issuer {
            Some(issuer) => {
                let url =
                    Url::parse(&issuer).map_err(|e| bad("issuer", format!("`{issuer}`: {e}")))?;
                if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                    return Err(bad("issuer", "must be an http(s) URL with a host"));
                }
                if url.query().is_some() || url.fragment().is_some() {
                    return Err(bad(
                        "issuer",
                        "must not have a query or fragment (RFC 8414 §2)",
                    ));
                }
                issuer.trim_end_matches('/').to_owned()
            }
            None => format!("http://{bind}"),
        };

        let database_url = settings
            .database_url
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(bad(
                "database_url",
                "must start with sqlite: or postgres://",
            ));
        }

        let registration_open = match settings
            .registration
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("open") => true,
            Some("closed") => false,
            Some(other) => {
                return Err(bad(
                    "registration",
                    format!("expected `open` or `closed`, got `{other}`"),
                ));
            }
        };

        let log = match settings
            .log
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(bad(
                    "log",
                    format!("expected `json` or `pretty`, got `{other}`"),
                ));
            }
        };

        let per_minute = |name, value: Option<u32>, default| match value.unwrap_or(default) {
            0 => Err(bad(name, "must be at least 1")),
            n => Ok(n),
        };

        Ok(Config {
            bind,
            issuer,
            database_url,
            registration_open,
            rate_limits: on_off("rate_limits", settings.rate_limits.as_deref(), true)?,
            login_rate_per_minute: per_minute(
                "login_rate_per_minute",
                settings.login_rate_per_minute,
                10,
            )?,
            token_rate_per_minute: per_minute(
                "token_rate_per_minute",
                settings.token_rate_per_minute,
                600,
            )?,
            api_rate_per_minute: per_minute(
                "api_rate_per_minute",
                settings.api_rate_per_minute,
                300,
            )?,
            log,
            session_ttl: ttl(
                "session_ttl",
                settings.session_ttl,
                14 * 24 * 3600,
                366 * 24 * 3600,
            )?,
            access_token_ttl: ttl(
                "access_token_ttl",
                settings.access_token_ttl,
                3600,
                MAX_TOKEN_TTL,
            )?,
            refresh_token_ttl: ttl(
                "refresh_token_ttl",
                settings.refresh_token_ttl,
                30 * 24 * 3600,
                MAX_TOKEN_TTL,
            )?,
            code_ttl: ttl("code_ttl", settings.code_ttl, 60, 600)?,
            trust_proxy: settings.trust_proxy.unwrap_or(false),
            dpop_nonce: on_off("dpop_nonce", settings.dpop_nonce.as_deref(), false)?,
            client_registration: match settings
                .client_registration
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None | Some("off") => ClientRegistration::Off,
                Some("open") => ClientRegistration::Open,
                Some("token") => ClientRegistration::Token,
                Some(other) => {
                    return Err(bad(
                        "client_registration",
                        format!("expected `off`, `open` or `token`, got `{other}`"),
                    ));
                }
            },
        })
    }

    /// Whether cookies must be `Secure` and `__Host-` prefixed.
    pub fn https(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    /// Environment variables that look like latchkey settings but are not known.
    pub fn unknown_env() -> Vec<String> {
        std::env::vars()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("LATCHKEY_") && !KNOWN_ENV.contains(&k.as_str()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::resolve(Settings::default()).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.issuer, "http://127.0.0.1:8080");
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert!(c.registration_open && c.rate_limits);
        assert_eq!(c.code_ttl, Duration::from_secs(60));
    }

    #[test]
    fn bad_values_name_the_setting() {
        let e = Config::resolve(Settings {
            bind: Some("nope".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.name, "bind");
        let e = Config::resolve(Settings {
            issuer: Some("ftp://x".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.name, "issuer");
        let e = Config::resolve(Settings {
            registration: Some("maybe".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("registration"));
        let e = Config::resolve(Settings {
            database_url: Some("mysql://x".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.name, "database_url");
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latchkey.toml");
        std::fs::write(&path, "bind = \"127.0.0.1:9000\"\nregistration = \"closed\"\nissuer = \"https://id.example.com/\"\n").unwrap();
        let c = Config::resolve(Settings {
            config: Some(path.clone()),
            bind: Some("127.0.0.1:9100".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.bind.port(), 9100);
        assert!(!c.registration_open);
        assert_eq!(c.issuer, "https://id.example.com");
        assert!(c.https());

        std::fs::write(&path, "bnd = \"x\"\n").unwrap();
        let e = Config::resolve(Settings {
            config: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.name, "config");
        assert!(e.reason.contains("bnd"), "{e}");
    }
}
