-- The attention list (issue 14.1): what needs a manager, counted per building
-- for every building they see, on each render of the first screen and of its
-- live stream. Every count is read from a small index, never from the whole
-- history.

-- Open anomalies (flagged unlock events without an acknowledgement), kept per
-- building at write time: with millions of events, 2% of them flagged,
-- counting them at read time walks every flagged event and probes
-- anomaly_acks for each (tens of ms a building list). Triggers keep the
-- count whichever path writes: ingest (MQTT, HTTPS, CSV import), an
-- acknowledgement (one per event: anomaly_acks' key), and the retention
-- purge of an event never acknowledged.
CREATE TABLE building_open_anomalies (
	building_id INTEGER PRIMARY KEY REFERENCES buildings (id),
	n           INTEGER NOT NULL DEFAULT 0 CHECK (n >= 0)
);
INSERT INTO building_open_anomalies (building_id, n)
	SELECT b.id, (SELECT COUNT(*) FROM unlock_events e WHERE e.building_id = b.id AND e.anomalies <> 0
		AND NOT EXISTS (SELECT 1 FROM anomaly_acks a WHERE a.event_id = e.id))
	FROM buildings b;
CREATE TRIGGER building_open_anomalies_building AFTER INSERT ON buildings
BEGIN
	INSERT INTO building_open_anomalies (building_id) VALUES (NEW.id);
END;
CREATE TRIGGER building_open_anomalies_event AFTER INSERT ON unlock_events
WHEN NEW.anomalies <> 0
BEGIN
	UPDATE building_open_anomalies SET n = n + 1 WHERE building_id = NEW.building_id;
END;
CREATE TRIGGER building_open_anomalies_ack AFTER INSERT ON anomaly_acks
BEGIN
	UPDATE building_open_anomalies SET n = n - 1 WHERE building_id = NEW.building_id;
END;
CREATE TRIGGER building_open_anomalies_purge AFTER DELETE ON unlock_events
WHEN OLD.anomalies <> 0 AND NOT EXISTS (SELECT 1 FROM anomaly_acks a WHERE a.event_id = OLD.id)
BEGIN
	UPDATE building_open_anomalies SET n = n - 1 WHERE building_id = OLD.building_id;
END;

-- Devices in service flagged unconsented.
CREATE INDEX devices_unconsented ON devices (building_id) WHERE unconsented = 1 AND retired = 0;

-- Withdrawals and disputes by date (the last 7 days).
CREATE INDEX consent_events_ended ON consent_events (at) WHERE kind IN ('withdrawn', 'disputed');

-- Commands a device did not confirm or refused ('refused': issue 10.1's
-- status, counted wherever the schema has it). NOTE: migration 011 (issue
-- 10.1) rebuilds the commands table; where it runs after this one, this
-- index must be made again after it.
CREATE INDEX commands_attention ON commands (building_id) WHERE status IN ('not_confirmed', 'refused');

-- Devices offline past their heartbeat: the silent ones by how long, so that
-- only those silent longer than the shortest heartbeat in use are checked
-- one by one; and the shortest device heartbeat at once.
CREATE INDEX devices_silent ON devices (COALESCE(last_seen_at, created_at)) WHERE retired = 0;
CREATE INDEX devices_heartbeat ON devices (heartbeat_seconds) WHERE heartbeat_seconds IS NOT NULL;
