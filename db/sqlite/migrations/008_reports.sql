-- The report registry and the boards' monthly subscriptions (issue 6).
--
-- Every report the portal generates is registered here with who asked, when,
-- the range it covers, the SHA-256 and size of the file it produced and the
-- signed log head it prints, so that a board member can later check that a
-- file in hand is one Doorledger issued and was not altered. A registered
-- report is never deleted, and once done its identity, hash and head never
-- change: the triggers below refuse both.

CREATE TABLE reports (
	id             TEXT PRIMARY KEY,        -- e.g. AR-7-20261122T093000Z-3f9a, printed on every page
	building_id    INTEGER NOT NULL REFERENCES buildings (id),
	format         TEXT NOT NULL CHECK (format IN ('pdf', 'csv', 'bundle')),
	from_date      TEXT NOT NULL,           -- 2006-01-02 in the building's time zone, both included
	to_date        TEXT NOT NULL,
	monthly        INTEGER NOT NULL DEFAULT 0 CHECK (monthly IN (0, 1)),
	requested_by   INTEGER NOT NULL DEFAULT 0, -- user id; 0 for the system
	requested_name TEXT NOT NULL,
	requested_at   TEXT NOT NULL,
	status         TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
	done           INTEGER NOT NULL DEFAULT 0 CHECK (done >= 0),
	total          INTEGER NOT NULL DEFAULT 0 CHECK (total >= 0),
	error          TEXT NOT NULL DEFAULT '',
	started_at     TEXT,
	done_at        TEXT,
	sha256         TEXT CHECK (sha256 IS NULL OR (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*')),
	bytes          INTEGER NOT NULL DEFAULT 0 CHECK (bytes >= 0),
	head_size      INTEGER NOT NULL DEFAULT 0 CHECK (head_size >= 0),
	head_root      BLOB CHECK (head_root IS NULL OR length(head_root) = 32),
	head_note      TEXT NOT NULL DEFAULT '',
	CHECK (from_date <= to_date),
	-- A done report has its file's hash and size.
	CHECK (status <> 'done' OR (sha256 IS NOT NULL AND bytes > 0 AND done_at IS NOT NULL))
);
-- "Was this file issued by Doorledger?": FindReportBySHA256.
CREATE INDEX reports_sha256 ON reports (sha256) WHERE sha256 IS NOT NULL;
-- A building's registry, newest first.
CREATE INDEX reports_building ON reports (building_id, requested_at, id);
-- The generator's queue, oldest first (and the running ones to requeue at start).
CREATE INDEX reports_status ON reports (status, requested_at, id);
-- One monthly report per building and month, even with several portals queueing.
CREATE UNIQUE INDEX reports_monthly ON reports (building_id, from_date) WHERE monthly = 1;

CREATE TRIGGER reports_done_immutable BEFORE UPDATE ON reports
WHEN OLD.status = 'done' AND (
	NEW.id IS NOT OLD.id OR NEW.building_id IS NOT OLD.building_id OR NEW.format IS NOT OLD.format
	OR NEW.from_date IS NOT OLD.from_date OR NEW.to_date IS NOT OLD.to_date OR NEW.monthly IS NOT OLD.monthly
	OR NEW.requested_by IS NOT OLD.requested_by OR NEW.requested_name IS NOT OLD.requested_name
	OR NEW.requested_at IS NOT OLD.requested_at OR NEW.status IS NOT OLD.status OR NEW.done_at IS NOT OLD.done_at
	OR NEW.sha256 IS NOT OLD.sha256 OR NEW.bytes IS NOT OLD.bytes
	OR NEW.head_size IS NOT OLD.head_size OR NEW.head_root IS NOT OLD.head_root OR NEW.head_note IS NOT OLD.head_note)
BEGIN
	SELECT RAISE(ABORT, 'a finished report is never changed');
END;
CREATE TRIGGER reports_no_delete BEFORE DELETE ON reports
BEGIN
	SELECT RAISE(ABORT, 'reports are never deleted from the registry');
END;

-- A user receives the building's monthly report by mail. Whether they still
-- may is checked when it is sent (grant, role, account not disabled).
CREATE TABLE report_subscriptions (
	user_id     INTEGER NOT NULL REFERENCES users (id),
	building_id INTEGER NOT NULL REFERENCES buildings (id),
	created_at  TEXT NOT NULL,
	PRIMARY KEY (user_id, building_id)
);
CREATE INDEX report_subscriptions_building ON report_subscriptions (building_id, user_id);
