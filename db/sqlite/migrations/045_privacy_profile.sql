-- The Tenant Data Privacy Act profile (issue 12.3; New York City's Local Law
-- 63 of 2021, Admin. Code §26-3001 ff.), per building, off by default. Under
-- it: no device is enabled unless the vendor disclosure record it names is
-- complete; identifiable unlock data (the courier / package / credential /
-- person reference, actor_ref) older than 90 days is removed by the retention
-- job, the removal a logged fact; and the building publishes a tenant privacy
-- notice made from the disclosure records.

-- '': no profile; 'nyc_tdpa': the Tenant Data Privacy Act profile.
ALTER TABLE buildings ADD COLUMN privacy_profile TEXT NOT NULL DEFAULT '' CHECK (privacy_profile IN ('', 'nyc_tdpa'));
ALTER TABLE buildings ADD COLUMN privacy_profile_at TEXT;

-- What a vendor discloses of a device's data, as the law asks: its legal
-- name, the data the device collects, why, for how long, and its privacy
-- policy. Kept per building (its managers keep them); every device names one.
CREATE TABLE vendor_disclosures (
	id             INTEGER PRIMARY KEY,
	building_id    INTEGER NOT NULL REFERENCES buildings (id),
	legal_name     TEXT NOT NULL DEFAULT '' CHECK (length(legal_name) <= 200),
	data_collected TEXT NOT NULL DEFAULT '' CHECK (length(data_collected) <= 2000),
	purpose        TEXT NOT NULL DEFAULT '' CHECK (length(purpose) <= 2000),
	retention      TEXT NOT NULL DEFAULT '' CHECK (length(retention) <= 1000),
	policy_url     TEXT NOT NULL DEFAULT '' CHECK (length(policy_url) <= 500),
	created_at     TEXT NOT NULL,
	updated_at     TEXT NOT NULL
);
CREATE INDEX vendor_disclosures_building ON vendor_disclosures (building_id, id);
CREATE TRIGGER vendor_disclosures_no_delete BEFORE DELETE ON vendor_disclosures
BEGIN
	SELECT RAISE(ABORT, 'vendor disclosure records are never deleted');
END;

ALTER TABLE devices ADD COLUMN vendor_disclosure_id INTEGER REFERENCES vendor_disclosures (id);

-- A device names a disclosure of its own building.
CREATE TRIGGER devices_disclosure_same_building BEFORE UPDATE OF vendor_disclosure_id, building_id ON devices
WHEN NEW.vendor_disclosure_id IS NOT NULL AND NOT EXISTS (
	SELECT 1 FROM vendor_disclosures v WHERE v.id = NEW.vendor_disclosure_id AND v.building_id = NEW.building_id)
BEGIN
	SELECT RAISE(ABORT, 'a device''s vendor disclosure record must be of its own building');
END;

-- Under the profile, a device is enabled only when the disclosure record it
-- names is complete (every field given, the policy an http(s) URL), as the
-- consent rule is enforced: whatever path writes the row.
CREATE TRIGGER devices_enable_needs_disclosure_insert BEFORE INSERT ON devices
WHEN NEW.desired_state = 'enabled'
	AND (SELECT privacy_profile FROM buildings WHERE id = NEW.building_id) = 'nyc_tdpa'
	AND NOT EXISTS (SELECT 1 FROM vendor_disclosures v WHERE v.id = NEW.vendor_disclosure_id AND v.building_id = NEW.building_id
		AND trim(v.legal_name) <> '' AND trim(v.data_collected) <> '' AND trim(v.purpose) <> '' AND trim(v.retention) <> ''
		AND (v.policy_url LIKE 'https://_%' OR v.policy_url LIKE 'http://_%'))
BEGIN
	SELECT RAISE(ABORT, 'under the Tenant Data Privacy Act profile no device is enabled without a complete vendor disclosure record');
END;
CREATE TRIGGER devices_enable_needs_disclosure_update BEFORE UPDATE OF desired_state, vendor_disclosure_id, building_id ON devices
WHEN NEW.desired_state = 'enabled'
	AND (SELECT privacy_profile FROM buildings WHERE id = NEW.building_id) = 'nyc_tdpa'
	AND NOT EXISTS (SELECT 1 FROM vendor_disclosures v WHERE v.id = NEW.vendor_disclosure_id AND v.building_id = NEW.building_id
		AND trim(v.legal_name) <> '' AND trim(v.data_collected) <> '' AND trim(v.purpose) <> '' AND trim(v.retention) <> ''
		AND (v.policy_url LIKE 'https://_%' OR v.policy_url LIKE 'http://_%'))
BEGIN
	SELECT RAISE(ABORT, 'under the Tenant Data Privacy Act profile no device is enabled without a complete vendor disclosure record');
END;
-- A record an enabled device of a profile building names stays complete.
CREATE TRIGGER vendor_disclosures_stay_complete BEFORE UPDATE ON vendor_disclosures
WHEN NOT (trim(NEW.legal_name) <> '' AND trim(NEW.data_collected) <> '' AND trim(NEW.purpose) <> '' AND trim(NEW.retention) <> ''
		AND (NEW.policy_url LIKE 'https://_%' OR NEW.policy_url LIKE 'http://_%'))
	AND EXISTS (SELECT 1 FROM devices d JOIN buildings b ON b.id = d.building_id
		WHERE d.vendor_disclosure_id = OLD.id AND d.desired_state = 'enabled' AND b.privacy_profile = 'nyc_tdpa')
BEGIN
	SELECT RAISE(ABORT, 'an enabled device names this vendor disclosure record: it must stay complete');
END;
CREATE TRIGGER vendor_disclosures_same_building BEFORE UPDATE OF building_id ON vendor_disclosures
WHEN NEW.building_id IS NOT OLD.building_id
BEGIN
	SELECT RAISE(ABORT, 'a vendor disclosure record stays with its building');
END;

-- Redaction. An event's identifiable field (actor_ref) is removed once, by
-- the retention job, under a journal entry ('unlock.redact') that names the
-- events and commits to their log leaves and what remains of them
-- (docs/architecture.md, "The Tenant Data Privacy Act profile").
-- redaction_id is that entry's id; NULL: not redacted.
ALTER TABLE unlock_events ADD COLUMN redaction_id INTEGER;
ALTER TABLE unlock_events ADD COLUMN redacted_at TEXT;

-- Events are facts: never changed (003), but for that one change. The
-- database allows exactly it: actor_ref emptied, the redaction recorded, every
-- other column as it was, for an event of a building under the profile whose
-- effective time (012: the time received when the device's clock is skewed)
-- is more than 90 days old by SQLite's own clock, under a redaction entry of
-- the event's building.
DROP TRIGGER IF EXISTS unlock_events_no_update;
CREATE TRIGGER unlock_events_no_update BEFORE UPDATE ON unlock_events
WHEN NOT (
	OLD.redaction_id IS NULL AND OLD.redacted_at IS NULL AND NEW.redaction_id IS NOT NULL AND NEW.redacted_at IS NOT NULL
	AND NEW.actor_ref = '' AND OLD.actor_ref <> ''
	AND NEW.id IS OLD.id AND NEW.building_id IS OLD.building_id AND NEW.device_id IS OLD.device_id
	AND NEW.device_ref IS OLD.device_ref AND NEW.event_id IS OLD.event_id AND NEW.occurred_at IS OLD.occurred_at
	AND NEW.received_at IS OLD.received_at AND NEW.effective_at IS OLD.effective_at
	AND NEW.method IS OLD.method AND NEW.result IS OLD.result
	AND NEW.anomalies IS OLD.anomalies AND NEW.source IS OLD.source
	AND (SELECT privacy_profile FROM buildings WHERE id = OLD.building_id) = 'nyc_tdpa'
	AND OLD.effective_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-90 days')
	AND EXISTS (SELECT 1 FROM audit_entries a WHERE a.id = NEW.redaction_id AND a.action = 'unlock.redact'
		AND a.building_id = OLD.building_id)
	AND EXISTS (SELECT 1 FROM unlock_redactions r WHERE r.unlock_id = OLD.id AND r.redaction_id = NEW.redaction_id))
BEGIN
	SELECT RAISE(ABORT, 'unlock events are never changed, but for the redaction of identifiable data after 90 days under the privacy profile');
END;
-- The redaction job's scan: a building's events still holding identifiable data.
CREATE INDEX unlock_events_identifiable ON unlock_events (building_id, effective_at, id) WHERE actor_ref <> '' AND redaction_id IS NULL;

-- What each redaction removed, for good: the event's leaf as logged and the
-- leaf hash of what remains (auditlog.RedactedLeaf). Hashes only, and kept
-- when the retention purge later deletes the event, so a redaction's digest
-- (in its journal entry) can always be recomputed. Append-only.
CREATE TABLE unlock_redactions (
	unlock_id    INTEGER PRIMARY KEY,
	redaction_id INTEGER NOT NULL,
	leaf         BLOB NOT NULL CHECK (length(leaf) = 32),
	redacted     BLOB NOT NULL CHECK (length(redacted) = 32)
);
CREATE INDEX unlock_redactions_entry ON unlock_redactions (redaction_id, unlock_id);
CREATE TRIGGER unlock_redactions_no_update BEFORE UPDATE ON unlock_redactions
BEGIN
	SELECT RAISE(ABORT, 'redaction records are never changed');
END;
CREATE TRIGGER unlock_redactions_no_delete BEFORE DELETE ON unlock_redactions
BEGIN
	SELECT RAISE(ABORT, 'redaction records are never deleted');
END;
