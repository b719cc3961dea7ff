-- Second factors (issue 16). An authenticator app's secret is sealed under
-- the data directory's vendor.key, bound to its user (seal.go): a copy of the
-- database alone yields no secret. A secret is pending until a code of it is
-- confirmed; last_step is the last time step whose code was used, so a code
-- is good once.
CREATE TABLE user_totp (
	user_id       INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
	secret_sealed BLOB NOT NULL,
	confirmed_at  TEXT,
	last_step     INTEGER NOT NULL DEFAULT 0,
	created_at    TEXT NOT NULL
);

-- One-time recovery codes, stored as hashes only; used_at marks one spent.
CREATE TABLE recovery_codes (
	id         INTEGER PRIMARY KEY,
	user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	code_hash  TEXT NOT NULL,
	created_at TEXT NOT NULL,
	used_at    TEXT,
	UNIQUE (user_id, code_hash)
);

-- Tries of a second factor, throttled as passwords are (login_attempts):
-- failures per account since its last success and per IP within a window.
CREATE TABLE second_factor_attempts (
	id      INTEGER PRIMARY KEY,
	at      TEXT NOT NULL,
	user_id INTEGER NOT NULL,
	ip      TEXT NOT NULL,
	ok      INTEGER NOT NULL CHECK (ok IN (0, 1))
);
CREATE INDEX second_factor_attempts_user ON second_factor_attempts (user_id, at);
CREATE INDEX second_factor_attempts_ip ON second_factor_attempts (ip, at);

-- The roles an admin requires a second factor of.
CREATE TABLE second_factor_policy (
	role TEXT PRIMARY KEY CHECK (role IN ('admin', 'manager'))
) WITHOUT ROWID;
