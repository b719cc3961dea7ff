-- The log's order under concurrent writers (issue 15). The log holds each
-- kind's rows in increasing id order (auditlog's checker refuses any other),
-- but ids are not commit order on PostgreSQL: a transaction may take id 5,
-- another id 6 and commit first. The sequencer therefore logs a kind's rows
-- only up to a horizon below which every id is settled (committed or rolled
-- back), found without blocking any writer (LogService.horizon):
--
--   1. it reads each sequence's last value L (every id <= L is allocated);
--   2. then takes a snapshot: every transaction that allocated an id <= L
--      had its transaction id before it, so it is either finished or in the
--      snapshot's in-progress list;
--   3. once none of those is still in progress, every id <= L is settled.
--
-- Step 2 holds only if a transaction has its transaction id BEFORE it takes
-- a row id: PostgreSQL assigns one at a transaction's first write, and the
-- identity default (nextval) runs before the row is written. So these ids
-- come from logged_id(), which assigns the transaction id first.
CREATE FUNCTION logged_id(seq regclass) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	PERFORM pg_current_xact_id();
	RETURN nextval(seq);
END $$;

ALTER TABLE audit_entries ALTER COLUMN id DROP IDENTITY;
CREATE SEQUENCE audit_entries_id_seq OWNED BY audit_entries.id;
SELECT setval('audit_entries_id_seq', COALESCE((SELECT MAX(id) FROM audit_entries), 0) + 1, false);
ALTER TABLE audit_entries ALTER COLUMN id SET DEFAULT logged_id('audit_entries_id_seq');

ALTER TABLE unlock_events ALTER COLUMN id DROP IDENTITY;
CREATE SEQUENCE unlock_events_id_seq OWNED BY unlock_events.id;
SELECT setval('unlock_events_id_seq', COALESCE((SELECT MAX(id) FROM unlock_events), 0) + 1, false);
ALTER TABLE unlock_events ALTER COLUMN id SET DEFAULT logged_id('unlock_events_id_seq');

ALTER TABLE log_purges ALTER COLUMN id DROP IDENTITY;
CREATE SEQUENCE log_purges_id_seq OWNED BY log_purges.id;
SELECT setval('log_purges_id_seq', COALESCE((SELECT MAX(id) FROM log_purges), 0) + 1, false);
ALTER TABLE log_purges ALTER COLUMN id SET DEFAULT logged_id('log_purges_id_seq');
