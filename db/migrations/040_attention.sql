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
