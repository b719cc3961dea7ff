-- Accounts, sessions, sign-in attempts, buildings, rosters, grants and the
-- append-only audit journal.

CREATE TABLE users (
	id            INTEGER PRIMARY KEY,
	email         TEXT NOT NULL UNIQUE,
	name          TEXT NOT NULL,
	role          TEXT NOT NULL CHECK (role IN ('admin', 'manager', 'board', 'installer')),
	company       TEXT NOT NULL DEFAULT '',
	password_hash TEXT NOT NULL,
	disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
	created_at    TEXT NOT NULL,
	updated_at    TEXT NOT NULL
);

-- A row per signed-in browser; the cookie carries the id, the row stores its
-- SHA-256 so that a copy of the database cannot be used to sign in.
CREATE TABLE sessions (
	id_hash      TEXT PRIMARY KEY,
	user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at   TEXT NOT NULL,
	last_seen_at TEXT NOT NULL,
	ip           TEXT NOT NULL DEFAULT '',
	user_agent   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE login_attempts (
	id      INTEGER PRIMARY KEY,
	at      TEXT NOT NULL,
	email   TEXT NOT NULL,
	ip      TEXT NOT NULL,
	user_id INTEGER,
	ok      INTEGER NOT NULL CHECK (ok IN (0, 1))
);
CREATE INDEX login_attempts_email ON login_attempts (email, at);
CREATE INDEX login_attempts_ip ON login_attempts (ip, at);

CREATE TABLE buildings (
	id         INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	address    TEXT NOT NULL,
	timezone   TEXT NOT NULL,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);

CREATE TABLE signers (
	id          INTEGER PRIMARY KEY,
	building_id INTEGER NOT NULL REFERENCES buildings (id),
	name        TEXT NOT NULL,
	title       TEXT NOT NULL,
	email       TEXT NOT NULL,
	active      INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
	created_at  TEXT NOT NULL
);
-- One active roster entry per address per building.
CREATE UNIQUE INDEX signers_building_email ON signers (building_id, email) WHERE active = 1;

CREATE TABLE grants (
	building_id INTEGER NOT NULL REFERENCES buildings (id),
	user_id     INTEGER NOT NULL REFERENCES users (id),
	created_at  TEXT NOT NULL,
	PRIMARY KEY (building_id, user_id)
);
CREATE INDEX grants_user ON grants (user_id, building_id);

CREATE TABLE audit_entries (
	id          INTEGER PRIMARY KEY,
	at          TEXT NOT NULL,
	actor_id    INTEGER NOT NULL DEFAULT 0,
	actor       TEXT NOT NULL,
	action      TEXT NOT NULL,
	building_id INTEGER NOT NULL DEFAULT 0,
	object_type TEXT NOT NULL DEFAULT '',
	object_id   INTEGER NOT NULL DEFAULT 0,
	ip          TEXT NOT NULL DEFAULT '',
	detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_entries_building ON audit_entries (building_id, id);

-- The journal is append-only: no code path updates or deletes it, and the
-- database refuses both should one ever try.
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN
	SELECT RAISE(ABORT, 'audit_entries is append-only');
END;
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN
	SELECT RAISE(ABORT, 'audit_entries is append-only');
END;
