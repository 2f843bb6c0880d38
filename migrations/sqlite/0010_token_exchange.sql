-- Token exchange (RFC 8693): whether an admin allowed an app to exchange tokens (off by
-- default), and for a token made by an exchange, who acts for the user (the `act` claim, JSON).
ALTER TABLE apps ADD COLUMN token_exchange INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN act TEXT;
