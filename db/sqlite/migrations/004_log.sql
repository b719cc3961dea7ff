-- The verifiable log (docs/architecture.md, "The verifiable log"): every audit
-- entry, unlock event and retention purge, appended in order by the sequencer
-- as the leaves of a Merkle tree in the style of Certificate Transparency
-- (golang.org/x/mod/sumdb/tlog), whose heads are signed with the portal's key.
-- Writers never touch these tables; the sequencer appends to them in its own
-- transactions, so ingest and the audit journal stay as fast as before.

-- One row per entry, in log order.
CREATE TABLE log_leaves (
	idx    INTEGER PRIMARY KEY CHECK (idx >= 0), -- the position in the log, from 0
	kind   TEXT NOT NULL CHECK (kind IN ('audit', 'unlock', 'purge')),
	ref_id INTEGER NOT NULL,                     -- the row's id in audit_entries, unlock_events or log_purges
	enc    INTEGER NOT NULL DEFAULT 1,           -- the version of the canonical encoding the leaf hashes
	hash   BLOB NOT NULL CHECK (length(hash) = 32) -- SHA-256(0x00 || encoding)
);
-- A row is logged once; the sequencer resumes after each kind's largest id;
-- inclusion proofs look an entry up by its row.
CREATE UNIQUE INDEX log_leaves_ref ON log_leaves (kind, ref_id);

-- Every hash of the tree (leaves and complete inner nodes), at the index
-- tlog.StoredHashIndex gives it: any proof reads O(log n) of them.
CREATE TABLE log_hashes (
	idx  INTEGER PRIMARY KEY CHECK (idx >= 0),
	hash BLOB NOT NULL CHECK (length(hash) = 32)
);

-- Signed heads: the tree of the first size entries, its root, and the signed
-- note (golang.org/x/mod/sumdb/note) of tlog.FormatTree's text.
CREATE TABLE log_heads (
	size INTEGER PRIMARY KEY CHECK (size > 0),
	root BLOB NOT NULL CHECK (length(root) = 32),
	note TEXT NOT NULL,
	at   TEXT NOT NULL
);

-- Retention purges, logged as entries of kind 'purge': which rows went (their
-- ids as ranges "1-3,5") and the hash of their leaves. The leaves stay in the
-- log; verify accepts exactly the rows a logged purge names being gone.
CREATE TABLE log_purges (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	at          TEXT NOT NULL,
	actor       TEXT NOT NULL,
	of_kind     TEXT NOT NULL CHECK (of_kind IN ('unlock')), -- the kind of rows purged
	building_id INTEGER NOT NULL,
	cutoff      TEXT NOT NULL,                                -- rows older than this went
	ids         TEXT NOT NULL,
	leaves_hash BLOB NOT NULL CHECK (length(leaves_hash) = 32)
);

-- Append-only, like the journal: nothing is updated or deleted, and entries
-- and hashes arrive at the next position only (a sequencer bug cannot leave a
-- hole or overwrite).
CREATE TRIGGER log_leaves_no_update BEFORE UPDATE ON log_leaves
BEGIN
	SELECT RAISE(ABORT, 'the log is append-only');
END;
CREATE TRIGGER log_leaves_no_delete BEFORE DELETE ON log_leaves
BEGIN
	SELECT RAISE(ABORT, 'the log is append-only');
END;
CREATE TRIGGER log_leaves_next BEFORE INSERT ON log_leaves
WHEN NEW.idx IS NOT (SELECT COALESCE(MAX(idx) + 1, 0) FROM log_leaves)
BEGIN
	SELECT RAISE(ABORT, 'log entries are appended at the next position');
END;
CREATE TRIGGER log_hashes_no_update BEFORE UPDATE ON log_hashes
BEGIN
	SELECT RAISE(ABORT, 'the log is append-only');
END;
CREATE TRIGGER log_hashes_no_delete BEFORE DELETE ON log_hashes
BEGIN
	SELECT RAISE(ABORT, 'the log is append-only');
END;
CREATE TRIGGER log_hashes_next BEFORE INSERT ON log_hashes
WHEN NEW.idx IS NOT (SELECT COALESCE(MAX(idx) + 1, 0) FROM log_hashes)
BEGIN
	SELECT RAISE(ABORT, 'log hashes are appended at the next position');
END;
CREATE TRIGGER log_heads_no_update BEFORE UPDATE ON log_heads
BEGIN
	SELECT RAISE(ABORT, 'the log is append-only');
END;
CREATE TRIGGER log_heads_no_delete BEFORE DELETE ON log_heads
BEGIN
	SELECT RAISE(ABORT, 'the log is append-only');
END;
CREATE TRIGGER log_purges_no_update BEFORE UPDATE ON log_purges
BEGIN
	SELECT RAISE(ABORT, 'the log is append-only');
END;
CREATE TRIGGER log_purges_no_delete BEFORE DELETE ON log_purges
BEGIN
	SELECT RAISE(ABORT, 'the log is append-only');
END;
