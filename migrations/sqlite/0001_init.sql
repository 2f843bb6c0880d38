-- latchkey schema, SQLite flavour. The PostgreSQL tree has the same tables and columns.
-- Conventions (shared by both backends so one SQL text runs on each):
--   ids are TEXT (UUID strings or random values), times are INTEGER unix seconds,
--   flags are INTEGER 0/1, lists are space-separated or JSON TEXT, secrets are SHA-256 hex.

CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    email            TEXT NOT NULL,
    email_lower      TEXT NOT NULL,
    email_verified   INTEGER NOT NULL DEFAULT 0,
    name             TEXT NOT NULL DEFAULT '',
    given_name       TEXT NOT NULL DEFAULT '',
    family_name      TEXT NOT NULL DEFAULT '',
    display_name     TEXT NOT NULL DEFAULT '',
    slack_id         TEXT NOT NULL DEFAULT '',
    github_username  TEXT NOT NULL DEFAULT '',
    timezone         TEXT NOT NULL DEFAULT 'UTC',
    locale           TEXT NOT NULL DEFAULT '',
    password_hash    TEXT,
    admin            INTEGER NOT NULL DEFAULT 0,
    disabled         INTEGER NOT NULL DEFAULT 0,
    trust_level      TEXT NOT NULL DEFAULT 'blue',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    CONSTRAINT users_email_lower_key UNIQUE (email_lower)
);

-- Browser sessions: the cookie holds a random id, the table only its hash.
CREATE TABLE sessions (
    id_hash       TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time     INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    ip            TEXT NOT NULL DEFAULT '',
    user_agent    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

-- One-time first-admin setup links printed in the log.
CREATE TABLE setup_tokens (
    token_hash  TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);

-- OAuth apps (clients).
CREATE TABLE apps (
    id                 TEXT PRIMARY KEY,
    client_id          TEXT NOT NULL,
    secret_hash        TEXT,
    name               TEXT NOT NULL,
    homepage_url       TEXT NOT NULL DEFAULT '',
    redirect_uris      TEXT NOT NULL,            -- JSON array of strings
    scopes             TEXT NOT NULL,            -- space-separated
    confidential       INTEGER NOT NULL DEFAULT 1,
    verified           INTEGER NOT NULL DEFAULT 0,
    owner_id           TEXT REFERENCES users (id) ON DELETE CASCADE,  -- NULL: dynamically registered
    dynamic            INTEGER NOT NULL DEFAULT 0,
    registration_token_hash TEXT,
    access_token_ttl   INTEGER NOT NULL DEFAULT 3600,
    issue_refresh      INTEGER NOT NULL DEFAULT 1,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    CONSTRAINT apps_client_id_key UNIQUE (client_id)
);
CREATE INDEX apps_owner_id_idx ON apps (owner_id);

-- A user's consent to an app: the scopes granted and when it was last used.
CREATE TABLE grants (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    app_id          TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    scopes          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_used_at    INTEGER,
    last_used_ip    TEXT NOT NULL DEFAULT '',
    last_used_ua    TEXT NOT NULL DEFAULT '',
    CONSTRAINT grants_user_app_key UNIQUE (user_id, app_id)
);
CREATE INDEX grants_app_id_idx ON grants (app_id);

-- Authorization codes: short-lived, single-use, bound to everything the request said.
CREATE TABLE auth_codes (
    code_hash           TEXT PRIMARY KEY,
    app_id              TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    user_id             TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    grant_id            TEXT NOT NULL,
    redirect_uri        TEXT NOT NULL,
    redirect_uri_given  INTEGER NOT NULL,
    scopes              TEXT NOT NULL,
    code_challenge      TEXT,
    nonce               TEXT,
    auth_time           INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    used_at             INTEGER
);
CREATE INDEX auth_codes_expires_at_idx ON auth_codes (expires_at);

-- Access and refresh tokens. family_id ties every token of one code redemption together
-- (refresh rotation chain); code_hash lets a replayed code revoke what it issued.
CREATE TABLE tokens (
    token_hash      TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,               -- 'access' | 'refresh'
    app_id          TEXT REFERENCES apps (id) ON DELETE CASCADE,
    user_id         TEXT REFERENCES users (id) ON DELETE CASCADE,
    grant_id        TEXT,
    family_id       TEXT NOT NULL,
    code_hash       TEXT,
    scopes          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    revoked_at      INTEGER,
    rotated_at      INTEGER,                      -- refresh: when it was exchanged
    successor       BLOB,                       -- refresh: successor pair, sealed under a key derived from this token
    last_used_at    INTEGER
);
CREATE INDEX tokens_family_id_idx ON tokens (family_id);
CREATE INDEX tokens_grant_id_idx ON tokens (grant_id);
CREATE INDEX tokens_app_user_idx ON tokens (app_id, user_id);
CREATE INDEX tokens_code_hash_idx ON tokens (code_hash);

-- Device authorization grant (RFC 8628).
CREATE TABLE device_codes (
    device_code_hash  TEXT PRIMARY KEY,
    user_code         TEXT NOT NULL,
    app_id            TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    scopes            TEXT NOT NULL,
    user_id           TEXT REFERENCES users (id) ON DELETE CASCADE,
    status            TEXT NOT NULL DEFAULT 'pending',  -- pending | approved | denied | used
    interval_secs     INTEGER NOT NULL,
    last_polled_at    INTEGER,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    CONSTRAINT device_codes_user_code_key UNIQUE (user_code)
);

-- Personal access tokens.
CREATE TABLE personal_access_tokens (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    last_used_at  INTEGER,
    revoked_at    INTEGER,
    CONSTRAINT personal_access_tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX personal_access_tokens_user_id_idx ON personal_access_tokens (user_id);

-- WakaTime-compatible API keys (one per user).
CREATE TABLE api_keys (
    user_id     TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    key_hash    TEXT NOT NULL,
    key_sealed  BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash)
);

-- Signing keys for ID tokens; old public keys stay published until retired.
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    alg          TEXT NOT NULL,
    private_pem  TEXT NOT NULL,
    public_jwk   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    active       INTEGER NOT NULL DEFAULT 1,
    retired_at   INTEGER
);

-- Server-wide secrets and settings shared by every node (e.g. the sealing key).
CREATE TABLE server_secrets (
    name        TEXT PRIMARY KEY,
    value       BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Coding activity. A heartbeat's id is derived from its user and dedup_hash, so the primary key
-- also keeps identical heartbeats out (no second unique index to maintain on every insert).
CREATE TABLE heartbeats (
    id                TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    time_us           INTEGER NOT NULL,           -- epoch microseconds
    entity            TEXT NOT NULL,
    type              TEXT NOT NULL DEFAULT 'file',
    category          TEXT NOT NULL DEFAULT 'coding',
    project           TEXT NOT NULL DEFAULT '',
    branch            TEXT NOT NULL DEFAULT '',
    language          TEXT NOT NULL DEFAULT '',
    editor            TEXT NOT NULL DEFAULT '',
    operating_system  TEXT NOT NULL DEFAULT '',
    machine           TEXT NOT NULL DEFAULT '',
    is_write          INTEGER NOT NULL DEFAULT 0,
    lines             INTEGER,
    lineno            INTEGER,
    cursorpos         INTEGER,
    dependencies      TEXT NOT NULL DEFAULT '',
    user_agent        TEXT NOT NULL DEFAULT '',
    dedup_hash        TEXT NOT NULL,
    created_at        INTEGER NOT NULL
);
CREATE INDEX heartbeats_user_time_idx ON heartbeats (user_id, time_us);

CREATE TABLE archived_projects (
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project     TEXT NOT NULL,
    archived_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, project)
);

-- Audit trail: sign-ins, consents, revocations, secret resets, verifications.
CREATE TABLE audit_events (
    id          TEXT PRIMARY KEY,
    at          INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    actor_id    TEXT,
    subject     TEXT NOT NULL DEFAULT '',
    ip          TEXT NOT NULL DEFAULT '',
    user_agent  TEXT NOT NULL DEFAULT '',
    details     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_at_idx ON audit_events (at);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_id);
