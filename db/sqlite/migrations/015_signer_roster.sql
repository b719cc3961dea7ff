-- Issue 10, points 2 and 3: only a signer on the building's roster now can
-- sign, and whether the typed name matches the roster is part of the evidence.

-- When a signer was taken off the roster (NULL while on it, and for signers
-- removed before this column existed). A removal is for good: the same person
-- is added again as a new roster entry, so a consent's signer_id always names
-- the entry that was asked.
ALTER TABLE signers ADD COLUMN removed_at TEXT;
CREATE TRIGGER signers_removed_for_good BEFORE UPDATE OF active ON signers
WHEN OLD.active = 0 AND NEW.active <> 0
BEGIN
	SELECT RAISE(ABORT, 'a removed signer stays removed: add them to the roster again');
END;

-- A consent is signed only by a signer on its building's roster at that moment
-- (as a device is enabled only under an active consent: see 002). A consent
-- signed by someone removed later stays valid: they were authorized when they
-- signed.
CREATE TRIGGER consents_sign_needs_roster BEFORE UPDATE OF status, signer_id ON consents
WHEN NEW.status = 'signed' AND OLD.status IS NOT 'signed' AND NOT EXISTS (
	SELECT 1 FROM signers s WHERE s.id = NEW.signer_id AND s.building_id = NEW.building_id AND s.active = 1)
BEGIN
	SELECT RAISE(ABORT, 'only a signer on the building''s roster can sign');
END;
CREATE TRIGGER consents_insert_signed_needs_roster BEFORE INSERT ON consents
WHEN NEW.status = 'signed' AND NOT EXISTS (
	SELECT 1 FROM signers s WHERE s.id = NEW.signer_id AND s.building_id = NEW.building_id AND s.active = 1)
BEGIN
	SELECT RAISE(ABORT, 'only a signer on the building''s roster can sign');
END;

-- Whether the name typed at signing differs from the roster name (1) or
-- matches it (0), under namecheck's rule; the signer confirmed a differing
-- name. NULL: not signed, or signed before this was recorded (the portal then
-- compares the two names when it reads the consent). Evidence: written once,
-- at signing, like the rest (002's consents_signed_immutable).
ALTER TABLE consents ADD COLUMN typed_name_differs INTEGER CHECK (typed_name_differs IS NULL OR typed_name_differs IN (0, 1));
CREATE TRIGGER consents_name_check_immutable BEFORE UPDATE OF typed_name_differs ON consents
WHEN OLD.signed_at IS NOT NULL AND NEW.typed_name_differs IS NOT OLD.typed_name_differs
BEGIN
	SELECT RAISE(ABORT, 'signed consents are immutable');
END;
