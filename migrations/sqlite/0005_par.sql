-- Pushed authorization requests (RFC 9126): an app setting that requires them (off by
-- default), and the request's parameters, stored under the SHA-256
-- of the random part of its request_uri (never the URI), used once, for 60 seconds.
CREATE TABLE pushed_requests (
    request_hash  TEXT PRIMARY KEY,
    app_id        TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    params        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    used_at       INTEGER
);
CREATE INDEX pushed_requests_expires_at_idx ON pushed_requests (expires_at);
ALTER TABLE apps ADD COLUMN require_par INTEGER NOT NULL DEFAULT 0;
