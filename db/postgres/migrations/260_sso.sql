-- Single sign-on (issue 16), translated from
-- db/sqlite/migrations/125_sso.sql (the same columns, so a copy from SQLite
-- moves rows as they are): the domains allowed to sign up by SSO, with their
-- role, and the states of sign-ins already used, kept until they expire.
CREATE TABLE sso_domains (
	domain     text PRIMARY KEY,
	role       text NOT NULL CHECK (role IN ('manager', 'board', 'installer')),
	created_at timestamptz NOT NULL,
	created_by text NOT NULL
);

CREATE TABLE sso_states (
	state_hash text PRIMARY KEY,
	used_at    timestamptz NOT NULL,
	expires_at timestamptz NOT NULL
);
CREATE INDEX sso_states_expires ON sso_states (expires_at);
