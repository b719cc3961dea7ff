-- TRUNCATE fires no row trigger: the append-only tables of the unlock
-- cluster refuse it as unlock_events and audit_entries do (SQLite has no
-- TRUNCATE; its DELETE triggers are the whole rule there).
CREATE TRIGGER anomaly_acks_no_truncate BEFORE TRUNCATE ON anomaly_acks
	FOR EACH STATEMENT EXECUTE FUNCTION refuse('anomaly acknowledgements are never deleted');
CREATE TRIGGER unlock_redactions_no_truncate BEFORE TRUNCATE ON unlock_redactions
	FOR EACH STATEMENT EXECUTE FUNCTION refuse('redaction records are never deleted');
