//! Authorization codes, access tokens and refresh tokens.
//!
//! Every redemption is one conditional `UPDATE … WHERE used_at IS NULL` (or `rotated_at IS
//! NULL`), so of many concurrent requests for the same code or refresh token exactly one finds
//! the row, on SQLite and on PostgreSQL alike.

use serde::{Deserialize, Serialize};

use super::exec::{Done, Exec, Job, Param};
use super::gather::Gather;
use super::inserts::Value;
use super::reader::Columns;
use super::spends::{self, Spend};
use super::{Backend, Store, flag};
use crate::domain::scope::Scopes;
use crate::domain::seal;
use crate::domain::secret::{self, Secret, TokenKind};
use crate::domain::user::User;

/// What an authorization code was bound to when it was issued.
#[derive(Debug, Clone)]
pub struct CodeGrant {
    pub app_id: String,
    pub user_id: String,
    pub grant_id: String,
    pub redirect_uri: String,
    pub redirect_uri_given: bool,
    pub scopes: Scopes,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub auth_time: i64,
    /// The DPoP key the code is bound to (`dpop_jkt`, RFC 9449 §10).
    pub dpop_jkt: Option<String>,
    /// The resource the authorization request named (RFC 8707).
    pub resource: Option<String>,
}

/// What to issue.
#[derive(Debug, Clone)]
pub struct Issue<'a> {
    pub app_id: &'a str,
    pub user_id: Option<&'a str>,
    pub grant_id: Option<&'a str>,
    pub scopes: &'a Scopes,
    pub access_ttl: i64,
    /// `Some(lifetime)` to issue a refresh token too.
    pub refresh_ttl: Option<i64>,
    pub binding: &'a Binding,
}

/// What new tokens are bound to: a DPoP key (RFC 9449) and an audience (RFC 8707).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding {
    /// The key's thumbprint; the access token is bound to it.
    pub dpop_jkt: Option<String>,
    /// Bind the refresh token to that key too (public apps, RFC 9449 §5).
    pub bind_refresh: bool,
    /// The resource server the tokens are for; `None`: latchkey's own API.
    pub audience: Option<String>,
    /// Who acts for the user (a token exchange's `act` claim, JSON).
    pub act: Option<String>,
}

/// What to issue for a redeemed code (the code itself says for whom).
#[derive(Debug, Clone)]
pub struct IssueSpec {
    pub scopes: Scopes,
    pub access_ttl: i64,
    pub refresh_ttl: Option<i64>,
    pub binding: Binding,
}

impl IssueSpec {
    /// What to issue for the code behind `grant`.
    fn issue<'a>(&'a self, grant: &'a CodeGrant) -> Issue<'a> {
        Issue {
            app_id: &grant.app_id,
            user_id: Some(&grant.user_id),
            grant_id: Some(&grant.grant_id),
            scopes: &self.scopes,
            access_ttl: self.access_ttl,
            refresh_ttl: self.refresh_ttl,
            binding: &self.binding,
        }
    }
}

/// An access token (and maybe a refresh token) just issued.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access: Secret,
    pub access_expires_at: i64,
    pub refresh: Option<Secret>,
    pub scopes: Scopes,
    pub created_at: i64,
    /// The DPoP key the access token is bound to (`token_type: DPoP`).
    pub dpop_jkt: Option<String>,
    /// The resource server the tokens are for.
    pub audience: Option<String>,
    pub user_id: Option<String>,
    /// Who acts for the user (token exchange), as JSON.
    pub act: Option<String>,
}

/// The outcome of presenting an authorization code.
#[derive(Debug)]
pub enum CodeOutcome<E> {
    Issued(Box<(CodeGrant, Issued)>),
    /// The code's bindings did not match the request (the code is spent all the same).
    Refused(E),
    /// A second use: every token issued from the code was revoked.
    Replayed {
        revoked: u64,
    },
    /// Unknown or expired.
    Invalid,
}

/// The outcome of presenting a refresh token.
#[derive(Debug)]
pub enum RefreshOutcome {
    Rotated(Issued),
    /// A retry inside the grace window: the same successor pair as the first answer.
    Retried(Issued),
    /// A retired token presented after the grace window: the whole chain was revoked.
    Reused {
        family_id: String,
        user_id: Option<String>,
    },
    /// Asked for scopes the grant never had.
    ScopeTooWide,
    /// The token is bound to a DPoP key the request did not prove.
    KeyMismatch,
    /// Asked for a resource the grant is not for.
    OtherResource,
    Invalid,
}

/// A live token as seen by the resource side (userinfo, introspection, the APIs).
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub kind: String,
    pub app_id: String,
    pub client_id: String,
    pub user_id: Option<String>,
    pub grant_id: Option<String>,
    pub family_id: String,
    pub scopes: Scopes,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub active: bool,
    /// The DPoP key the token is bound to.
    pub dpop_jkt: Option<String>,
    /// The resource server the token is for (`None`: latchkey's own API).
    pub audience: Option<String>,
    /// Who acts for the user (token exchange), as JSON.
    pub act: Option<String>,
    /// The user's email (introspection's `username`); `None` for an app's own token.
    pub user_email: Option<String>,
}

/// How long a retried refresh gets the same successor instead of tripping reuse detection.
pub const REFRESH_GRACE_SECS: i64 = 10;

#[derive(Serialize, Deserialize)]
struct SealedPair {
    access: String,
    refresh: Option<String>,
    access_expires_at: i64,
    scopes: String,
    created_at: i64,
    #[serde(default)]
    dpop_jkt: Option<String>,
    #[serde(default)]
    audience: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
}

/// The key that seals a refresh token's successor: derived from the token itself (domain
/// separated from the stored SHA-256), so only someone who holds the old token can read it.
fn successor_key(refresh: &Secret) -> [u8; 32] {
    seal::derive_key("latchkey refresh successor v1", refresh.expose())
}

fn seal_pair(refresh: &Secret, pair: &Issued) -> Option<Vec<u8>> {
    let plain = serde_json::to_vec(&SealedPair {
        access: pair.access.expose().to_owned(),
        refresh: pair.refresh.as_ref().map(|r| r.expose().to_owned()),
        access_expires_at: pair.access_expires_at,
        scopes: pair.scopes.to_string(),
        created_at: pair.created_at,
        dpop_jkt: pair.dpop_jkt.clone(),
        audience: pair.audience.clone(),
        user_id: pair.user_id.clone(),
    })
    .ok()?;
    seal::seal(&successor_key(refresh), &plain)
}

fn unseal_pair(refresh: &Secret, sealed: &[u8]) -> Option<Issued> {
    let plain = seal::open(&successor_key(refresh), sealed)?;
    let pair: SealedPair = serde_json::from_slice(&plain).ok()?;
    Some(Issued {
        access: secret::parse(TokenKind::AccessToken, &pair.access)?,
        refresh: pair
            .refresh
            .and_then(|r| secret::parse(TokenKind::RefreshToken, &r)),
        access_expires_at: pair.access_expires_at,
        scopes: Scopes::from_stored(&pair.scopes),
        created_at: pair.created_at,
        dpop_jkt: pair.dpop_jkt,
        audience: pair.audience,
        user_id: pair.user_id,
        act: None,
    })
}

/// A new token family's ID. Time-ordered (UUIDv7), so each new family is added at the end of
/// the family index rather than on a random page of it. It never leaves the server.
fn new_family_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The insert of one token row, and of two (an access token with its refresh token, in one
/// statement).
macro_rules! insert_token {
    () => {
        "INSERT INTO tokens (token_hash, kind, app_id, user_id, grant_id, family_id, code_hash, \
         scopes, created_at, expires_at, dpop_jkt, audience, act) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    };
}
const INSERT_TOKEN: &str = insert_token!();
const INSERT_TOKENS: &str = concat!(
    insert_token!(),
    ", ($14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)"
);

/// New tokens, made but not yet written.
pub(super) struct Minted {
    pub(super) issued: Issued,
    pub(super) access_hash: String,
    /// The refresh token's hash and expiry.
    refresh: Option<(String, i64)>,
    scopes: String,
}

/// Make an access token (and a refresh token) as `issue` says.
pub(super) fn mint(issue: &Issue<'_>, now: i64) -> Minted {
    let access = secret::generate(TokenKind::AccessToken);
    let access_hash = access.hash();
    let refresh = issue.refresh_ttl.map(|ttl| {
        (
            secret::generate(TokenKind::RefreshToken),
            now.saturating_add(ttl),
        )
    });
    Minted {
        access_hash,
        refresh: refresh
            .as_ref()
            .map(|(token, expires)| (token.hash(), *expires)),
        scopes: issue.scopes.to_string(),
        issued: Issued {
            access,
            access_expires_at: now.saturating_add(issue.access_ttl),
            refresh: refresh.map(|(token, _)| token),
            scopes: issue.scopes.clone(),
            created_at: now,
            dpop_jkt: issue.binding.dpop_jkt.clone(),
            audience: issue.binding.audience.clone(),
            user_id: issue.user_id.map(str::to_owned),
            act: issue.binding.act.clone(),
        },
    }
}

impl Minted {
    /// The statement that writes its rows in `family_id`, and the statement's values.
    pub(super) fn insert<'a>(
        &'a self,
        issue: &'a Issue<'_>,
        family_id: &'a str,
        code_hash: Option<&'a str>,
    ) -> (&'static str, Vec<Param<'a>>) {
        let issued = &self.issued;
        let jkt = issue.binding.dpop_jkt.as_deref();
        let row = |hash: &'a str, kind: &'static str, expires_at: i64, jkt: Option<&'a str>| {
            [
                hash.into(),
                kind.into(),
                issue.app_id.into(),
                issue.user_id.into(),
                issue.grant_id.into(),
                family_id.into(),
                code_hash.into(),
                (&self.scopes).into(),
                issued.created_at.into(),
                expires_at.into(),
                jkt.into(),
                issue.binding.audience.as_deref().into(),
                issue.binding.act.as_deref().into(),
            ]
        };
        let access = row(&self.access_hash, "access", issued.access_expires_at, jkt);
        match &self.refresh {
            Some((hash, expires_at)) => {
                let refresh_jkt = jkt.filter(|_| issue.binding.bind_refresh);
                let refresh = row(hash, "refresh", *expires_at, refresh_jkt);
                (INSERT_TOKENS, [access, refresh].concat())
            }
            None => (INSERT_TOKEN, access.to_vec()),
        }
    }
}

/// Insert an access token (and a refresh token) in `family`.
pub(super) async fn insert_tokens<E: Exec>(
    exec: &mut E,
    issue: &Issue<'_>,
    family_id: &str,
    code_hash: Option<&str>,
    now: i64,
) -> Result<Issued, sqlx::Error> {
    let minted = mint(issue, now);
    let (sql, params) = minted.insert(issue, family_id, code_hash);
    exec.execute(sql, &params).await?;
    Ok(minted.issued)
}

/// The token columns [`token_info_from_row`] reads (with the user's `disabled` flag and `email`).
macro_rules! token_columns {
    () => {
        "SELECT t.kind, t.app_id, a.client_id, t.user_id, t.grant_id, t.family_id, t.scopes, \
         t.created_at AS token_created_at, t.expires_at, t.revoked_at, t.rotated_at, t.dpop_jkt, t.audience, t.act"
    };
}

/// The rest of [`Store::token_with_user`]'s select, after the token's columns.
macro_rules! token_with_user {
    () => {
        ", u.* FROM tokens t JOIN apps a ON a.id = t.app_id JOIN users u ON u.id = t.user_id"
    };
}

/// The rest of [`Store::token_info_by_hash`]'s select, after the token's columns.
macro_rules! token_info {
    () => {
        ", COALESCE(u.disabled, 0) AS disabled, u.email \
         FROM tokens t JOIN apps a ON a.id = t.app_id LEFT JOIN users u ON u.id = t.user_id"
    };
}

/// The gathered form of [`Store::token_with_user`] (see [`super::gather`]).
pub(super) fn gather_token_users() -> Gather {
    let select = concat!(token_columns!(), ", t.token_hash", token_with_user!());
    Gather::new(select, "t.token_hash", "token_hash")
}

/// The gathered form of [`Store::token_info_by_hash`].
pub(super) fn gather_token_infos() -> Gather {
    let select = concat!(token_columns!(), ", t.token_hash", token_info!());
    Gather::new(select, "t.token_hash", "token_hash")
}

/// The columns of an authorization code [`code_grant_from_row`] reads.
macro_rules! code_columns {
    () => {
        "app_id, user_id, grant_id, redirect_uri, redirect_uri_given, scopes, code_challenge, \
         nonce, auth_time, dpop_jkt, resource"
    };
}

/// A refresh token's own row with its state (no join: whether its user is enabled is the
/// rotating statement's to check).
macro_rules! refresh_columns {
    () => {
        "SELECT kind, app_id, user_id, grant_id, family_id, scopes, dpop_jkt, audience, \
         rotated_at, revoked_at, expires_at, token_hash FROM tokens"
    };
}

/// A refresh token by its hash, gathered (read before it is rotated, see [`super::spends`]).
pub(super) fn gather_refresh_tokens() -> Gather {
    Gather::new(refresh_columns!(), "token_hash", "token_hash")
}

/// A live refresh token, as read before it is rotated or as its rotation returned it.
struct LiveRefresh {
    app_id: String,
    user_id: Option<String>,
    grant_id: Option<String>,
    family_id: String,
    scopes: Scopes,
    dpop_jkt: Option<String>,
    audience: Option<String>,
}

fn live_refresh_from_row(row: &(impl Columns + ?Sized)) -> Result<LiveRefresh, sqlx::Error> {
    Ok(LiveRefresh {
        app_id: row.text("app_id")?,
        user_id: row.opt_text("user_id")?,
        grant_id: row.opt_text("grant_id")?,
        family_id: row.text("family_id")?,
        scopes: Scopes::from_stored(&row.text("scopes")?),
        dpop_jkt: row.opt_text("dpop_jkt")?,
        audience: row.opt_text("audience")?,
    })
}

/// A code with its state, by its hash, gathered (see [`super::gather`]).
pub(super) fn gather_codes() -> Gather {
    Gather::new(
        concat!(
            "SELECT ",
            code_columns!(),
            ", used_at, expires_at, code_hash FROM auth_codes"
        ),
        "code_hash",
        "code_hash",
    )
}

fn code_grant_from_row(row: &(impl Columns + ?Sized)) -> Result<CodeGrant, sqlx::Error> {
    Ok(CodeGrant {
        app_id: row.text("app_id")?,
        user_id: row.text("user_id")?,
        grant_id: row.text("grant_id")?,
        redirect_uri: row.text("redirect_uri")?,
        redirect_uri_given: row.int("redirect_uri_given")? != 0,
        scopes: Scopes::from_stored(&row.text("scopes")?),
        code_challenge: row.opt_text("code_challenge")?,
        nonce: row.opt_text("nonce")?,
        auth_time: row.int("auth_time")?,
        dpop_jkt: row.opt_text("dpop_jkt")?,
        resource: row.opt_text("resource")?,
    })
}

/// Whether a token's row is neither revoked, rotated nor expired at `now` (its user aside).
fn standing(row: &(impl Columns + ?Sized), now: i64) -> Result<bool, sqlx::Error> {
    Ok(row.opt_int("revoked_at")?.is_none()
        && row.opt_int("rotated_at")?.is_none()
        && row.opt_int("expires_at")?.is_none_or(|e| e > now))
}

fn token_info_from_row(row: &(impl Columns + ?Sized), now: i64) -> Result<TokenInfo, sqlx::Error> {
    Ok(TokenInfo {
        kind: row.text("kind")?,
        app_id: row.text("app_id")?,
        client_id: row.text("client_id")?,
        user_id: row.opt_text("user_id")?,
        grant_id: row.opt_text("grant_id")?,
        family_id: row.text("family_id")?,
        scopes: Scopes::from_stored(&row.text("scopes")?),
        created_at: row.int("token_created_at")?,
        expires_at: row.opt_int("expires_at")?,
        active: standing(row, now)? && row.int("disabled")? == 0,
        dpop_jkt: row.opt_text("dpop_jkt")?,
        audience: row.opt_text("audience")?,
        act: row.opt_text("act")?,
        user_email: row.opt_text("email")?,
    })
}

impl Store {
    /// Issue a single-use authorization code.
    pub async fn create_code(
        &self,
        grant: &CodeGrant,
        now: i64,
        ttl: i64,
    ) -> Result<Secret, sqlx::Error> {
        let code = secret::generate(TokenKind::AuthorizationCode);
        self.write(CreateCode {
            hash: code.hash(),
            grant: grant.clone(),
            now,
            ttl,
        })
        .await?;
        Ok(code)
    }

    /// Spend a code and, if `check` accepts its bindings, issue tokens, all in one transaction.
    /// A second use revokes everything the first one issued.
    pub async fn exchange_code<E: Send + 'static>(
        &self,
        code: &Secret,
        now: i64,
        check: impl FnOnce(&CodeGrant) -> Result<IssueSpec, E> + Send + 'static,
    ) -> Result<CodeOutcome<E>, sqlx::Error> {
        let hash = code.hash();
        if self.backend() == Backend::Postgres {
            return self.exchange_gathered(hash, now, check).await;
        }
        self.write(ExchangeCode { hash, now, check }).await
    }

    /// Redeem a live code together with other requests' codes (PostgreSQL, see
    /// [`super::spends`]). A code not live as read, or used, expired or withdrawn before the
    /// statement ran, goes through [`ExchangeCode`] (with `check`'s answer if it was asked),
    /// which then finds what happened.
    async fn exchange_gathered<X: Send + 'static>(
        &self,
        hash: String,
        now: i64,
        check: impl FnOnce(&CodeGrant) -> Result<IssueSpec, X> + Send + 'static,
    ) -> Result<CodeOutcome<X>, sqlx::Error> {
        let sql = concat!(
            "SELECT ",
            code_columns!(),
            ", used_at, expires_at FROM auth_codes WHERE code_hash = $1"
        );
        let live = self
            .lookup_gathered(&self.codes, sql, &hash, |row| {
                let live = row.opt_int("used_at")?.is_none() && row.int("expires_at")? > now;
                live.then(|| code_grant_from_row(row)).transpose()
            })
            .await?
            .flatten();
        let Some(grant) = live else {
            return self.write(ExchangeCode { hash, now, check }).await;
        };
        let spec = match check(&grant) {
            Ok(spec) => spec,
            // The code is spent all the same.
            Err(e) => {
                let check = move |_: &CodeGrant| Err(e);
                return self.write(ExchangeCode { hash, now, check }).await;
            }
        };
        let issue = spec.issue(&grant);
        let minted = mint(&issue, now);
        let family = new_family_id();
        let (_, rows) = minted.insert(&issue, &family, Some(&hash));
        let spend = Spend {
            kind: &spends::REDEMPTION,
            old: hash.clone(),
            values: vec![Value::Int(now)],
            rows: rows.iter().map(Value::from).collect(),
            new_hash: minted.access_hash.clone(),
        };
        if self.spends.spend(&self.pool, spend).await {
            return Ok(CodeOutcome::Issued(Box::new((grant, minted.issued))));
        }
        let check = move |_: &CodeGrant| Ok(spec);
        self.write(ExchangeCode { hash, now, check }).await
    }

    /// Issue tokens outside the code flow (client credentials).
    pub async fn issue_tokens(&self, issue: &Issue<'_>, now: i64) -> Result<Issued, sqlx::Error> {
        self.issue_in_family(issue, None, now).await
    }

    /// Issue tokens in `family` (a token exchange's, so they are revoked with the token they
    /// came from), or in a new one.
    pub async fn issue_in_family(
        &self,
        issue: &Issue<'_>,
        family: Option<&str>,
        now: i64,
    ) -> Result<Issued, sqlx::Error> {
        self.write(IssueTokens {
            family: family.map(str::to_owned),
            app_id: issue.app_id.to_owned(),
            user_id: issue.user_id.map(str::to_owned),
            grant_id: issue.grant_id.map(str::to_owned),
            scopes: issue.scopes.clone(),
            access_ttl: issue.access_ttl,
            refresh_ttl: issue.refresh_ttl,
            binding: issue.binding.clone(),
            now,
        })
        .await
    }

    /// Rotate a refresh token as `rotation` says.
    pub async fn refresh(
        &self,
        refresh: &Secret,
        rotation: Rotation,
        now: i64,
    ) -> Result<RefreshOutcome, sqlx::Error> {
        if self.backend() == Backend::Postgres
            && let Some(outcome) = self.refresh_gathered(refresh, &rotation, now).await?
        {
            return Ok(outcome);
        }
        self.write(Refresh {
            refresh: refresh.clone(),
            rotation,
            now,
        })
        .await
    }

    /// Rotate a live refresh token together with other requests' rotations (PostgreSQL, see
    /// [`super::spends`]). `None` when the token is not live as read, or was rotated,
    /// revoked or expired before the statement ran: [`Refresh`] then decides.
    async fn refresh_gathered(
        &self,
        refresh: &Secret,
        rotation: &Rotation,
        now: i64,
    ) -> Result<Option<RefreshOutcome>, sqlx::Error> {
        let hash = refresh.hash();
        let sql = concat!(refresh_columns!(), " WHERE token_hash = $1");
        let live = self
            .lookup_gathered(&self.refresh_tokens, sql, &hash, |row| {
                let live = row.text("kind")? == "refresh" && standing(row, now)?;
                live.then(|| live_refresh_from_row(row)).transpose()
            })
            .await?
            .flatten();
        let Some(token) = live else {
            return Ok(None);
        };
        let (scopes, binding) = match token.successor_terms(rotation) {
            Ok(terms) => terms,
            Err(refused) => return Ok(Some(*refused)),
        };
        let issue = token.successor(rotation, &scopes, &binding);
        let minted = mint(&issue, now);
        let Some(successor) = seal_pair(refresh, &minted.issued) else {
            return Ok(None);
        };
        let (_, rows) = minted.insert(&issue, &token.family_id, None);
        let spend = Spend {
            kind: &spends::ROTATION,
            old: hash,
            values: vec![Value::Blob(successor), Value::Int(now)],
            rows: rows.iter().map(Value::from).collect(),
            new_hash: minted.access_hash.clone(),
        };
        let rotated = self.spends.spend(&self.pool, spend).await;
        Ok(rotated.then_some(RefreshOutcome::Rotated(minted.issued)))
    }

    /// Any token (access or refresh) by its value, whatever its state.
    pub async fn token_info(
        &self,
        token: &Secret,
        now: i64,
    ) -> Result<Option<TokenInfo>, sqlx::Error> {
        self.token_info_by_hash(&token.hash(), now).await
    }

    /// Any token by the SHA-256 of its value (a JWT access token's `jti`).
    pub async fn token_info_by_hash(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<TokenInfo>, sqlx::Error> {
        let sql = concat!(token_columns!(), token_info!(), " WHERE t.token_hash = $1");
        self.lookup_gathered(&self.token_infos, sql, hash, |r| {
            token_info_from_row(r, now)
        })
        .await
    }

    /// A token and its user in one lookup (the resource API's every request); `None` for an
    /// unknown token or one without a user.
    pub async fn token_with_user(
        &self,
        token: &Secret,
        now: i64,
    ) -> Result<Option<(TokenInfo, User)>, sqlx::Error> {
        let sql = concat!(
            token_columns!(),
            token_with_user!(),
            " WHERE t.token_hash = $1"
        );
        self.lookup_gathered(&self.token_users, sql, &token.hash(), |r| {
            Ok((
                token_info_from_row(r, now)?,
                super::users::user_from_row(r)?,
            ))
        })
        .await
    }

    /// Revoke one token (by the SHA-256 of its value); a refresh token takes its whole chain
    /// (and so its access tokens).
    pub async fn revoke_token(
        &self,
        info: &TokenInfo,
        hash: &str,
        now: i64,
    ) -> Result<u64, sqlx::Error> {
        let done = if info.kind == "refresh" {
            sqlx::query(
                "UPDATE tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(&info.family_id)
            .execute(self.writer())
            .await?
        } else {
            sqlx::query(
                "UPDATE tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(hash)
            .execute(self.writer())
            .await?
        };
        Ok(done.rows_affected())
    }

    /// Revoke every token of a chain (reuse detection, admin action).
    pub async fn revoke_family(&self, family_id: &str, now: i64) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(family_id)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }
}

struct CreateCode {
    hash: String,
    grant: CodeGrant,
    now: i64,
    ttl: i64,
}

impl Job for CreateCode {
    type Output = ();

    fn one_insert(&self) -> bool {
        true
    }

    async fn run<E: Exec>(self, exec: &mut E) -> Result<Done<()>, sqlx::Error> {
        let g = &self.grant;
        let scopes = g.scopes.to_string();
        exec.execute(
            "INSERT INTO auth_codes (code_hash, app_id, user_id, grant_id, redirect_uri, redirect_uri_given, scopes, \
             code_challenge, nonce, auth_time, created_at, expires_at, dpop_jkt, resource) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            &[
                (&self.hash).into(),
                (&g.app_id).into(),
                (&g.user_id).into(),
                (&g.grant_id).into(),
                (&g.redirect_uri).into(),
                flag(g.redirect_uri_given).into(),
                (&scopes).into(),
                g.code_challenge.as_deref().into(),
                g.nonce.as_deref().into(),
                g.auth_time.into(),
                self.now.into(),
                (self.now + self.ttl).into(),
                g.dpop_jkt.as_deref().into(),
                g.resource.as_deref().into(),
            ],
        )
        .await?;
        Ok(Done::Commit(()))
    }
}

struct ExchangeCode<F> {
    hash: String,
    now: i64,
    check: F,
}

impl<F, X> Job for ExchangeCode<F>
where
    F: FnOnce(&CodeGrant) -> Result<IssueSpec, X> + Send + 'static,
    X: Send + 'static,
{
    type Output = CodeOutcome<X>;

    async fn run<E: Exec>(self, exec: &mut E) -> Result<Done<CodeOutcome<X>>, sqlx::Error> {
        let (hash, now) = (&self.hash, self.now);
        let grant = exec
            .fetch_optional(
                concat!(
                    "UPDATE auth_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL AND expires_at > $1 \
                     AND NOT EXISTS (SELECT 1 FROM users WHERE users.id = auth_codes.user_id AND users.disabled = 1) \
                     AND EXISTS (SELECT 1 FROM grants WHERE grants.id = auth_codes.grant_id) RETURNING ",
                    code_columns!()
                ),
                &[now.into(), hash.into()],
                |row| code_grant_from_row(row),
            )
            .await?;
        let Some(grant) = grant else {
            let used = exec
                .fetch_optional(
                    "SELECT used_at FROM auth_codes WHERE code_hash = $1",
                    &[hash.into()],
                    |row| row.opt_int("used_at"),
                )
                .await?;
            if let Some(Some(_)) = used {
                let revoked = exec
                    .execute(
                        "UPDATE tokens SET revoked_at = $1 WHERE code_hash = $2 AND revoked_at IS NULL",
                        &[now.into(), hash.into()],
                    )
                    .await?;
                return Ok(Done::Commit(CodeOutcome::Replayed { revoked }));
            }
            return Ok(Done::Rollback(CodeOutcome::Invalid));
        };
        let spec = match (self.check)(&grant) {
            Ok(spec) => spec,
            // The code is spent all the same.
            Err(e) => return Ok(Done::Commit(CodeOutcome::Refused(e))),
        };
        let issue = spec.issue(&grant);
        let issued = insert_tokens(exec, &issue, &new_family_id(), Some(hash), now).await?;
        Ok(Done::Commit(CodeOutcome::Issued(Box::new((grant, issued)))))
    }
}

struct IssueTokens {
    family: Option<String>,
    app_id: String,
    user_id: Option<String>,
    grant_id: Option<String>,
    scopes: Scopes,
    access_ttl: i64,
    refresh_ttl: Option<i64>,
    binding: Binding,
    now: i64,
}

impl Job for IssueTokens {
    type Output = Issued;

    fn one_insert(&self) -> bool {
        self.refresh_ttl.is_none()
    }

    async fn run<E: Exec>(self, exec: &mut E) -> Result<Done<Issued>, sqlx::Error> {
        let issue = Issue {
            app_id: &self.app_id,
            user_id: self.user_id.as_deref(),
            grant_id: self.grant_id.as_deref(),
            scopes: &self.scopes,
            access_ttl: self.access_ttl,
            refresh_ttl: self.refresh_ttl,
            binding: &self.binding,
        };
        let family = self.family.clone().unwrap_or_else(new_family_id);
        let issued = insert_tokens(exec, &issue, &family, None, self.now).await?;
        Ok(Done::Commit(issued))
    }
}

/// How to rotate a refresh token.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The app presenting it (another app's token is unknown).
    pub app_id: String,
    /// Fewer scopes than the grant's, if asked for.
    pub narrower: Option<Scopes>,
    pub access_ttl: i64,
    pub refresh_ttl: i64,
    /// The key the request proved (DPoP): a bound token needs it; new tokens are bound to it.
    pub binding: Binding,
}

impl LiveRefresh {
    /// The scopes and binding the token is rotated into as `rotation` asks; or the outcome
    /// that refuses the request.
    fn successor_terms(
        &self,
        rotation: &Rotation,
    ) -> Result<(Scopes, Binding), Box<RefreshOutcome>> {
        if self.app_id != rotation.app_id {
            return Err(Box::new(RefreshOutcome::Invalid));
        }
        if self.dpop_jkt.is_some() && self.dpop_jkt != rotation.binding.dpop_jkt {
            return Err(Box::new(RefreshOutcome::KeyMismatch));
        }
        // The new tokens are for the grant's resource; a request may name it, not another.
        if rotation
            .binding
            .audience
            .as_ref()
            .is_some_and(|asked| self.audience.as_ref() != Some(asked))
        {
            return Err(Box::new(RefreshOutcome::OtherResource));
        }
        let scopes = match &rotation.narrower {
            Some(n) if !n.is_subset_of(&self.scopes) => {
                return Err(Box::new(RefreshOutcome::ScopeTooWide));
            }
            Some(n) if !n.is_empty() => n.clone(),
            _ => self.scopes.clone(),
        };
        let binding = Binding {
            audience: self.audience.clone(),
            ..rotation.binding.clone()
        };
        Ok((scopes, binding))
    }

    /// What to issue in the token's place, with the terms [`Self::successor_terms`] gave.
    fn successor<'a>(
        &'a self,
        rotation: &'a Rotation,
        scopes: &'a Scopes,
        binding: &'a Binding,
    ) -> Issue<'a> {
        Issue {
            app_id: &rotation.app_id,
            user_id: self.user_id.as_deref(),
            grant_id: self.grant_id.as_deref(),
            scopes,
            access_ttl: rotation.access_ttl,
            refresh_ttl: Some(rotation.refresh_ttl),
            binding,
        }
    }
}

struct Refresh {
    refresh: Secret,
    rotation: Rotation,
    now: i64,
}

/// A refresh token that could not be rotated, as found.
struct Retired {
    app_id: String,
    rotated_at: Option<i64>,
    revoked_at: Option<i64>,
    successor: Option<Vec<u8>>,
    family_id: String,
    user_id: Option<String>,
    dpop_jkt: Option<String>,
}

impl Job for Refresh {
    type Output = RefreshOutcome;

    async fn run<E: Exec>(self, exec: &mut E) -> Result<Done<RefreshOutcome>, sqlx::Error> {
        let hash = self.refresh.hash();
        let (now, rotation) = (self.now, &self.rotation);
        let app_id = rotation.app_id.as_str();
        // The token is found by its hash alone and its app compared here: with `app_id = $n`
        // in the statement, PostgreSQL's generic plan for it could walk the (app, user) index
        // (every token of the app) instead of the primary key.
        let rotated = exec
            .fetch_optional(
                "UPDATE tokens SET rotated_at = $1 WHERE token_hash = $2 AND kind = 'refresh' \
                 AND rotated_at IS NULL AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1) \
                 AND NOT EXISTS (SELECT 1 FROM users WHERE users.id = tokens.user_id AND users.disabled = 1) \
                 RETURNING app_id, user_id, grant_id, family_id, scopes, dpop_jkt, audience",
                &[now.into(), (&hash).into()],
                |row| live_refresh_from_row(row),
            )
            .await?;
        if let Some(token) = rotated {
            let (scopes, binding) = match token.successor_terms(rotation) {
                Ok(terms) => terms,
                Err(refused) => return Ok(Done::Rollback(*refused)),
            };
            let issue = token.successor(rotation, &scopes, &binding);
            let issued = insert_tokens(exec, &issue, &token.family_id, None, now).await?;
            let sealed = seal_pair(&self.refresh, &issued);
            exec.execute(
                "UPDATE tokens SET successor = $1 WHERE token_hash = $2",
                &[sealed.as_deref().into(), (&hash).into()],
            )
            .await?;
            return Ok(Done::Commit(RefreshOutcome::Rotated(issued)));
        }

        // Not rotatable: unknown, another app's, expired, revoked, or already rotated.
        let retired = exec
            .fetch_optional(
                "SELECT app_id, rotated_at, revoked_at, successor, family_id, user_id, dpop_jkt FROM tokens \
                 WHERE token_hash = $1 AND kind = 'refresh'",
                &[(&hash).into()],
                |row| {
                    Ok(Retired {
                        app_id: row.text("app_id")?,
                        rotated_at: row.opt_int("rotated_at")?,
                        revoked_at: row.opt_int("revoked_at")?,
                        successor: row.opt_blob("successor")?,
                        family_id: row.text("family_id")?,
                        user_id: row.opt_text("user_id")?,
                        dpop_jkt: row.opt_text("dpop_jkt")?,
                    })
                },
            )
            .await?;
        let Some(Retired {
            rotated_at: Some(rotated_at),
            app_id: _,
            revoked_at,
            successor,
            family_id,
            user_id,
            dpop_jkt,
        }) = retired.filter(|r| r.app_id == app_id)
        else {
            return Ok(Done::Rollback(RefreshOutcome::Invalid));
        };
        // A bound token is worth nothing without its key: presenting it without the key is not
        // proof that it leaked together with the key, so it does not revoke the chain.
        if dpop_jkt.is_some() && dpop_jkt != rotation.binding.dpop_jkt {
            return Ok(Done::Rollback(RefreshOutcome::KeyMismatch));
        }
        if now - rotated_at <= REFRESH_GRACE_SECS {
            if revoked_at.is_some() {
                return Ok(Done::Rollback(RefreshOutcome::Invalid));
            }
            if let Some(pair) = successor
                .as_deref()
                .and_then(|s| unseal_pair(&self.refresh, s))
                .filter(|pair| pair.dpop_jkt == rotation.binding.dpop_jkt)
            {
                // Only if the successor itself is still good (not revoked meanwhile).
                let access_hash = pair.access.hash();
                let live = exec
                    .fetch_optional(
                        "SELECT 1 AS live FROM tokens WHERE token_hash = $1 AND revoked_at IS NULL",
                        &[(&access_hash).into()],
                        |row| row.int("live"),
                    )
                    .await?;
                if live.is_some() {
                    return Ok(Done::Rollback(RefreshOutcome::Retried(pair)));
                }
            }
            return Ok(Done::Rollback(RefreshOutcome::Invalid));
        }
        // Reuse of a retired token: someone else holds a copy. Revoke the whole chain.
        exec.execute(
            "UPDATE tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
            &[now.into(), (&family_id).into()],
        )
        .await?;
        Ok(Done::Commit(RefreshOutcome::Reused { family_id, user_id }))
    }
}
