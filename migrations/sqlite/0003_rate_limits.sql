-- Rate-limit counters shared by every node on one database: one row per key (a hash of what is
-- limited, e.g. a client IP or an app) holding the current one-minute window and its count.
-- Only PostgreSQL deployments count here; a SQLite database is served by one process, which
-- counts in memory.
CREATE TABLE rate_counters (
    key           TEXT PRIMARY KEY,
    window_start  BIGINT NOT NULL,
    hits          BIGINT NOT NULL
);
