-- Vendor integrations: vendor clouds that control devices over HTTPS. The
-- portal POSTs desired state to their webhook; they post unlock events and
-- state confirmations to the portal's API. Both ways, requests are signed with
-- HMAC-SHA256 with one of the integration's keys.

-- Keys: verifying an HMAC needs the secret itself, so a key cannot be stored
-- hashed like a password or a device credential. It is stored sealed
-- (AES-256-GCM, the integration's id as associated data) under a key kept
-- outside the database (db.NewVendorService's sealKey, a file in the data
-- directory): a copy of the database alone, such as a backup, cannot forge a
-- vendor's unlock events or confirmations. The fingerprint (first 8 hex digits
-- of the key's SHA-256) tells keys apart on the page without revealing them.
CREATE TABLE vendor_integrations (
	id              INTEGER PRIMARY KEY,
	name            TEXT NOT NULL,
	webhook_url     TEXT NOT NULL,
	key_sealed      BLOB NOT NULL,               -- the current key: the portal signs with it
	key_fp          TEXT NOT NULL,
	key_at          TEXT NOT NULL,
	prev_key_sealed BLOB,                        -- the previous key, accepted until removed
	prev_key_fp     TEXT NOT NULL DEFAULT '',
	prev_key_at     TEXT,
	retired         INTEGER NOT NULL DEFAULT 0 CHECK (retired IN (0, 1)),
	retired_at      TEXT,
	created_at      TEXT NOT NULL,
	CHECK ((prev_key_sealed IS NULL) = (prev_key_at IS NULL))
);
-- One active integration per name.
CREATE UNIQUE INDEX vendor_integrations_name ON vendor_integrations (name COLLATE NOCASE) WHERE retired = 0;
CREATE TRIGGER vendor_integrations_no_delete BEFORE DELETE ON vendor_integrations
BEGIN
	SELECT RAISE(ABORT, 'vendor integrations are retired, never deleted');
END;

-- The buildings an integration may report for.
CREATE TABLE vendor_integration_buildings (
	vendor_integration_id INTEGER NOT NULL REFERENCES vendor_integrations (id),
	building_id           INTEGER NOT NULL REFERENCES buildings (id),
	PRIMARY KEY (vendor_integration_id, building_id)
);
CREATE INDEX vendor_integration_buildings_building ON vendor_integration_buildings (building_id);

-- The integration that controls a device (NULL: MQTT). Only one that covers
-- the device's building: the database refuses anything else.
ALTER TABLE devices ADD COLUMN vendor_integration_id INTEGER REFERENCES vendor_integrations (id);
CREATE INDEX devices_vendor_integration ON devices (vendor_integration_id) WHERE vendor_integration_id IS NOT NULL;
CREATE TRIGGER devices_vendor_covers_building BEFORE UPDATE OF vendor_integration_id, building_id ON devices
WHEN NEW.vendor_integration_id IS NOT NULL AND NOT EXISTS (
	SELECT 1 FROM vendor_integration_buildings vb
	WHERE vb.vendor_integration_id = NEW.vendor_integration_id AND vb.building_id = NEW.building_id)
BEGIN
	SELECT RAISE(ABORT, 'a device''s vendor integration must cover its building');
END;

-- Signed requests already accepted, until their signature goes stale: a replay
-- of one (the same timestamp and body) is refused. Rows past expires_at are
-- deleted as new ones arrive.
CREATE TABLE vendor_requests (
	vendor_integration_id INTEGER NOT NULL REFERENCES vendor_integrations (id),
	digest                BLOB NOT NULL CHECK (length(digest) = 32), -- SHA-256 of "<t>.<body>"
	expires_at            TEXT NOT NULL,
	PRIMARY KEY (vendor_integration_id, digest)
);
CREATE INDEX vendor_requests_expiry ON vendor_requests (expires_at);
