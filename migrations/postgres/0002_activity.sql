-- Coding-activity rollups, so totals over a year of heartbeats are read from a few thousand
-- rows instead of a million.
--   heartbeats.gap_us: this heartbeat's share of coding time, min(next heartbeat - this, 120 s)
--     (0 for a user's newest heartbeat), kept up to date at ingest.
--   activity_buckets: the sum of gap_us per user, project and 15-minute UTC bucket (every
--     timezone's midnight falls on a 15-minute boundary), all categories and `coding` alone.
ALTER TABLE heartbeats ADD COLUMN gap_us BIGINT NOT NULL DEFAULT 0;

CREATE TABLE activity_buckets (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    bucket     BIGINT NOT NULL,
    project    TEXT NOT NULL,
    total_us   BIGINT NOT NULL DEFAULT 0,
    coding_us  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, bucket, project)
);

CREATE TABLE project_languages (
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project   TEXT NOT NULL,
    language  TEXT NOT NULL,
    PRIMARY KEY (user_id, project, language)
);

-- Each project's newest heartbeat, kept at ingest (cheaper than an index on every heartbeat).
CREATE TABLE project_recent (
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project  TEXT NOT NULL,
    last_us  BIGINT NOT NULL,
    PRIMARY KEY (user_id, project)
);
