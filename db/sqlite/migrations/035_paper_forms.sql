-- Paper forms (issue 17): the signed permission form an installer arrives
-- with, or a signer mails to the manager, attached to a consent request as
-- evidence: one PDF or a few photos, stored as uploaded (photos re-encoded)
-- with their SHA-256, who the form is said to be signed by and the date
-- written on it. Each roster signer it names answers "Did you sign this
-- form?" on their signing page: confirmed (with their electronic signature,
-- whose row is referenced) or disputed. Nothing here is ever deleted, files
-- never change, and an answer is given once.
CREATE TABLE paper_forms (
	id           INTEGER PRIMARY KEY,
	consent_id   INTEGER NOT NULL UNIQUE REFERENCES consents (id),
	kind         TEXT NOT NULL CHECK (kind IN ('pdf', 'photos')),
	date_written TEXT NOT NULL CHECK (date_written GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
	attached_by  INTEGER NOT NULL REFERENCES users (id),
	attached_as  TEXT NOT NULL CHECK (attached_as IN ('installer', 'manager', 'admin')),
	attached_at  TEXT NOT NULL,
	sha256       TEXT NOT NULL CHECK (length(sha256) = 64), -- the form's digest (PaperForm.SHA256)
	disputed_at  TEXT,                                      -- a named signer said they did not sign it
	disputed_by  INTEGER REFERENCES signers (id)
);

CREATE TABLE paper_form_files (
	id            INTEGER PRIMARY KEY,
	paper_form_id INTEGER NOT NULL REFERENCES paper_forms (id),
	position      INTEGER NOT NULL,
	content_type  TEXT NOT NULL CHECK (content_type IN ('application/pdf', 'image/jpeg', 'image/png')),
	data          BLOB NOT NULL,
	size          INTEGER NOT NULL CHECK (size = length(data)),
	sha256        TEXT NOT NULL CHECK (length(sha256) = 64),
	pages         INTEGER NOT NULL CHECK (pages >= 1),
	facts         TEXT NOT NULL DEFAULT '{}', -- pdfcheck's findings, JSON
	UNIQUE (paper_form_id, position)
);

CREATE TABLE paper_form_signers (
	paper_form_id INTEGER NOT NULL REFERENCES paper_forms (id),
	signer_id     INTEGER NOT NULL REFERENCES signers (id),
	position      INTEGER NOT NULL,
	answer        TEXT CHECK (answer IN ('confirmed', 'disputed')),
	answered_at   TEXT,
	note          TEXT NOT NULL DEFAULT '',
	-- A confirmation is given with the electronic signature: its row, and
	-- the form's digest the signer was shown.
	signature_id  INTEGER REFERENCES consent_signatures (id),
	paper_sha256  TEXT,
	PRIMARY KEY (paper_form_id, signer_id),
	CHECK ((answer IS NULL) = (answered_at IS NULL)),
	CHECK (answer IS NOT 'confirmed' OR (signature_id IS NOT NULL AND paper_sha256 IS NOT NULL))
);

-- A form goes on a request that awaits signatures.
CREATE TRIGGER paper_forms_on_request BEFORE INSERT ON paper_forms
WHEN NOT EXISTS (SELECT 1 FROM consents WHERE id = NEW.consent_id AND status = 'awaiting_signature' AND expired_at IS NULL)
BEGIN
	SELECT RAISE(ABORT, 'a paper form goes on a request awaiting signatures');
END;
CREATE TRIGGER paper_forms_no_delete BEFORE DELETE ON paper_forms
BEGIN
	SELECT RAISE(ABORT, 'paper forms are evidence and are never deleted');
END;
-- Only the dispute is ever written after the form, once.
CREATE TRIGGER paper_forms_fixed BEFORE UPDATE ON paper_forms
WHEN OLD.disputed_at IS NOT NULL OR NEW.disputed_at IS NULL
	OR NEW.id IS NOT OLD.id OR NEW.consent_id IS NOT OLD.consent_id OR NEW.kind IS NOT OLD.kind
	OR NEW.date_written IS NOT OLD.date_written OR NEW.attached_by IS NOT OLD.attached_by
	OR NEW.attached_as IS NOT OLD.attached_as OR NEW.attached_at IS NOT OLD.attached_at OR NEW.sha256 IS NOT OLD.sha256
BEGIN
	SELECT RAISE(ABORT, 'a paper form is immutable but for its dispute, recorded once');
END;
CREATE TRIGGER paper_form_files_no_update BEFORE UPDATE ON paper_form_files
BEGIN
	SELECT RAISE(ABORT, 'paper form files are immutable');
END;
CREATE TRIGGER paper_form_files_no_delete BEFORE DELETE ON paper_form_files
BEGIN
	SELECT RAISE(ABORT, 'paper form files are evidence and are never deleted');
END;
-- The signers a form names are signers the request names.
CREATE TRIGGER paper_form_signers_named BEFORE INSERT ON paper_form_signers
WHEN NOT EXISTS (SELECT 1 FROM consent_signers n JOIN paper_forms p ON p.consent_id = n.consent_id
	WHERE p.id = NEW.paper_form_id AND n.signer_id = NEW.signer_id) OR NEW.answer IS NOT NULL
BEGIN
	SELECT RAISE(ABORT, 'a paper form names signers of its request, unanswered');
END;
CREATE TRIGGER paper_form_signers_no_delete BEFORE DELETE ON paper_form_signers
BEGIN
	SELECT RAISE(ABORT, 'paper form answers are never deleted');
END;
-- An answer is given once; a confirmation references this signer's own
-- signature of this request.
CREATE TRIGGER paper_form_signers_answer_once BEFORE UPDATE ON paper_form_signers
WHEN OLD.answer IS NOT NULL OR NEW.answer IS NULL
	OR NEW.paper_form_id IS NOT OLD.paper_form_id OR NEW.signer_id IS NOT OLD.signer_id OR NEW.position IS NOT OLD.position
	OR (NEW.answer = 'confirmed' AND NOT EXISTS (SELECT 1 FROM consent_signatures g JOIN paper_forms p ON p.consent_id = g.consent_id
		WHERE g.id = NEW.signature_id AND p.id = NEW.paper_form_id AND g.signer_id = NEW.signer_id))
BEGIN
	SELECT RAISE(ABORT, 'a paper form is answered once, a confirmation with the signer''s own signature');
END;
