-- An unlock event's effective time (issue 10.4): when it counts as having
-- happened. A device whose clock is far from the portal's gets its events
-- flagged clock_skew (bit 32) when they are recorded, and those are judged by
-- the time the portal received them; every other event by the device's time.
-- Before, dated views (history filters and pages, CSV export, charts, reports,
-- retention) read occurred_at alone, so an event dated three days ahead, or a
-- year back, by a wrong clock fell outside every range that held it.
--
-- effective_at is stored with each event, written by the insert
-- (doorledger.UnlockEvent.EffectiveAt is the same rule in Go) and checked by
-- the trigger below, so that no path can record an event without it, or with
-- another time. A plain column, not a generated one: SQLite (3.53) never
-- takes an index on a generated column, VIRTUAL or STORED, as covering, and
-- the burst window's count and a report's count must stay index-only scans.
-- It is not part of an event's log leaf (auditlog encodes the facts as
-- received; this is derived from them), so no leaf changes.
ALTER TABLE unlock_events ADD COLUMN effective_at TEXT;

-- The events already recorded get theirs. Events are never changed
-- (unlock_events_no_update): the trigger is lifted for this one statement,
-- inside this migration's transaction, and put back exactly as it was.
DROP TRIGGER unlock_events_no_update;
UPDATE unlock_events SET effective_at = CASE WHEN anomalies & 32 <> 0 THEN received_at ELSE occurred_at END;
CREATE TRIGGER unlock_events_no_update BEFORE UPDATE ON unlock_events
BEGIN
	SELECT RAISE(ABORT, 'unlock events are never changed');
END;

CREATE TRIGGER unlock_events_effective_at BEFORE INSERT ON unlock_events
WHEN NEW.effective_at IS NOT (CASE WHEN NEW.anomalies & 32 <> 0 THEN NEW.received_at ELSE NEW.occurred_at END)
BEGIN
	SELECT RAISE(ABORT, 'an unlock event''s effective_at is its received_at when flagged clock_skew, else its occurred_at');
END;

-- The dated indexes, on the effective time instead of the device's: history
-- pages (keyset on (effective_at, id), newest first), date ranges, daily
-- counts, reports and the retention purge; one device's history; anomalies
-- only; and the burst window's count of granted unlocks (index-only).
DROP INDEX unlock_events_building;
CREATE INDEX unlock_events_building ON unlock_events (building_id, effective_at, id);
DROP INDEX unlock_events_device;
CREATE INDEX unlock_events_device ON unlock_events (device_id, effective_at, id);
DROP INDEX unlock_events_anomalous;
CREATE INDEX unlock_events_anomalous ON unlock_events (building_id, effective_at, id) WHERE anomalies <> 0;
DROP INDEX unlock_events_granted;
CREATE INDEX unlock_events_granted ON unlock_events (building_id, effective_at) WHERE result = 'granted';

-- Retention runs on the effective time and the time received, by SQLite's
-- own clock. Before, it ran on the device's time and the time received, so
-- an event a wrong clock dated ahead could not be purged until that date
-- came, long after its retention; an event dated in 1970 and received today
-- is still kept its full retention (both times must be past it).
DROP TRIGGER unlock_events_delete_only_expired;
CREATE TRIGGER unlock_events_delete_only_expired BEFORE DELETE ON unlock_events
WHEN NOT EXISTS (
	SELECT 1 FROM buildings b WHERE b.id = OLD.building_id
	AND OLD.effective_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || b.unlock_retention_days || ' days')
	AND OLD.received_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || b.unlock_retention_days || ' days'))
BEGIN
	SELECT RAISE(ABORT, 'unlock events are deleted only by the retention purge, once past the building''s retention');
END;
