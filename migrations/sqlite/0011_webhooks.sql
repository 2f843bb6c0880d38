-- Webhooks: where latchkey POSTs an app's events (a user revoked it, its tokens were revoked by
-- reuse detection or a leak report), signed with a key derived for the app; '' for none. The
-- deliveries wait in the outbox with the back-channel logout tokens.
ALTER TABLE apps ADD COLUMN webhook_url TEXT NOT NULL DEFAULT '';
