-- A device's secret also hashed in Mosquitto's password-file format ($7$,
-- PBKDF2-SHA512), so that a deployment on an external Mosquitto can be given a
-- password file the portal writes from the database (portal mosquitto-config).
-- Empty for credentials issued before, or when no hasher is configured.
ALTER TABLE devices ADD COLUMN mosquitto_hash TEXT NOT NULL DEFAULT '';
