-- Disk-full episodes (issue 19, docs/reliability.md "Disk full"): from when
-- the portal refused ingest because the data directory's disk was (nearly)
-- full until space returned. One row per episode, so admins are alerted once
-- per episode even across a restart in the middle of one.
CREATE TABLE disk_full_episodes (
	id         INTEGER PRIMARY KEY,
	started_at TEXT NOT NULL,
	ended_at   TEXT,
	free_bytes INTEGER NOT NULL -- free space when it was recorded
);
