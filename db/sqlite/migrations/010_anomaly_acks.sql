-- Acknowledgements of anomalous unlock events: a manager says what was done
-- about one ("device removed", "false alarm: delivery hours were wrong").
-- unlock_events refuses UPDATE, so the acknowledgement is a fact of its own:
-- one per event, never changed, never deleted. Its journal entry
-- (unlock.anomaly_ack, written in the same transaction) goes into the
-- verifiable log like every audit entry.
--
-- event_id is not a foreign key: the retention purge deletes old events, and
-- the acknowledgement (with its journal entry) stays as what was done. Event
-- ids are never reused (AUTOINCREMENT, see 003), so a kept acknowledgement can
-- never come to stand for another event. The insert trigger below checks the
-- event when the acknowledgement is written.
CREATE TABLE anomaly_acks (
	event_id    INTEGER PRIMARY KEY,        -- unlock_events.id; the key makes it one per event
	building_id INTEGER NOT NULL REFERENCES buildings (id),
	acked_at    TEXT NOT NULL,              -- portal clock, UTC text
	user_id     INTEGER REFERENCES users (id), -- NULL: the system
	actor       TEXT NOT NULL,              -- who, as the journal names them (email)
	note        TEXT NOT NULL CHECK (length(trim(note)) BETWEEN 1 AND 500)
);
-- A building's acknowledgements by time (what was done in a report's range).
CREATE INDEX anomaly_acks_building ON anomaly_acks (building_id, acked_at);

-- Only an anomalous event of the same building can be acknowledged.
CREATE TRIGGER anomaly_acks_event BEFORE INSERT ON anomaly_acks
WHEN NOT EXISTS (SELECT 1 FROM unlock_events e WHERE e.id = NEW.event_id AND e.building_id = NEW.building_id AND e.anomalies <> 0)
BEGIN
	SELECT RAISE(ABORT, 'only an anomalous unlock event of the building can be acknowledged');
END;
CREATE TRIGGER anomaly_acks_no_update BEFORE UPDATE ON anomaly_acks
BEGIN
	SELECT RAISE(ABORT, 'anomaly acknowledgements are never changed');
END;
CREATE TRIGGER anomaly_acks_no_delete BEFORE DELETE ON anomaly_acks
BEGIN
	SELECT RAISE(ABORT, 'anomaly acknowledgements are never deleted');
END;
