//! The `latchkey` command line: `serve`, `migrate`, and user administration.
//! Every subcommand reads the same settings (flags, `LATCHKEY_*`, TOML file).

use std::io::BufRead;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::app::{self, AppState};
use crate::config::{Config, LogFormat, Settings};
use crate::domain::password;
use crate::domain::user::{TrustLevel, User, parse_email};
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
