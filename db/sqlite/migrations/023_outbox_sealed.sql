-- One-time links (signing, withdraw, dispute, invitation) and signing codes
-- travel in mail bodies. The outbox keeps no usable one at rest: a body waits
-- for delivery sealed (AES-256-GCM under the data directory's vendor.key, bound
-- to its row and recipient) in body_sealed, with body left empty, and is
-- dropped once sent. Only while no SMTP server is configured (mail is logged,
-- and admins follow the links from the Outbox page) does a sent body stay,
-- still sealed. Rows written before this migration hold their body in the
-- clear; the portal seals or drops them at its next start
-- (OutboxService.SecureStoredMail), since SQL cannot seal without the key.
ALTER TABLE outbox ADD COLUMN body_sealed BLOB;
