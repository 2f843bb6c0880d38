-- Logout (OpenID Connect RP-Initiated Logout 1.0 and Back-Channel Logout 1.0): where an app may
-- send the browser after a logout it asked for (exact URIs, a JSON array), and where latchkey
-- POSTs a logout token when one of the app's users signs out ('' for none). Deliveries to apps
-- (back-channel logout tokens; later webhooks) wait in an outbox, retried with backoff and kept
-- as the app's delivery log.
ALTER TABLE apps ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';
ALTER TABLE apps ADD COLUMN backchannel_logout_uri TEXT NOT NULL DEFAULT '';
CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,
    app_id           TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    kind             TEXT NOT NULL,              -- 'backchannel_logout'
    url              TEXT NOT NULL,
    payload          TEXT NOT NULL,              -- what to send, made into the body at each attempt
    status           TEXT NOT NULL,              -- 'pending' | 'delivered' | 'failed'
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_status      INTEGER,
    last_error       TEXT NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER
);
CREATE INDEX deliveries_due_idx ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_app_idx ON deliveries (app_id, created_at);
