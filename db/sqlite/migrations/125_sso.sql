-- Single sign-on (issue 16). sso_domains: the email domains whose people get
-- an account at their first sign-in by OpenID Connect, with the role an admin
-- chose (never admin: the service refuses it). Accounts already made stay
-- when a domain is removed.
CREATE TABLE sso_domains (
	domain     TEXT PRIMARY KEY,
	role       TEXT NOT NULL CHECK (role IN ('manager', 'board', 'installer')),
	created_at TEXT NOT NULL,
	created_by TEXT NOT NULL
);

-- The states of sign-ins that came back from the provider, by their SHA-256:
-- a state is accepted once, so a replayed callback is refused on any
-- instance. Rows are deleted once past expires_at (a state older than that
-- is refused by its age anyway).
CREATE TABLE sso_states (
	state_hash TEXT PRIMARY KEY,
	used_at    TEXT NOT NULL,
	expires_at TEXT NOT NULL
);
CREATE INDEX sso_states_expires ON sso_states (expires_at);
