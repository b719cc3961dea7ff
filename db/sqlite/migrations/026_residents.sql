-- Residents (issue 12): each building's public device notice, residents'
-- reports of devices the notice does not list, and residents' subscriptions
-- to notices of changes.

-- The public notice of a building, served at /notice/<slug> without sign-in.
-- The slug is 128 random bits in hex, from SQLite's randomblob (a ChaCha20
-- generator seeded from the operating system's randomness), made for every
-- building as it is created and again when a manager rotates it; the old slug
-- is then simply gone, so its page is not found at once.
--
-- It is stored as is, not hashed: it is not a credential (it opens only a page
-- made to be printed on a poster at the door, and nothing on that page is
-- more than anyone who reads this database already sees); its randomness is
-- there so that nobody can list every building's notice from outside. Managers
-- must be able to read the address and print the poster again at any time,
-- which a hash would not allow without replacing the posters already up.
CREATE TABLE building_notices (
	building_id INTEGER PRIMARY KEY REFERENCES buildings (id),
	slug        TEXT NOT NULL UNIQUE CHECK (length(slug) = 32 AND slug NOT GLOB '*[^0-9a-f]*'),
	slug_at     TEXT NOT NULL,
	-- How residents reach the manager, as a manager typed it (one line).
	contact     TEXT NOT NULL DEFAULT '' CHECK (length(contact) <= 1200)
);
INSERT INTO building_notices (building_id, slug, slug_at)
	SELECT id, lower(hex(randomblob(16))), strftime('%Y-%m-%dT%H:%M:%fZ', 'now') FROM buildings;
CREATE TRIGGER buildings_notice_slug AFTER INSERT ON buildings
BEGIN
	INSERT INTO building_notices (building_id, slug, slug_at) VALUES (NEW.id, lower(hex(randomblob(16))), NEW.created_at);
END;

-- A resident's report of a device the notice does not list. The resident's
-- contact address is kept only until a manager resolves the report; the
-- resolution is final; reports are never deleted.
CREATE TABLE resident_reports (
	id              INTEGER PRIMARY KEY,
	building_id     INTEGER NOT NULL REFERENCES buildings (id),
	created_at      TEXT NOT NULL,
	location        TEXT NOT NULL CHECK (length(location) BETWEEN 1 AND 2000),
	contact         TEXT NOT NULL DEFAULT '' CHECK (length(contact) <= 254),
	photo           BLOB,
	photo_type      TEXT CHECK (photo_type IS NULL OR photo_type IN ('image/jpeg', 'image/png')),
	outcome         TEXT CHECK (outcome IS NULL OR outcome IN ('found_device', 'not_delivery', 'duplicate', 'other')),
	found_device_id INTEGER REFERENCES devices (id),
	note            TEXT NOT NULL DEFAULT '',
	resolved_at     TEXT,
	resolved_by     TEXT NOT NULL DEFAULT '',
	CHECK ((photo IS NULL) = (photo_type IS NULL)),
	CHECK ((outcome IS NULL) = (resolved_at IS NULL)),
	CHECK ((outcome = 'found_device') = (found_device_id IS NOT NULL)),
	CHECK (resolved_at IS NULL OR contact = '')
);
CREATE INDEX resident_reports_building ON resident_reports (building_id, resolved_at, id);
CREATE TRIGGER resident_reports_final BEFORE UPDATE ON resident_reports
WHEN OLD.resolved_at IS NOT NULL OR NEW.building_id IS NOT OLD.building_id OR NEW.created_at IS NOT OLD.created_at
	OR NEW.location IS NOT OLD.location OR NEW.photo IS NOT OLD.photo OR NEW.photo_type IS NOT OLD.photo_type
BEGIN
	SELECT RAISE(ABORT, 'a resident report is resolved once, and what the resident sent never changes');
END;
CREATE TRIGGER resident_reports_no_delete BEFORE DELETE ON resident_reports
BEGIN
	SELECT RAISE(ABORT, 'resident reports are never deleted');
END;

-- Residents subscribed to a building's notices (double opt-in). The address
-- is personal data: pages show only the count of confirmed ones. An
-- unsubscribed or never-confirmed address is deleted, with its tokens.
CREATE TABLE resident_subscribers (
	id           INTEGER PRIMARY KEY,
	building_id  INTEGER NOT NULL REFERENCES buildings (id),
	email        TEXT NOT NULL,
	created_at   TEXT NOT NULL,
	confirmed_at TEXT,
	UNIQUE (building_id, email)
);

-- One-time links mailed to a subscriber: the confirmation link, and the
-- unsubscribe link of each notice. Stored as SHA-256 only.
CREATE TABLE resident_tokens (
	token_hash    TEXT PRIMARY KEY,
	subscriber_id INTEGER NOT NULL REFERENCES resident_subscribers (id) ON DELETE CASCADE,
	purpose       TEXT NOT NULL CHECK (purpose IN ('confirm', 'unsubscribe')),
	created_at    TEXT NOT NULL,
	expires_at    TEXT NOT NULL,
	used_at       TEXT
);
CREATE INDEX resident_tokens_subscriber ON resident_tokens (subscriber_id, purpose, created_at);
CREATE INDEX resident_tokens_expiry ON resident_tokens (expires_at);

-- How far the notice job has read the journal: it mails what entries after
-- this id say, and moves it forward in the same transaction. It starts at the
-- end of the journal as it is now: residents are told of changes from here on.
CREATE TABLE resident_notice_cursor (
	id       INTEGER PRIMARY KEY CHECK (id = 1),
	audit_id INTEGER NOT NULL
);
INSERT INTO resident_notice_cursor (id, audit_id) VALUES (1, COALESCE((SELECT MAX(id) FROM audit_entries), 0));
