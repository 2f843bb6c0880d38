//! The audit log: who did what, when, from where.

use serde_json::Value;
use sqlx::Row;

use super::sessions::truncate;
use super::{Store, new_id};

/// What happened. The string forms are stored and shown on the admin page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    SignIn,
    SignInFailed,
    SignOut,
    SignUp,
    Setup,
    PasswordChanged,
    UserCreated,
    AdminChanged,
    UserDisabled,
    TrustChanged,
    AppCreated,
    AppUpdated,
    AppDeleted,
    AppVerified,
    AppUnverified,
    SecretReset,
    TokensRevoked,
    PatCreated,
    PatRevoked,
    LeakRevoked,
    Consent,
    ConsentDenied,
    GrantRevoked,
    CodeReplay,
    RefreshReuse,
    ApiKeyRegenerated,
    ResourceServerChanged,
    TokenExchanged,
    TokenExchangeAllowed,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::SignIn => "sign_in",
            AuditKind::SignInFailed => "sign_in_failed",
            AuditKind::SignOut => "sign_out",
            AuditKind::SignUp => "sign_up",
            AuditKind::Setup => "setup",
            AuditKind::PasswordChanged => "password_changed",
            AuditKind::UserCreated => "user_created",
            AuditKind::AdminChanged => "admin_changed",
            AuditKind::UserDisabled => "user_disabled",
            AuditKind::TrustChanged => "trust_changed",
            AuditKind::AppCreated => "app_created",
            AuditKind::AppUpdated => "app_updated",
            AuditKind::AppDeleted => "app_deleted",
            AuditKind::AppVerified => "app_verified",
            AuditKind::AppUnverified => "app_unverified",
            AuditKind::SecretReset => "secret_reset",
            AuditKind::TokensRevoked => "tokens_revoked",
            AuditKind::PatCreated => "pat_created",
            AuditKind::PatRevoked => "pat_revoked",
            AuditKind::LeakRevoked => "leak_revoked",
            AuditKind::Consent => "consent",
            AuditKind::ConsentDenied => "consent_denied",
            AuditKind::GrantRevoked => "grant_revoked",
            AuditKind::CodeReplay => "code_replay",
            AuditKind::RefreshReuse => "refresh_reuse",
            AuditKind::ApiKeyRegenerated => "api_key_regenerated",
            AuditKind::ResourceServerChanged => "resource_server_changed",
            AuditKind::TokenExchanged => "token_exchanged",
            AuditKind::TokenExchangeAllowed => "token_exchange_allowed",
        }
    }
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    pub kind: AuditKind,
    pub actor_id: Option<&'a str>,
    /// What the event is about: an email, a client id, a user id.
    pub subject: &'a str,
    pub ip: &'a str,
    pub user_agent: &'a str,
    pub details: Value,
}

impl<'a> AuditEvent<'a> {
    pub fn new(kind: AuditKind, subject: &'a str) -> Self {
        AuditEvent {
            kind,
            actor_id: None,
            subject,
            ip: "",
            user_agent: "",
            details: Value::Object(Default::default()),
        }
    }

    /// Where the request came from.
    pub fn from(mut self, ctx: &'a crate::http::Ctx) -> Self {
        self.ip = &ctx.ip;
        self.user_agent = &ctx.user_agent;
        self
    }

    /// Who did it.
    pub fn by(mut self, actor_id: &'a str) -> Self {
        self.actor_id = Some(actor_id);
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// A stored event, as read back.
#[derive(Debug, Clone)]
pub struct StoredAuditEvent {
    pub at: i64,
    pub kind: String,
    pub actor_id: Option<String>,
    pub subject: String,
    pub ip: String,
    pub details: String,
}

impl Store {
    pub async fn audit(&self, event: AuditEvent<'_>, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO audit_events (id, at, kind, actor_id, subject, ip, user_agent, details) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(new_id())
        .bind(now)
        .bind(event.kind.as_str())
        .bind(event.actor_id)
        .bind(truncate(event.subject, 320))
        .bind(event.ip)
        .bind(truncate(event.user_agent, 512))
        .bind(event.details.to_string())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// The newest events first.
    pub async fn recent_audit_events(
        &self,
        limit: i64,
    ) -> Result<Vec<StoredAuditEvent>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT at, kind, actor_id, subject, ip, details FROM audit_events ORDER BY at DESC, id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredAuditEvent {
                    at: r.try_get("at")?,
                    kind: r.try_get("kind")?,
                    actor_id: r.try_get("actor_id")?,
                    subject: r.try_get("subject")?,
                    ip: r.try_get("ip")?,
                    details: r.try_get("details")?,
                })
            })
            .collect()
    }
}
