-- DPoP (RFC 9449): the key a token is bound to and the key an authorization code is bound to
-- (`dpop_jkt`, the JWK SHA-256 thumbprint of RFC 7638), an app setting that requires DPoP
-- (`dpop_bound_access_tokens`, off by default), the proofs already seen (a hash of key and
-- jti, kept until the proof is too old to be accepted anyway, so a replay is caught on every
-- node). The key that makes DPoP nonces is in server_secrets, as `dpop_nonce`.
ALTER TABLE tokens ADD COLUMN dpop_jkt TEXT;
ALTER TABLE auth_codes ADD COLUMN dpop_jkt TEXT;
ALTER TABLE apps ADD COLUMN dpop_bound BIGINT NOT NULL DEFAULT 0;
CREATE TABLE dpop_proofs (
    proof_hash  TEXT PRIMARY KEY,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX dpop_proofs_expires_at_idx ON dpop_proofs (expires_at);
