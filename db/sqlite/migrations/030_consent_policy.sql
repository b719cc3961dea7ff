-- Issue 13: a consent policy per building (N of the roster's signers, required
-- roles, ordered or parallel signing, reminders and expiry of requests), one
-- signature per signer, and the database refusing to enable a device whose
-- consent has fewer distinct valid signatures than its policy required.

-- A building's policies, append-only: the latest row is the one in force; a
-- request records the row it was made under, so a later change of policy
-- changes no request already made and no signed consent.
CREATE TABLE consent_policies (
	id            INTEGER PRIMARY KEY,
	building_id   INTEGER NOT NULL REFERENCES buildings (id),
	required      INTEGER NOT NULL CHECK (required BETWEEN 1 AND 20),
	roles         TEXT NOT NULL DEFAULT '[]',    -- JSON array of roster titles
	ordered       INTEGER NOT NULL DEFAULT 0 CHECK (ordered IN (0, 1)),
	reminder_days TEXT NOT NULL DEFAULT '[2,5]', -- JSON array of days after the request
	expiry_days   INTEGER NOT NULL DEFAULT 14 CHECK (expiry_days BETWEEN 1 AND 90),
	created_at    TEXT NOT NULL,
	created_by    TEXT NOT NULL
);
CREATE INDEX consent_policies_building ON consent_policies (building_id, id);
CREATE TRIGGER consent_policies_no_update BEFORE UPDATE ON consent_policies
BEGIN
	SELECT RAISE(ABORT, 'consent policies are append-only: record a new one');
END;
CREATE TRIGGER consent_policies_no_delete BEFORE DELETE ON consent_policies
BEGIN
	SELECT RAISE(ABORT, 'consent policies are append-only: record a new one');
END;

-- The request's policy (NULL: made before policies, one signer), the consent
-- period its terms state, when it expires unsigned, when it was marked
-- expired, and the expired request it sends again.
ALTER TABLE consents ADD COLUMN policy_id INTEGER REFERENCES consent_policies (id);
ALTER TABLE consents ADD COLUMN term_months INTEGER CHECK (term_months IS NULL OR term_months BETWEEN 1 AND 120);
ALTER TABLE consents ADD COLUMN request_expires_at TEXT;
ALTER TABLE consents ADD COLUMN expired_at TEXT;
ALTER TABLE consents ADD COLUMN resend_of INTEGER REFERENCES consents (id);
CREATE INDEX consents_pending ON consents (status, request_expires_at) WHERE status = 'awaiting_signature' AND expired_at IS NULL;

-- What a request was made under is recorded once: its policy, period and
-- expiry never change; the terms of a policy request (stored when it is made,
-- and signed by each signer) never change; an expiry is never undone; an
-- expired request is never signed.
CREATE TRIGGER consents_policy_recorded BEFORE UPDATE OF policy_id, term_months, request_expires_at, resend_of ON consents
WHEN (OLD.policy_id IS NOT NULL OR OLD.request_expires_at IS NOT NULL) AND (NEW.policy_id IS NOT OLD.policy_id
	OR NEW.term_months IS NOT OLD.term_months OR NEW.request_expires_at IS NOT OLD.request_expires_at OR NEW.resend_of IS NOT OLD.resend_of)
BEGIN
	SELECT RAISE(ABORT, 'the policy a request was made under is recorded for good');
END;
CREATE TRIGGER consents_policy_terms_fixed BEFORE UPDATE OF terms, terms_sha256 ON consents
WHEN OLD.policy_id IS NOT NULL AND OLD.terms_sha256 IS NOT NULL AND (NEW.terms IS NOT OLD.terms OR NEW.terms_sha256 IS NOT OLD.terms_sha256)
BEGIN
	SELECT RAISE(ABORT, 'the terms of a request are fixed when it is made');
END;
CREATE TRIGGER consents_expired_for_good BEFORE UPDATE OF expired_at ON consents
WHEN OLD.expired_at IS NOT NULL AND NEW.expired_at IS NOT OLD.expired_at
BEGIN
	SELECT RAISE(ABORT, 'an expired request stays expired: send it again as a new request');
END;
CREATE TRIGGER consents_expired_not_signed BEFORE UPDATE OF status ON consents
WHEN NEW.status = 'signed' AND OLD.status = 'awaiting_signature' AND NEW.expired_at IS NOT NULL
BEGIN
	SELECT RAISE(ABORT, 'an expired request cannot be signed');
END;

-- The signers a request names, in order (position), each a different person
-- (address_key: the registered address lower-cased, "+tag" dropped). Every
-- request has them: one row for a request made before policies.
CREATE TABLE consent_signers (
	consent_id  INTEGER NOT NULL REFERENCES consents (id),
	signer_id   INTEGER NOT NULL REFERENCES signers (id),
	position    INTEGER NOT NULL CHECK (position >= 1),
	address_key TEXT NOT NULL,
	PRIMARY KEY (consent_id, signer_id),
	UNIQUE (consent_id, position),
	UNIQUE (consent_id, address_key)
);
CREATE INDEX consent_signers_signer ON consent_signers (signer_id, consent_id);
INSERT INTO consent_signers (consent_id, signer_id, position, address_key)
	SELECT c.id, c.signer_id, 1, lower(s.email) FROM consents c JOIN signers s ON s.id = c.signer_id;
CREATE TRIGGER consent_signers_no_update BEFORE UPDATE ON consent_signers
BEGIN
	SELECT RAISE(ABORT, 'the signers a request names are recorded for good');
END;
CREATE TRIGGER consent_signers_no_delete BEFORE DELETE ON consent_signers
BEGIN
	SELECT RAISE(ABORT, 'the signers a request names are recorded for good');
END;

-- One row per signature: the evidence of one signer, of the request's terms
-- (their SHA-256; the text is the consent's). Append-only and immutable.
-- Consents signed before this migration keep their evidence on their row and
-- get a copy here, byte for byte, so that every consent reads its signatures
-- from one place; their terms and hashes are not touched.
CREATE TABLE consent_signatures (
	id                 INTEGER PRIMARY KEY,
	consent_id         INTEGER NOT NULL REFERENCES consents (id),
	signer_id          INTEGER NOT NULL REFERENCES signers (id),
	address            TEXT NOT NULL, -- the registered address verified
	address_key        TEXT NOT NULL,
	terms_sha256       TEXT NOT NULL,
	typed_name         TEXT NOT NULL,
	typed_name_differs INTEGER CHECK (typed_name_differs IS NULL OR typed_name_differs IN (0, 1)),
	signature_png      BLOB NOT NULL,
	signed_at          TEXT NOT NULL,
	signed_tz          TEXT,
	signed_ip          TEXT,
	signed_ua          TEXT,
	method             TEXT NOT NULL CHECK (method IN ('link', 'code')),
	UNIQUE (consent_id, signer_id),
	UNIQUE (consent_id, address_key)
);
INSERT INTO consent_signatures (consent_id, signer_id, address, address_key, terms_sha256, typed_name, typed_name_differs,
		signature_png, signed_at, signed_tz, signed_ip, signed_ua, method)
	SELECT c.id, c.signer_id, s.email, lower(s.email), c.terms_sha256, c.typed_name, c.typed_name_differs,
		c.signature_png, c.signed_at, c.signed_tz, c.signed_ip, c.signed_ua, c.method
	FROM consents c JOIN signers s ON s.id = c.signer_id WHERE c.signed_at IS NOT NULL ORDER BY c.id;
CREATE TRIGGER consent_signatures_no_update BEFORE UPDATE ON consent_signatures
BEGIN
	SELECT RAISE(ABORT, 'signatures are immutable');
END;
CREATE TRIGGER consent_signatures_no_delete BEFORE DELETE ON consent_signatures
BEGIN
	SELECT RAISE(ABORT, 'signatures are immutable');
END;
-- A signature is given only by a signer the request names, on the building's
-- roster at that moment, to a request still awaiting signatures and not
-- expired, of the request's own terms, and, under ordered signing, after
-- every earlier named signer still on the roster has signed.
CREATE TRIGGER consent_signatures_valid BEFORE INSERT ON consent_signatures
BEGIN
	SELECT RAISE(ABORT, 'only a signer the request names can sign it')
	WHERE NOT EXISTS (SELECT 1 FROM consent_signers n WHERE n.consent_id = NEW.consent_id AND n.signer_id = NEW.signer_id);
	SELECT RAISE(ABORT, 'only a signer on the building''s roster can sign')
	WHERE NOT EXISTS (SELECT 1 FROM signers s JOIN consents c ON c.id = NEW.consent_id
		WHERE s.id = NEW.signer_id AND s.building_id = c.building_id AND s.active = 1);
	SELECT RAISE(ABORT, 'only a request awaiting signatures can be signed')
	WHERE NOT EXISTS (SELECT 1 FROM consents c WHERE c.id = NEW.consent_id AND c.status = 'awaiting_signature' AND c.expired_at IS NULL);
	SELECT RAISE(ABORT, 'a signature is of the request''s own terms')
	WHERE NOT EXISTS (SELECT 1 FROM consents c WHERE c.id = NEW.consent_id AND c.terms_sha256 = NEW.terms_sha256);
	SELECT RAISE(ABORT, 'one person cannot sign a request twice')
	WHERE EXISTS (SELECT 1 FROM consent_signatures g WHERE g.consent_id = NEW.consent_id AND (g.address_key = NEW.address_key OR g.signer_id = NEW.signer_id));
	SELECT RAISE(ABORT, 'ordered signing: an earlier signer has not signed yet')
	WHERE EXISTS (SELECT 1 FROM consents c JOIN consent_policies p ON p.id = c.policy_id
		JOIN consent_signers me ON me.consent_id = c.id AND me.signer_id = NEW.signer_id
		JOIN consent_signers e ON e.consent_id = c.id AND e.position < me.position
		JOIN signers es ON es.id = e.signer_id AND es.active = 1
		WHERE c.id = NEW.consent_id AND p.ordered = 1
		AND NOT EXISTS (SELECT 1 FROM consent_signatures g WHERE g.consent_id = c.id AND g.signer_id = e.signer_id));
END;

-- THE CORE RULE, extended (002's triggers, recreated): a device may be
-- enabled only under an active consent of its own building that has as many
-- distinct valid signatures — different people, each of the consent's own
-- terms — as the policy recorded with it required (one without a policy).
DROP TRIGGER devices_enable_needs_consent_insert;
DROP TRIGGER devices_enable_needs_consent_update;
CREATE TRIGGER devices_enable_needs_consent_insert BEFORE INSERT ON devices
WHEN NEW.desired_state = 'enabled' AND NOT EXISTS (
	SELECT 1 FROM consents c WHERE c.id = NEW.consent_id AND c.building_id = NEW.building_id
	AND c.status = 'signed' AND c.expires_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
	AND (SELECT COUNT(DISTINCT g.address_key) FROM consent_signatures g WHERE g.consent_id = c.id AND g.terms_sha256 = c.terms_sha256)
		>= COALESCE((SELECT p.required FROM consent_policies p WHERE p.id = c.policy_id), 1))
BEGIN
	SELECT RAISE(ABORT, 'no device is enabled without an active consent signed as its policy requires');
END;
CREATE TRIGGER devices_enable_needs_consent_update BEFORE UPDATE OF desired_state, consent_id, building_id ON devices
WHEN NEW.desired_state = 'enabled' AND NOT EXISTS (
	SELECT 1 FROM consents c WHERE c.id = NEW.consent_id AND c.building_id = NEW.building_id
	AND c.status = 'signed' AND c.expires_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
	AND (SELECT COUNT(DISTINCT g.address_key) FROM consent_signatures g WHERE g.consent_id = c.id AND g.terms_sha256 = c.terms_sha256)
		>= COALESCE((SELECT p.required FROM consent_policies p WHERE p.id = c.policy_id), 1))
BEGIN
	SELECT RAISE(ABORT, 'no device is enabled without an active consent signed as its policy requires');
END;
-- And a consent is marked signed only with those signatures.
CREATE TRIGGER consents_signed_needs_quorum BEFORE UPDATE OF status ON consents
WHEN NEW.status = 'signed' AND OLD.status = 'awaiting_signature'
	AND (SELECT COUNT(DISTINCT g.address_key) FROM consent_signatures g WHERE g.consent_id = NEW.id AND g.terms_sha256 = NEW.terms_sha256)
		< COALESCE((SELECT p.required FROM consent_policies p WHERE p.id = NEW.policy_id), 1)
BEGIN
	SELECT RAISE(ABORT, 'a consent is signed only with as many signatures as its policy requires');
END;

-- Links and codes are each for one named signer (NULL: the request's one
-- signer, for those issued before).
ALTER TABLE consent_tokens ADD COLUMN signer_id INTEGER REFERENCES signers (id);
ALTER TABLE consent_codes ADD COLUMN signer_id INTEGER REFERENCES signers (id);

-- Mail sent to a named signer on a schedule: the reminders (kind 'reminder',
-- day after the request) and, under ordered signing, the notice that it is
-- their turn (kind 'turn', day 0). Each is sent once.
CREATE TABLE consent_reminders (
	consent_id INTEGER NOT NULL REFERENCES consents (id),
	signer_id  INTEGER NOT NULL REFERENCES signers (id),
	kind       TEXT NOT NULL CHECK (kind IN ('reminder', 'turn')),
	day        INTEGER NOT NULL,
	sent_at    TEXT NOT NULL,
	PRIMARY KEY (consent_id, signer_id, kind, day)
);
