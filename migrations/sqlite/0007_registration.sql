-- Dynamic client registration (RFC 7591/7592): apps registered through /oauth/register are
-- marked `dynamic` and hold the hash of their registration access token (both columns exist
-- since the first migration); the registration metadata latchkey has no column for (logo,
-- terms, policy, contacts, software) is kept as a JSON object and answered back.
ALTER TABLE apps ADD COLUMN client_metadata TEXT NOT NULL DEFAULT '{}';
CREATE INDEX apps_registration_token_hash_idx ON apps (registration_token_hash);
