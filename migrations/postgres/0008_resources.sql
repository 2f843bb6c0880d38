-- Resource indicators (RFC 8707): the resource servers an admin registered, each with the
-- audience tokens for it carry (`identifier`, an absolute URI) and the form of its access
-- tokens (`opaque`, or `jwt` for RFC 9068 JWTs signed with the provider keys); the resource an
-- authorization code was asked for, and the audience of every token (NULL: latchkey's own API).
CREATE TABLE resource_servers (
    id            TEXT PRIMARY KEY,
    identifier    TEXT NOT NULL,
    name          TEXT NOT NULL,
    token_format  TEXT NOT NULL DEFAULT 'opaque',
    created_at    BIGINT NOT NULL,
    CONSTRAINT resource_servers_identifier_key UNIQUE (identifier)
);
ALTER TABLE auth_codes ADD COLUMN resource TEXT;
ALTER TABLE tokens ADD COLUMN audience TEXT;
