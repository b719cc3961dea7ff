-- Devices offline, as an index range (issue 14.1, performance): the time
-- after which each device in service is offline, kept on the device, so that
-- the attention list counts the devices offline at its clock with
-- `offline_after < now` over an index instead of comparing every silent
-- device with its heartbeat (its own, else its building's) one by one.
--
-- offline_after is the device's "since" (last seen, or registered if never)
-- plus that heartbeat, in the stored time layout
-- (YYYY-MM-DDTHH:MM:SS.ffffffZ): the whole seconds are added to the first 19
-- characters and the fraction is kept as written, so that comparing it with a
-- time as text is exactly UnlockService.OfflineDevices' rule
-- (now - since > heartbeat). NULL when the device is not watched (a heartbeat
-- of 0). Triggers keep it whichever path writes: a device registered, heard
-- from, or given its own heartbeat; a building's heartbeat changed (for its
-- devices without their own). NOTE: a migration that rebuilds the devices
-- table must make the column, its triggers and its index again.
ALTER TABLE devices ADD COLUMN offline_after TEXT;

UPDATE devices SET offline_after = (SELECT CASE WHEN COALESCE(devices.heartbeat_seconds, b.heartbeat_seconds) > 0 THEN
	strftime('%Y-%m-%dT%H:%M:%S', substr(COALESCE(devices.last_seen_at, devices.created_at), 1, 19),
		'+' || COALESCE(devices.heartbeat_seconds, b.heartbeat_seconds) || ' seconds')
	|| substr(COALESCE(devices.last_seen_at, devices.created_at), 20) END
	FROM buildings b WHERE b.id = devices.building_id);

CREATE TRIGGER devices_offline_after_insert AFTER INSERT ON devices
BEGIN
	UPDATE devices SET offline_after = (SELECT CASE WHEN COALESCE(devices.heartbeat_seconds, b.heartbeat_seconds) > 0 THEN
		strftime('%Y-%m-%dT%H:%M:%S', substr(COALESCE(devices.last_seen_at, devices.created_at), 1, 19),
			'+' || COALESCE(devices.heartbeat_seconds, b.heartbeat_seconds) || ' seconds')
		|| substr(COALESCE(devices.last_seen_at, devices.created_at), 20) END
		FROM buildings b WHERE b.id = devices.building_id)
	WHERE id = NEW.id;
END;

CREATE TRIGGER devices_offline_after_update AFTER UPDATE OF last_seen_at, created_at, heartbeat_seconds, building_id ON devices
BEGIN
	UPDATE devices SET offline_after = (SELECT CASE WHEN COALESCE(devices.heartbeat_seconds, b.heartbeat_seconds) > 0 THEN
		strftime('%Y-%m-%dT%H:%M:%S', substr(COALESCE(devices.last_seen_at, devices.created_at), 1, 19),
			'+' || COALESCE(devices.heartbeat_seconds, b.heartbeat_seconds) || ' seconds')
		|| substr(COALESCE(devices.last_seen_at, devices.created_at), 20) END
		FROM buildings b WHERE b.id = devices.building_id)
	WHERE id = NEW.id;
END;

CREATE TRIGGER buildings_offline_after AFTER UPDATE OF heartbeat_seconds ON buildings
BEGIN
	UPDATE devices SET offline_after = (SELECT CASE WHEN NEW.heartbeat_seconds > 0 THEN
		strftime('%Y-%m-%dT%H:%M:%S', substr(COALESCE(devices.last_seen_at, devices.created_at), 1, 19),
			'+' || NEW.heartbeat_seconds || ' seconds')
		|| substr(COALESCE(devices.last_seen_at, devices.created_at), 20) END)
	WHERE building_id = NEW.id AND heartbeat_seconds IS NULL;
END;

-- The devices in service by the time they are offline after (covering the
-- count per building). Migration 040's indexes served the comparison one by
-- one; nothing else reads them.
CREATE INDEX devices_offline ON devices (offline_after, building_id) WHERE retired = 0 AND offline_after IS NOT NULL;
DROP INDEX devices_silent;
DROP INDEX devices_heartbeat;

-- Migration 040's index of the commands to confirm, made again: on a
-- database that had 040 before 011 (issue 10.1, merged after it), 011's
-- rebuild of the commands table dropped it, and the attention list's count
-- of commands not confirmed scanned every command (15 ms of the admin's
-- list at 10,000 devices). On any other database it is there already.
CREATE INDEX IF NOT EXISTS commands_attention ON commands (building_id) WHERE status IN ('not_confirmed', 'refused');
