-- What a finished report holds, counted as it was written, so that its page can
-- say first what the board wants: its events (reports.total), the anomalies
-- among them and how many were still open, and the consents and devices it
-- lists. NULL for reports finished before this was recorded: their pages say
-- only what they always said.
ALTER TABLE reports ADD COLUMN held_anomalies INTEGER CHECK (held_anomalies >= 0);
ALTER TABLE reports ADD COLUMN held_open_anomalies INTEGER CHECK (held_open_anomalies >= 0 AND held_open_anomalies <= held_anomalies);
ALTER TABLE reports ADD COLUMN held_consents INTEGER CHECK (held_consents >= 0);
ALTER TABLE reports ADD COLUMN held_devices INTEGER CHECK (held_devices >= 0);

-- A finished report stays as it was, these counts included.
DROP TRIGGER reports_done_immutable;
CREATE TRIGGER reports_done_immutable BEFORE UPDATE ON reports
WHEN OLD.status = 'done' AND (
	NEW.id IS NOT OLD.id OR NEW.building_id IS NOT OLD.building_id OR NEW.format IS NOT OLD.format
	OR NEW.from_date IS NOT OLD.from_date OR NEW.to_date IS NOT OLD.to_date OR NEW.monthly IS NOT OLD.monthly
	OR NEW.requested_by IS NOT OLD.requested_by OR NEW.requested_name IS NOT OLD.requested_name
	OR NEW.requested_at IS NOT OLD.requested_at OR NEW.status IS NOT OLD.status OR NEW.done_at IS NOT OLD.done_at
	OR NEW.sha256 IS NOT OLD.sha256 OR NEW.bytes IS NOT OLD.bytes
	OR NEW.head_size IS NOT OLD.head_size OR NEW.head_root IS NOT OLD.head_root OR NEW.head_note IS NOT OLD.head_note
	OR NEW.held_anomalies IS NOT OLD.held_anomalies OR NEW.held_open_anomalies IS NOT OLD.held_open_anomalies
	OR NEW.held_consents IS NOT OLD.held_consents OR NEW.held_devices IS NOT OLD.held_devices)
BEGIN
	SELECT RAISE(ABORT, 'a finished report is never changed');
END;
