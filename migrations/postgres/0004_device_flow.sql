-- The device authorization grant (RFC 8628): an app setting (off by default), and what an
-- approval records for the tokens the device then gets: the grant and the time of sign-in.
-- device_codes.user_code holds the SHA-256 of the normalised user code, never the code.
ALTER TABLE apps ADD COLUMN device_flow BIGINT NOT NULL DEFAULT 0;
ALTER TABLE device_codes ADD COLUMN grant_id TEXT;
ALTER TABLE device_codes ADD COLUMN auth_time BIGINT;
CREATE INDEX device_codes_expires_at_idx ON device_codes (expires_at);
