//! The `latchkey` command line: `serve`, `migrate`, and user administration.
//! Every subcommand reads the same settings (flags, `LATCHKEY_*`, TOML file).

use std::io::BufRead;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::api::client_json;
use crate::app::{self, AppState};
use crate::apps::{self, AppsError, Origin};
use crate::config::{Config, LogFormat, Settings};
use crate::domain::app::AppInput;
use crate::domain::password;
use crate::domain::scope::{self, Scopes};
use crate::domain::user::{TrustLevel, User, parse_email, parse_text};
use crate::store::{AuditEvent, AuditKind, CreateUserError, NewUser, Store, now};

#[derive(Debug, Parser)]
#[command(
    name = "latchkey",
    version,
    about = "Self-hosted OAuth 2.1 / OpenID Connect provider"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (applies migrations first).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage OAuth apps (clients).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Personal access tokens.
    #[command(subcommand)]
    Pat(PatCommand),
    /// ID-token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// OAuth tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Resource servers: the audiences tokens may be restricted to (RFC 8707).
    #[command(subcommand)]
    Resource(ResourceCommand),
}

#[derive(Debug, Subcommand)]
pub enum ResourceCommand {
    /// Register a resource server.
    Create {
        /// The audience of its tokens, an absolute URI (what apps send as `resource`).
        #[arg(long)]
        identifier: String,
        #[arg(long)]
        name: String,
        /// Issue its access tokens as JWTs (RFC 9068) signed with the provider keys.
        #[arg(long)]
        jwt: bool,
        #[arg(long)]
        json: bool,
    },
    /// List resource servers.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a resource server (by ID or identifier).
    Delete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a new signing key; older keys stay published until retired.
    Rotate {
        #[arg(long)]
        json: bool,
    },
    /// List signing keys.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop publishing a key that no longer signs.
    Retire { kid: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Revoke an access or refresh token (a refresh token takes its whole chain).
    Revoke {
        /// The token itself; read from standard input when omitted.
        token: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register an app for an owner; prints the client object (with the secret, once).
    Create {
        /// The owner's email.
        #[arg(long)]
        owner: String,
        #[arg(long)]
        name: String,
        /// A redirect URI; repeat for more (up to 10).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// Allowed scopes, space-separated [default: profile].
        #[arg(long, default_value = "")]
        scopes: String,
        #[arg(long, default_value = "")]
        homepage_url: String,
        /// A public app (no secret; PKCE required).
        #[arg(long)]
        public: bool,
        /// Access-token lifetime in seconds [default: the server's].
        #[arg(long)]
        access_token_ttl: Option<u64>,
        /// Allow the device authorization grant (RFC 8628).
        #[arg(long)]
        device_flow: bool,
        /// Accept only pushed authorization requests (RFC 9126).
        #[arg(long)]
        require_par: bool,
        /// Issue only DPoP-bound tokens (RFC 9449): every token request needs a proof.
        #[arg(long)]
        require_dpop: bool,
        /// Where the browser may go after a logout the app asks for; repeat for more.
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// Where latchkey POSTs a logout token when one of the app's users signs out.
        #[arg(long, default_value = "")]
        backchannel_logout_uri: String,
        /// Where latchkey POSTs the app's events (webhooks).
        #[arg(long, default_value = "")]
        webhook_url: String,
        #[arg(long)]
        json: bool,
    },
    /// List every app.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete an app with its grants and tokens.
    Delete { client_id: String },
    /// Mark an app verified (its name then locks).
    Verify { client_id: String },
    /// Remove the verified mark.
    Unverify { client_id: String },
    /// Allow (`on`) or stop (`off`) an app exchanging users' access tokens (RFC 8693).
    TokenExchange {
        client_id: String,
        #[arg(value_parser = ["on", "off"])]
        setting: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PatCommand {
    /// Create a personal access token for a user; printed once.
    Create {
        #[arg(long)]
        email: String,
        /// Space-separated: `apps` and any of `profile read project:read`.
        #[arg(long)]
        scopes: String,
        #[arg(long, default_value = "CLI token")]
        name: String,
        /// Lifetime in days [default: no expiry].
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input (one line).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        json: bool,
    },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Grant (or with --remove, take away) the admin flag.
    SetAdmin {
        #[arg(long)]
        email: String,
        #[arg(long)]
        remove: bool,
        #[arg(long)]
        json: bool,
    },
    /// Set a user's trust level: blue, red, green or yellow.
    SetTrust {
        #[arg(long)]
        email: String,
        #[arg(long)]
        level: String,
        #[arg(long)]
        json: bool,
    },
}

/// How long a setup link printed at start stays valid.
const SETUP_LINK_TTL: i64 = 24 * 3600;

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = match Config::resolve(cli.settings) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("latchkey: {e}");
            std::process::exit(2);
        }
    };
    let serving = matches!(cli.command, Command::Serve);
    init_logging(config.log, serving);
    for key in Config::unknown_env() {
        tracing::warn!(variable = %key, "unknown LATCHKEY_ environment variable ignored");
    }

    let store = Store::connect(&config.database_url).await?;
    store.migrate().await?;
    match cli.command {
        Command::Serve => serve(config, store).await,
        Command::Migrate => {
            println!("{}", json!({"migrated": true}));
            Ok(())
        }
        Command::User(cmd) => user_command(&store, cmd).await,
        Command::Client(cmd) => client_command(&store, &config, cmd).await,
        Command::Pat(cmd) => pat_command(&store, cmd).await,
        Command::Keys(cmd) => keys_command(&store, cmd).await,
        Command::Token(cmd) => token_command(&store, cmd).await,
        Command::Resource(cmd) => resource_command(&store, cmd).await,
    }
}

fn init_logging(format: LogFormat, serving: bool) {
    let default = if serving { "info,sqlx=warn" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

async fn serve(config: Config, store: Store) -> anyhow::Result<()> {
    if !config.rate_limits {
        tracing::warn!(
            "rate limits are OFF (LATCHKEY_RATE_LIMITS=off): for test suites and benchmarks only"
        );
    }
    announce_setup_link(&config, &store).await?;
    // Compute the stand-in hash for unknown emails now, not during the first sign-in.
    tokio::task::spawn_blocking(password::dummy_hash);
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    tracing::info!(address = %config.bind, issuer = %config.issuer, "latchkey is listening");
    let state = AppState::new(config, store.clone());
    app::serve(listener, state, shutdown_signal()).await?;
    store.close().await;
    Ok(())
}

/// With no admin yet, log a one-time link that creates the first one.
pub async fn announce_setup_link(config: &Config, store: &Store) -> anyhow::Result<()> {
    if store.admin_exists().await? {
        return Ok(());
    }
    let token = store.create_setup_token(now(), SETUP_LINK_TTL).await?;
    tracing::warn!(
        "no administrator yet: open {}/setup?token={} to create the first one (valid 24 hours, once)",
        config.issuer,
        token.expose()
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
    // Give in-flight requests a moment; axum's graceful shutdown waits for them.
    tokio::time::sleep(Duration::from_millis(10)).await;
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    match password::check_new(&password) {
        Ok(()) => Ok(password),
        Err(password::Weakness::TooShort) => bail!(
            "the password must have at least {} characters",
            password::MIN_LEN
        ),
        Err(password::Weakness::TooLong) => bail!("the password is too long"),
    }
}

fn user_json(user: &User) -> serde_json::Value {
    json!({
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "admin": user.admin,
        "trust_level": user.trust_level,
        "disabled": user.disabled,
    })
}

fn print_user(user: &User, as_json: bool) {
    if as_json {
        println!("{}", user_json(user));
    } else {
        println!(
            "{}  {}  {}{}  trust={}",
            user.id,
            user.email,
            user.name,
            if user.admin { "  [admin]" } else { "" },
            user.trust_level.as_str()
        );
    }
}

async fn find_user(store: &Store, email: &str) -> anyhow::Result<User> {
    store
        .user_by_email(email)
        .await?
        .with_context(|| format!("no user with email {email}"))
}

async fn user_command(store: &Store, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create {
            email,
            name,
            admin,
            json,
        } => {
            let email = parse_email(&email)
                .map_err(|_| anyhow::anyhow!("`{email}` is not a valid email address"))?;
            let password = read_password()?;
            let hash = password::hash_blocking(password).await?;
            let new = NewUser {
                email,
                name: name.trim().to_owned(),
                password_hash: Some(hash),
                admin,
            };
            let user = match store.create_user(new, now()).await {
                Ok(user) => user,
                Err(CreateUserError::EmailTaken) => bail!("a user with this email already exists"),
                Err(CreateUserError::Database(e)) => return Err(e.into()),
            };
            let event = AuditEvent::new(AuditKind::UserCreated, &user.email)
                .details(json!({"via": "cli", "admin": admin}));
            store.audit(event, now()).await?;
            print_user(&user, json);
        }
        UserCommand::List { json } => {
            let users = store.list_users().await?;
            if json {
                let list: Vec<_> = users.iter().map(user_json).collect();
                println!("{}", json!({ "users": list }));
            } else {
                for user in &users {
                    print_user(user, false);
                }
            }
        }
        UserCommand::SetAdmin {
            email,
            remove,
            json,
        } => {
            let user = find_user(store, &email).await?;
            store.set_admin(&user.id, !remove, now()).await?;
            let event = AuditEvent::new(AuditKind::AdminChanged, &user.email)
                .details(json!({"via": "cli", "admin": !remove}));
            store.audit(event, now()).await?;
            print_user(&find_user(store, &email).await?, json);
        }
        UserCommand::SetTrust { email, level, json } => {
            let level = TrustLevel::parse(&level).with_context(|| {
                format!("`{level}` is not a trust level (blue, red, green, yellow)")
            })?;
            let user = find_user(store, &email).await?;
            store.set_trust_level(&user.id, level, now()).await?;
            let event = AuditEvent::new(AuditKind::TrustChanged, &user.email)
                .details(json!({"via": "cli", "trust_level": level.as_str()}));
            store.audit(event, now()).await?;
            print_user(&find_user(store, &email).await?, json);
        }
    }
    Ok(())
}

/// An admin stand-in for CLI actions: the operator at the console may do what an admin may.
fn console_admin() -> User {
    User {
        id: String::new(),
        email: String::new(),
        email_verified: false,
        name: "console".into(),
        given_name: String::new(),
        family_name: String::new(),
        display_name: String::new(),
        slack_id: String::new(),
        github_username: String::new(),
        timezone: "UTC".into(),
        admin: true,
        disabled: false,
        trust_level: TrustLevel::Blue,
        created_at: 0,
        updated_at: 0,
    }
}

fn apps_error(e: AppsError) -> anyhow::Error {
    match e {
        AppsError::Invalid(fields) => anyhow::anyhow!(
            "{}",
            fields
                .iter()
                .map(|f| format!("{}: {}", f.field, crate::i18n::Lang::En.t(f.message)))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => other.into(),
    }
}

async fn client_command(store: &Store, config: &Config, cmd: ClientCommand) -> anyhow::Result<()> {
    let admin = console_admin();
    match cmd {
        ClientCommand::Create {
            owner,
            name,
            redirect_uris,
            scopes,
            homepage_url,
            public,
            access_token_ttl,
            device_flow,
            require_par,
            require_dpop,
            post_logout_redirect_uris,
            backchannel_logout_uri,
            webhook_url,
            json,
        } => {
            let owner = find_user(store, &owner).await?;
            let input = AppInput {
                name,
                homepage_url,
                redirect_uris,
                scopes: scopes.split_whitespace().map(str::to_owned).collect(),
                confidential: !public,
                access_token_ttl,
                issue_refresh: None,
                device_flow: Some(device_flow),
                require_par: Some(require_par),
                dpop_bound: Some(require_dpop),
                post_logout_redirect_uris,
                backchannel_logout_uri,
                webhook_url,
            };
            let (app, secret) = apps::create(
                store,
                &owner,
                &input,
                config.access_token_ttl.as_secs(),
                Origin::CLI,
            )
            .await
            .map_err(apps_error)?;
            let object = client_json(&app, secret.as_ref());
            if json {
                println!("{object}");
            } else {
                println!("client_id:     {}", app.client_id);
                if let Some(secret) = &secret {
                    println!("client_secret: {}   (shown once)", secret.expose());
                }
                println!("redirect_uris: {}", app.redirect_uris.join(" "));
            }
        }
        ClientCommand::List { json } => {
            let apps = store.all_apps().await?;
            if json {
                let list: Vec<_> = apps.iter().map(|a| client_json(a, None)).collect();
                println!("{}", json!({ "clients": list }));
            } else {
                for app in &apps {
                    println!(
                        "{}  {}  owner={}{}",
                        app.client_id,
                        app.name,
                        app.owner_email,
                        if app.verified { "  [verified]" } else { "" }
                    );
                }
            }
        }
        ClientCommand::Delete { client_id } => {
            let app = apps::find(store, &admin, &client_id)
                .await
                .map_err(apps_error)?;
            apps::delete(store, &admin, &app, Origin::CLI)
                .await
                .map_err(apps_error)?;
            println!("{}", json!({"deleted": app.client_id}));
        }
        ClientCommand::Verify { client_id } => {
            set_verified(store, &admin, &client_id, true).await?
        }
        ClientCommand::Unverify { client_id } => {
            set_verified(store, &admin, &client_id, false).await?
        }
        ClientCommand::TokenExchange { client_id, setting } => {
            let app = apps::find(store, &admin, &client_id)
                .await
                .map_err(apps_error)?;
            let allowed = setting == "on";
            apps::set_token_exchange(store, &admin, &app, allowed, Origin::CLI)
                .await
                .map_err(apps_error)?;
            println!(
                "{}",
                json!({"client_id": app.client_id, "token_exchange": allowed})
            );
        }
    }
    Ok(())
}

async fn set_verified(
    store: &Store,
    admin: &User,
    client_id: &str,
    verified: bool,
) -> anyhow::Result<()> {
    let app = apps::find(store, admin, client_id)
        .await
        .map_err(apps_error)?;
    apps::set_verified(store, admin, &app, verified, Origin::CLI)
        .await
        .map_err(apps_error)?;
    println!(
        "{}",
        json!({"client_id": app.client_id, "verified": verified})
    );
    Ok(())
}

async fn pat_command(store: &Store, cmd: PatCommand) -> anyhow::Result<()> {
    match cmd {
        PatCommand::Create {
            email,
            scopes,
            name,
            expires_in_days,
            json,
        } => {
            let user = find_user(store, &email).await?;
            let scopes = Scopes::parse(&scopes, &scope::PAT_SCOPES)
                .map_err(|e| anyhow::anyhow!("`{}` is not a personal access token scope", e.0))?;
            if scopes.is_empty() {
                bail!("name at least one scope");
            }
            let name = parse_text("name", &name, 100)
                .map_err(|_| anyhow::anyhow!("the name is not valid"))?;
            let expires_at = expires_in_days.map(|d| now() + i64::from(d) * 24 * 3600);
            let (pat, token) = store
                .create_pat(&user.id, &name, &scopes, expires_at, now())
                .await?;
            let event = AuditEvent::new(AuditKind::PatCreated, &user.email)
                .details(json!({"via": "cli", "pat": pat.id}));
            store.audit(event, now()).await?;
            if json {
                println!(
                    "{}",
                    json!({"id": pat.id, "token": token.expose(), "scopes": pat.scopes.to_vec()})
                );
            } else {
                println!("{}", token.expose());
            }
        }
    }
    Ok(())
}

fn key_json(key: &crate::store::SigningKey) -> serde_json::Value {
    json!({
        "kid": key.kid,
        "alg": key.alg,
        "created_at": crate::api::rfc3339(key.created_at),
        "active": key.active,
        "retired": key.retired_at.is_some(),
    })
}

async fn keys_command(store: &Store, cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Rotate { json } => {
            let key = crate::oauth::keys::rotate(store).await?;
            if json {
                println!("{}", key_json(&key));
            } else {
                println!(
                    "new signing key {} (older keys stay published until retired)",
                    key.kid
                );
            }
        }
        KeysCommand::List { json } => {
            let keys = store.signing_keys().await?;
            if json {
                let list: Vec<_> = keys.iter().map(key_json).collect();
                println!("{}", json!({ "keys": list }));
            } else {
                for key in &keys {
                    let state = if key.active {
                        "signing"
                    } else if key.retired_at.is_some() {
                        "retired"
                    } else {
                        "published"
                    };
                    println!(
                        "{}  {}  {}  {}",
                        key.kid,
                        key.alg,
                        crate::api::rfc3339(key.created_at),
                        state
                    );
                }
            }
        }
        KeysCommand::Retire { kid } => {
            if !store.retire_signing_key(&kid, now()).await? {
                bail!("no published key {kid} that is not the signing key");
            }
            println!("{}", json!({"retired": kid}));
        }
    }
    Ok(())
}

fn resource_json(server: &crate::store::resources::ResourceServer) -> serde_json::Value {
    json!({
        "id": server.id,
        "identifier": server.identifier,
        "name": server.name,
        "token_format": if server.jwt { "jwt" } else { "opaque" },
        "created_at": crate::api::rfc3339(server.created_at),
    })
}

async fn resource_command(store: &Store, cmd: ResourceCommand) -> anyhow::Result<()> {
    match cmd {
        ResourceCommand::Create {
            identifier,
            name,
            jwt,
            json,
        } => {
            let (identifier, name) = crate::domain::resource::validate(&identifier, &name)
                .map_err(|e| anyhow::anyhow!("{}", crate::i18n::Lang::En.t(e.message)))?;
            let Some(server) = store
                .create_resource_server(&identifier, &name, jwt, now())
                .await?
            else {
                bail!("a resource server with identifier {identifier} already exists");
            };
            if json {
                println!("{}", resource_json(&server));
            } else {
                println!("resource server {} ({})", server.identifier, server.id);
            }
        }
        ResourceCommand::List { json } => {
            let servers = store.resource_servers().await?;
            if json {
                let list: Vec<_> = servers.iter().map(resource_json).collect();
                println!("{}", json!({ "resource_servers": list }));
            } else {
                for server in &servers {
                    let format = if server.jwt { "jwt" } else { "opaque" };
                    println!(
                        "{}  {}  {}  {}",
                        server.id, server.identifier, format, server.name
                    );
                }
            }
        }
        ResourceCommand::Delete { id } => {
            if !store.delete_resource_server(&id).await? {
                bail!("no resource server {id}");
            }
            println!("{}", json!({"deleted": id}));
        }
    }
    Ok(())
}

async fn token_command(store: &Store, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Revoke { token } => {
            let text = match token {
                Some(t) => t,
                None => {
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                    line.trim().to_owned()
                }
            };
            let secret =
                crate::domain::secret::parse(crate::domain::secret::TokenKind::AccessToken, &text)
                    .or_else(|| {
                        crate::domain::secret::parse(
                            crate::domain::secret::TokenKind::RefreshToken,
                            &text,
                        )
                    })
                    .context("not an access or refresh token")?;
            let info = store
                .token_info(&secret, now())
                .await?
                .context("no such token")?;
            let revoked = store.revoke_token(&info, &secret.hash(), now()).await?;
            println!("{}", json!({"revoked": revoked}));
        }
    }
    Ok(())
}
