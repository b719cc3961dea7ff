-- A command the device refused (issue 10.1). A device that reports the
-- version it was sent in the other state took the command and did not apply
-- it: the command is "refused", not "confirmed" and not merely waiting. It is
-- recorded when the report arrives (refused_at), journaled and alerted at
-- once, and still retried; it becomes confirmed if the device applies it
-- after all. The status list is a CHECK constraint, which SQLite cannot alter:
-- the table is rebuilt with the same rows (nothing references commands, and
-- no trigger reads it).
CREATE TABLE commands_new (
	id              INTEGER PRIMARY KEY,
	device_id       INTEGER NOT NULL REFERENCES devices (id),
	building_id     INTEGER NOT NULL REFERENCES buildings (id),
	state           TEXT NOT NULL CHECK (state IN ('enabled', 'disabled')),
	version         INTEGER NOT NULL,
	reason          TEXT NOT NULL DEFAULT '',
	requested_by_id INTEGER NOT NULL DEFAULT 0,
	requested_by    TEXT NOT NULL,
	requested_at    TEXT NOT NULL,
	sent_at         TEXT,
	attempts        INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT NOT NULL DEFAULT '',
	confirmed_at    TEXT,
	status          TEXT NOT NULL DEFAULT 'pending'
		CHECK (status IN ('pending', 'sent', 'confirmed', 'not_confirmed', 'superseded', 'refused')),
	refused_at      TEXT,                   -- when the device last reported this version in the other state
	UNIQUE (device_id, version),
	CHECK (status <> 'refused' OR refused_at IS NOT NULL),
	CHECK (status <> 'confirmed' OR confirmed_at IS NOT NULL)
);
INSERT INTO commands_new (id, device_id, building_id, state, version, reason, requested_by_id, requested_by, requested_at,
	sent_at, attempts, last_error, confirmed_at, status)
SELECT id, device_id, building_id, state, version, reason, requested_by_id, requested_by, requested_at,
	sent_at, attempts, last_error, confirmed_at, status FROM commands;
DROP TABLE commands;
ALTER TABLE commands_new RENAME TO commands;
-- Open commands: what the time-out job and the retries read.
CREATE INDEX commands_open ON commands (status, requested_at) WHERE status IN ('pending', 'sent', 'not_confirmed', 'refused');
CREATE INDEX commands_building ON commands (building_id, id);
