-- Passkeys (issue 16): WebAuthn credentials of managers and admins. data is
-- the credential as the WebAuthn library records it (public key, signature
-- counter, flags): public, nothing to seal. A credential id belongs to one
-- passkey only.
CREATE TABLE passkeys (
	id            INTEGER PRIMARY KEY,
	user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	name          TEXT NOT NULL,
	credential_id BLOB NOT NULL UNIQUE,
	data          BLOB NOT NULL,
	created_at    TEXT NOT NULL,
	last_used_at  TEXT
);
CREATE INDEX passkeys_user ON passkeys (user_id);
