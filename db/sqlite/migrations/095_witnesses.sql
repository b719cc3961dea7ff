-- Witnesses (issue 20, docs/witnesses.md): outside parties that cosign the
-- log's checkpoints (c2sp.org/tlog-witness), the policy "k of n", and what
-- they answered. Cosignatures and refusals are evidence: append-only.

CREATE TABLE witnesses (
	id         INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,              -- the admin's label
	url        TEXT NOT NULL,              -- base URL; add-checkpoint is beside it
	vkey       TEXT NOT NULL,              -- its cosignature verifier key
	added_at   TEXT NOT NULL,
	removed_at TEXT                        -- removed: no longer submitted to, its cosignatures no longer count
);
CREATE UNIQUE INDEX witnesses_name ON witnesses (name) WHERE removed_at IS NULL;
CREATE UNIQUE INDEX witnesses_vkey ON witnesses (vkey) WHERE removed_at IS NULL;

-- Submission state, one row per witness, rewritten at each attempt.
CREATE TABLE witness_state (
	witness_id      INTEGER PRIMARY KEY REFERENCES witnesses (id),
	known_size      INTEGER NOT NULL DEFAULT -1, -- the size its last 409 named (-1: none since its last cosignature)
	failures        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at TEXT NOT NULL DEFAULT '',
	last_error      TEXT NOT NULL DEFAULT ''
);

-- One row: k of the configured witnesses must cosign (0: none asked).
CREATE TABLE witness_policy (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	k  INTEGER NOT NULL CHECK (k >= 0)
);
INSERT INTO witness_policy (id, k) VALUES (1, 0);

-- Cosignatures, each of one signed head by one witness, as received.
CREATE TABLE witness_cosignatures (
	id          INTEGER PRIMARY KEY,
	witness_id  INTEGER NOT NULL REFERENCES witnesses (id),
	size        INTEGER NOT NULL REFERENCES log_heads (size),
	line        TEXT NOT NULL,    -- "— <name> <base64>"
	signed_at   TEXT NOT NULL,    -- the time in the cosignature
	received_at TEXT NOT NULL,
	UNIQUE (witness_id, size)
);
CREATE INDEX witness_cosignatures_size ON witness_cosignatures (size, witness_id);
CREATE TRIGGER witness_cosignatures_no_update BEFORE UPDATE ON witness_cosignatures
BEGIN
	SELECT RAISE(ABORT, 'witness cosignatures are append-only');
END;
CREATE TRIGGER witness_cosignatures_no_delete BEFORE DELETE ON witness_cosignatures
BEGIN
	SELECT RAISE(ABORT, 'witness cosignatures are append-only');
END;

-- Refusals: status 422 or 403 (security = 1) are the alarms.
CREATE TABLE witness_refusals (
	id         INTEGER PRIMARY KEY,
	witness_id INTEGER NOT NULL REFERENCES witnesses (id),
	size       INTEGER NOT NULL,
	status     INTEGER NOT NULL,
	reason     TEXT NOT NULL,
	security   INTEGER NOT NULL CHECK (security IN (0, 1)),
	at         TEXT NOT NULL
);
CREATE INDEX witness_refusals_witness ON witness_refusals (witness_id, id);
CREATE TRIGGER witness_refusals_no_update BEFORE UPDATE ON witness_refusals
BEGIN
	SELECT RAISE(ABORT, 'witness refusals are append-only');
END;
CREATE TRIGGER witness_refusals_no_delete BEFORE DELETE ON witness_refusals
BEGIN
	SELECT RAISE(ABORT, 'witness refusals are append-only');
END;
