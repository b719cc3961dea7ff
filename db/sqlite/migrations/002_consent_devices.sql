-- Consents, the devices they cover, commands to devices, installer invitations
-- and the mail outbox. The core rule — no device is enabled without an active
-- consent of its building — is enforced here as well as in the services.

ALTER TABLE buildings ADD COLUMN consent_months INTEGER NOT NULL DEFAULT 12 CHECK (consent_months BETWEEN 1 AND 120);

-- Mail is written here in the same transaction as the fact it reports, and sent
-- (or, without SMTP settings, logged) by the mail dispatcher.
CREATE TABLE outbox (
	id          INTEGER PRIMARY KEY,
	created_at  TEXT NOT NULL,
	to_addr     TEXT NOT NULL,
	subject     TEXT NOT NULL,
	body        TEXT NOT NULL,
	kind        TEXT NOT NULL,            -- e.g. invitation, signing_link, signing_code, signed, alert
	building_id INTEGER NOT NULL DEFAULT 0,
	dedup_key   TEXT,                     -- alerts: one mail per key
	sent_at     TEXT,
	attempts    INTEGER NOT NULL DEFAULT 0,
	last_error  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_unsent ON outbox (sent_at, id);
CREATE UNIQUE INDEX outbox_dedup ON outbox (dedup_key) WHERE dedup_key IS NOT NULL;

CREATE TABLE invitations (
	id           INTEGER PRIMARY KEY,
	building_id  INTEGER NOT NULL REFERENCES buildings (id),
	email        TEXT NOT NULL,
	name         TEXT NOT NULL,
	company      TEXT NOT NULL,
	token_hash   TEXT NOT NULL UNIQUE,
	invited_by   INTEGER NOT NULL REFERENCES users (id),
	created_at   TEXT NOT NULL,
	expires_at   TEXT NOT NULL,
	accepted_at  TEXT,
	withdrawn_at TEXT,
	user_id      INTEGER REFERENCES users (id)
);
CREATE INDEX invitations_building ON invitations (building_id, id);

CREATE TABLE consents (
	id            INTEGER PRIMARY KEY,
	building_id   INTEGER NOT NULL REFERENCES buildings (id),
	installer_id  INTEGER NOT NULL REFERENCES users (id),
	signer_id     INTEGER NOT NULL REFERENCES signers (id),
	device_id     INTEGER,              -- set right after the device row is made
	renewal_of    INTEGER REFERENCES consents (id),
	vendor        TEXT NOT NULL,
	model         TEXT NOT NULL,
	serial        TEXT NOT NULL,
	location      TEXT NOT NULL,
	opens         TEXT NOT NULL,
	mode          TEXT NOT NULL CHECK (mode IN ('link', 'in_person')),
	requested_at  TEXT NOT NULL,
	status        TEXT NOT NULL DEFAULT 'awaiting_signature'
		CHECK (status IN ('awaiting_signature', 'signed', 'declined', 'withdrawn', 'disputed', 'lapsed')),
	status_at     TEXT NOT NULL,
	status_note   TEXT NOT NULL DEFAULT '',
	-- Evidence, written once at signing; the trigger below refuses any later change.
	terms         TEXT,
	terms_sha256  TEXT,
	typed_name    TEXT,
	signature_png BLOB,
	signed_at     TEXT,
	signed_tz     TEXT,
	signed_ip     TEXT,
	signed_ua     TEXT,
	method        TEXT CHECK (method IS NULL OR method IN ('link', 'code')),
	expires_at    TEXT,
	CHECK (status NOT IN ('signed', 'withdrawn', 'disputed', 'lapsed')
		OR (signed_at IS NOT NULL AND terms_sha256 IS NOT NULL AND signature_png IS NOT NULL AND typed_name IS NOT NULL AND method IS NOT NULL AND expires_at IS NOT NULL))
);
CREATE INDEX consents_building ON consents (building_id, status, id);
CREATE INDEX consents_installer ON consents (installer_id, id);
CREATE INDEX consents_due ON consents (status, expires_at);

-- Signed consents are immutable: once signed_at is set, the evidence and the
-- device details cannot change, and a consent that ended cannot come back.
CREATE TRIGGER consents_signed_immutable BEFORE UPDATE ON consents
WHEN OLD.signed_at IS NOT NULL AND (
	NEW.terms IS NOT OLD.terms OR NEW.terms_sha256 IS NOT OLD.terms_sha256 OR NEW.typed_name IS NOT OLD.typed_name
	OR NEW.signature_png IS NOT OLD.signature_png OR NEW.signed_at IS NOT OLD.signed_at OR NEW.signed_tz IS NOT OLD.signed_tz
	OR NEW.signed_ip IS NOT OLD.signed_ip OR NEW.signed_ua IS NOT OLD.signed_ua OR NEW.method IS NOT OLD.method
	OR NEW.expires_at IS NOT OLD.expires_at OR NEW.signer_id IS NOT OLD.signer_id OR NEW.building_id IS NOT OLD.building_id
	OR NEW.installer_id IS NOT OLD.installer_id OR NEW.vendor IS NOT OLD.vendor OR NEW.model IS NOT OLD.model
	OR NEW.serial IS NOT OLD.serial OR NEW.location IS NOT OLD.location OR NEW.opens IS NOT OLD.opens
	OR NEW.requested_at IS NOT OLD.requested_at OR NEW.device_id IS NOT OLD.device_id)
BEGIN
	SELECT RAISE(ABORT, 'signed consents are immutable');
END;
CREATE TRIGGER consents_status_forward BEFORE UPDATE OF status ON consents
WHEN OLD.status IN ('declined', 'withdrawn', 'disputed', 'lapsed') AND NEW.status IS NOT OLD.status
BEGIN
	SELECT RAISE(ABORT, 'an ended consent cannot change status');
END;
CREATE TRIGGER consents_signed_only_from_awaiting BEFORE UPDATE OF status ON consents
WHEN NEW.status = 'signed' AND OLD.status <> 'awaiting_signature' AND OLD.status <> 'signed'
BEGIN
	SELECT RAISE(ABORT, 'only an awaiting consent can be signed');
END;
CREATE TRIGGER consents_no_delete BEFORE DELETE ON consents
BEGIN
	SELECT RAISE(ABORT, 'consents are never deleted');
END;

-- The consent's timeline: requested, mailed, opened, code sent/failed, signed,
-- declined, withdrawn, disputed, lapsed. Append-only.
CREATE TABLE consent_events (
	id         INTEGER PRIMARY KEY,
	consent_id INTEGER NOT NULL REFERENCES consents (id),
	at         TEXT NOT NULL,
	kind       TEXT NOT NULL,
	note       TEXT NOT NULL DEFAULT '',
	ip         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX consent_events_consent ON consent_events (consent_id, id);
CREATE TRIGGER consent_events_no_update BEFORE UPDATE ON consent_events
BEGIN
	SELECT RAISE(ABORT, 'consent_events is append-only');
END;
CREATE TRIGGER consent_events_no_delete BEFORE DELETE ON consent_events
BEGIN
	SELECT RAISE(ABORT, 'consent_events is append-only');
END;

-- One-time tokens mailed to the signer: the signing link, and the withdraw and
-- "I did not sign this" links of the confirmation. Stored as SHA-256 only.
CREATE TABLE consent_tokens (
	id         INTEGER PRIMARY KEY,
	consent_id INTEGER NOT NULL REFERENCES consents (id),
	purpose    TEXT NOT NULL CHECK (purpose IN ('sign', 'withdraw', 'dispute')),
	token_hash TEXT NOT NULL UNIQUE,
	created_at TEXT NOT NULL,
	expires_at TEXT NOT NULL,
	used_at    TEXT
);
CREATE INDEX consent_tokens_consent ON consent_tokens (consent_id, purpose);

-- 6-digit codes for signing in person on the installer's screen.
CREATE TABLE consent_codes (
	id         INTEGER PRIMARY KEY,
	consent_id INTEGER NOT NULL REFERENCES consents (id),
	code_hash  TEXT NOT NULL,
	created_at TEXT NOT NULL,
	expires_at TEXT NOT NULL,
	attempts   INTEGER NOT NULL DEFAULT 0,
	used_at    TEXT
);
CREATE INDEX consent_codes_consent ON consent_codes (consent_id, id);

CREATE TABLE consent_photos (
	id           INTEGER PRIMARY KEY,
	consent_id   INTEGER NOT NULL REFERENCES consents (id),
	content_type TEXT NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png')),
	data         BLOB NOT NULL,
	sha256       TEXT NOT NULL,
	created_at   TEXT NOT NULL
);
CREATE INDEX consent_photos_consent ON consent_photos (consent_id);

CREATE TABLE devices (
	id               INTEGER PRIMARY KEY,
	building_id      INTEGER NOT NULL REFERENCES buildings (id),
	vendor           TEXT NOT NULL,
	model            TEXT NOT NULL,
	serial           TEXT NOT NULL,
	location         TEXT NOT NULL,
	opens            TEXT NOT NULL DEFAULT '',
	installer_id     INTEGER REFERENCES users (id),
	consent_id       INTEGER REFERENCES consents (id),
	origin           TEXT NOT NULL CHECK (origin IN ('consent_request', 'found')),
	transport        TEXT NOT NULL DEFAULT 'mqtt' CHECK (transport IN ('mqtt', 'webhook')),
	unconsented      INTEGER NOT NULL DEFAULT 0 CHECK (unconsented IN (0, 1)),
	retired          INTEGER NOT NULL DEFAULT 0 CHECK (retired IN (0, 1)),
	desired_state    TEXT NOT NULL DEFAULT 'disabled' CHECK (desired_state IN ('enabled', 'disabled')),
	desired_version  INTEGER NOT NULL DEFAULT 0,
	reported_state   TEXT CHECK (reported_state IS NULL OR reported_state IN ('enabled', 'disabled')),
	reported_version INTEGER NOT NULL DEFAULT 0,
	reported_at      TEXT,
	last_seen_at     TEXT,
	secret_hash      TEXT NOT NULL DEFAULT '',
	created_at       TEXT NOT NULL
);
CREATE INDEX devices_building ON devices (building_id, id);
CREATE INDEX devices_consent ON devices (consent_id);
CREATE UNIQUE INDEX devices_serial ON devices (building_id, vendor COLLATE NOCASE, serial COLLATE NOCASE) WHERE retired = 0;

-- THE CORE RULE. A device may be enabled only while it has an active consent of
-- its own building: signed, not withdrawn, disputed or lapsed, not past expiry.
CREATE TRIGGER devices_enable_needs_consent_insert BEFORE INSERT ON devices
WHEN NEW.desired_state = 'enabled' AND NOT EXISTS (
	SELECT 1 FROM consents c WHERE c.id = NEW.consent_id AND c.building_id = NEW.building_id
	AND c.status = 'signed' AND c.expires_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
BEGIN
	SELECT RAISE(ABORT, 'no device is enabled without an active consent');
END;
CREATE TRIGGER devices_enable_needs_consent_update BEFORE UPDATE OF desired_state, consent_id, building_id ON devices
WHEN NEW.desired_state = 'enabled' AND NOT EXISTS (
	SELECT 1 FROM consents c WHERE c.id = NEW.consent_id AND c.building_id = NEW.building_id
	AND c.status = 'signed' AND c.expires_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
BEGIN
	SELECT RAISE(ABORT, 'no device is enabled without an active consent');
END;
-- And a consent that ends (withdrawn, disputed, lapsed) cannot leave an enabled
-- device behind: the service disables them first, in the same transaction.
CREATE TRIGGER consents_end_needs_devices_disabled BEFORE UPDATE OF status ON consents
WHEN NEW.status IN ('withdrawn', 'disputed', 'lapsed') AND EXISTS (
	SELECT 1 FROM devices d WHERE d.consent_id = NEW.id AND d.desired_state = 'enabled')
BEGIN
	SELECT RAISE(ABORT, 'disable the devices of a consent before ending it');
END;
CREATE TRIGGER devices_no_delete BEFORE DELETE ON devices
BEGIN
	SELECT RAISE(ABORT, 'devices are retired, never deleted');
END;

-- Every enable/disable of one device: desired state with a version.
CREATE TABLE commands (
	id              INTEGER PRIMARY KEY,
	device_id       INTEGER NOT NULL REFERENCES devices (id),
	building_id     INTEGER NOT NULL REFERENCES buildings (id),
	state           TEXT NOT NULL CHECK (state IN ('enabled', 'disabled')),
	version         INTEGER NOT NULL,
	reason          TEXT NOT NULL DEFAULT '',
	requested_by_id INTEGER NOT NULL DEFAULT 0,
	requested_by    TEXT NOT NULL,
	requested_at    TEXT NOT NULL,
	sent_at         TEXT,
	attempts        INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT NOT NULL DEFAULT '',
	confirmed_at    TEXT,
	status          TEXT NOT NULL DEFAULT 'pending'
		CHECK (status IN ('pending', 'sent', 'confirmed', 'not_confirmed', 'superseded')),
	UNIQUE (device_id, version)
);
CREATE INDEX commands_open ON commands (status, requested_at) WHERE status IN ('pending', 'sent', 'not_confirmed');
CREATE INDEX commands_building ON commands (building_id, id);
