-- The report registry and the boards' monthly subscriptions (issue 6).
--
-- Every report the portal generates is registered here with who asked, when,
-- the range it covers, the SHA-256 and size of the file it produced and the
-- signed log head it prints. A registered report is never deleted, and once
-- done it never changes: the triggers below refuse both.
CREATE TABLE reports (
	id                  text PRIMARY KEY,    -- e.g. AR-7-20261122T093000Z-3f9a, printed on every page
	building_id         bigint NOT NULL REFERENCES buildings (id),
	format              text NOT NULL CHECK (format IN ('pdf', 'csv', 'bundle')),
	from_date           date NOT NULL,       -- in the building's time zone, both included
	to_date             date NOT NULL,
	monthly             boolean NOT NULL DEFAULT false,
	requested_by        bigint NOT NULL DEFAULT 0, -- user id; 0 for the system
	requested_name      text NOT NULL,
	requested_at        timestamptz NOT NULL,
	status              text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
	done                bigint NOT NULL DEFAULT 0 CHECK (done >= 0),
	total               bigint NOT NULL DEFAULT 0 CHECK (total >= 0),
	error               text NOT NULL DEFAULT '',
	started_at          timestamptz,
	done_at             timestamptz,
	sha256              text CHECK (sha256 IS NULL OR sha256 ~ '^[0-9a-f]{64}$'),
	bytes               bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0),
	head_size           bigint NOT NULL DEFAULT 0 CHECK (head_size >= 0),
	head_root           bytea CHECK (head_root IS NULL OR octet_length(head_root) = 32),
	head_note           text NOT NULL DEFAULT '',
	-- What a finished report holds, counted as it was written.
	held_anomalies      bigint CHECK (held_anomalies >= 0),
	held_open_anomalies bigint CHECK (held_open_anomalies >= 0 AND held_open_anomalies <= held_anomalies),
	held_consents       bigint CHECK (held_consents >= 0),
	held_devices        bigint CHECK (held_devices >= 0),
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
CREATE UNIQUE INDEX reports_monthly ON reports (building_id, from_date) WHERE monthly;

CREATE TRIGGER reports_no_delete BEFORE DELETE ON reports
	FOR EACH ROW EXECUTE FUNCTION refuse('reports are never deleted from the registry');
CREATE TRIGGER reports_no_truncate BEFORE TRUNCATE ON reports
	FOR EACH STATEMENT EXECUTE FUNCTION refuse('reports are never deleted from the registry');
CREATE TRIGGER reports_done_immutable BEFORE UPDATE ON reports
	FOR EACH ROW WHEN (OLD.status = 'done' AND (
	NEW.id IS DISTINCT FROM OLD.id OR NEW.building_id IS DISTINCT FROM OLD.building_id OR NEW.format IS DISTINCT FROM OLD.format
	OR NEW.from_date IS DISTINCT FROM OLD.from_date OR NEW.to_date IS DISTINCT FROM OLD.to_date OR NEW.monthly IS DISTINCT FROM OLD.monthly
	OR NEW.requested_by IS DISTINCT FROM OLD.requested_by OR NEW.requested_name IS DISTINCT FROM OLD.requested_name
	OR NEW.requested_at IS DISTINCT FROM OLD.requested_at OR NEW.status IS DISTINCT FROM OLD.status OR NEW.done_at IS DISTINCT FROM OLD.done_at
	OR NEW.sha256 IS DISTINCT FROM OLD.sha256 OR NEW.bytes IS DISTINCT FROM OLD.bytes
	OR NEW.head_size IS DISTINCT FROM OLD.head_size OR NEW.head_root IS DISTINCT FROM OLD.head_root OR NEW.head_note IS DISTINCT FROM OLD.head_note
	OR NEW.held_anomalies IS DISTINCT FROM OLD.held_anomalies OR NEW.held_open_anomalies IS DISTINCT FROM OLD.held_open_anomalies
	OR NEW.held_consents IS DISTINCT FROM OLD.held_consents OR NEW.held_devices IS DISTINCT FROM OLD.held_devices))
	EXECUTE FUNCTION refuse('a finished report is never changed');

-- A user receives the building's monthly report by mail. Whether they still
-- may is checked when it is sent (grant, role, account not disabled).
CREATE TABLE report_subscriptions (
	user_id     bigint NOT NULL REFERENCES users (id),
	building_id bigint NOT NULL REFERENCES buildings (id),
	created_at  timestamptz NOT NULL,
	PRIMARY KEY (user_id, building_id)
);
CREATE INDEX report_subscriptions_building ON report_subscriptions (building_id, user_id);
