package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/notice"
)

// Paper forms: see paper.go at the root and migration 035.

var _ doorledger.PaperService = (*ConsentService)(nil)

// paperFacts are the PDF findings stored with a file (paper_form_files.facts).
type paperFacts struct {
	PageSize string   `json:"page_size,omitempty"`
	Producer string   `json:"producer,omitempty"`
	Created  string   `json:"created,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// loadPaper sets c.Paper: the request's paper form with its files (without
// their data) and the signers it names with their answers.
func loadPaper(ctx context.Context, q querier, c *doorledger.Consent) error {
	p := &doorledger.PaperForm{ConsentID: c.ID}
	var role, attachedAt string
	var disputedAt sql.NullString
	err := q.QueryRowContext(ctx, `SELECT p.id, p.kind, p.date_written, u.name, p.attached_as, p.attached_at, p.disputed_at
		FROM paper_forms p JOIN users u ON u.id = p.attached_by WHERE p.consent_id = ?`, c.ID).
		Scan(&p.ID, &p.Kind, &p.DateWritten, &p.AttachedBy, &role, &attachedAt, &disputedAt)
	if err == sql.ErrNoRows {
		c.Paper = nil
		return nil
	} else if err != nil {
		return fmt.Errorf("paper form of consent %d: %w", c.ID, err)
	}
	p.AttachedAs, p.AttachedAt, p.DisputedAt = doorledger.Role(role), parseTime(attachedAt), parseTime(disputedAt.String)
	files, err := queryAll(ctx, q, func(r interface{ Scan(...any) error }) (doorledger.PaperFile, error) {
		var f doorledger.PaperFile
		var facts string
		if err := r.Scan(&f.ID, &f.ContentType, &f.Size, &f.SHA256, &f.Pages, &facts); err != nil {
			return f, err
		}
		var pf paperFacts
		_ = json.Unmarshal([]byte(facts), &pf) // written by attachPaper; empty for photos
		f.PageSize, f.Producer, f.Created, f.Warnings = pf.PageSize, pf.Producer, pf.Created, pf.Warnings
		return f, nil
	}, `SELECT id, content_type, size, sha256, pages, facts FROM paper_form_files WHERE paper_form_id = ? ORDER BY position`, p.ID)
	if err != nil {
		return err
	}
	p.Files = files
	p.SignedBy, err = queryAll(ctx, q, func(r interface{ Scan(...any) error }) (doorledger.PaperSigner, error) {
		var s doorledger.PaperSigner
		var answer sql.NullString
		if err := r.Scan(&s.Signer.ID, &s.Signer.Name, &s.Signer.Title, &s.Signer.Email, &s.Signer.Active, &answer, nullTime{&s.AnsweredAt}, &s.Note); err != nil {
			return s, err
		}
		s.Signer.BuildingID, s.Answer = c.BuildingID, doorledger.PaperAnswer(answer.String)
		return s, nil
	}, `SELECT s.id, s.name, s.title, s.email, s.active, ps.answer, ps.answered_at, ps.note
		FROM paper_form_signers ps JOIN signers s ON s.id = ps.signer_id WHERE ps.paper_form_id = ? ORDER BY ps.position`, p.ID)
	if err != nil {
		return err
	}
	c.Paper = p
	return nil
}

// attachPaper writes a paper form on request c (read in tx) with its files
// and the signers it names, its fact on the timeline and its journal entry.
func (tx *Tx) attachPaper(ctx context.Context, c *doorledger.Consent, in doorledger.PaperFormInput, claimed []*doorledger.Signer) error {
	cl := callerFrom(ctx)
	form := doorledger.PaperForm{Files: in.Files}
	for i := range form.Files {
		sum := sha256.Sum256(form.Files[i].Data)
		form.Files[i].SHA256 = hex.EncodeToString(sum[:])
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO paper_forms (consent_id, kind, date_written, attached_by, attached_as, attached_at, sha256)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, c.ID, in.Kind, in.DateWritten, cl.id(), cl.role(), formatTime(tx.now), form.SHA256())
	if isUniqueViolation(err) {
		return doorledger.Errorf(doorledger.ECONFLICT, "Consent request #%d has a paper form already.", c.ID)
	} else if err != nil {
		return fmt.Errorf("insert paper form: %w", err)
	}
	id, _ := res.LastInsertId()
	var hashes []string
	pages := 0
	for i, f := range form.Files {
		facts, _ := json.Marshal(paperFacts{PageSize: f.PageSize, Producer: f.Producer, Created: f.Created, Warnings: f.Warnings})
		if f.Pages < 1 {
			f.Pages = 1
		}
		pages += f.Pages
		if _, err := tx.ExecContext(ctx, `INSERT INTO paper_form_files (paper_form_id, position, content_type, data, size, sha256, pages, facts)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, id, i+1, f.ContentType, f.Data, len(f.Data), f.SHA256, f.Pages, string(facts)); err != nil {
			return fmt.Errorf("insert paper form file: %w", err)
		}
		hashes = append(hashes, f.SHA256)
	}
	var names []string
	var ids []int64
	for i, sg := range claimed {
		if _, err := tx.ExecContext(ctx, `INSERT INTO paper_form_signers (paper_form_id, signer_id, position) VALUES (?, ?, ?)`, id, sg.ID, i+1); err != nil {
			return fmt.Errorf("name paper form signer: %w", err)
		}
		names = append(names, sg.Name+" ("+sg.Title+")")
		ids = append(ids, sg.ID)
	}
	note := notice.PaperAttachedNote(in, len(form.Files), pages, names, form.SHA256(), cl.role() != doorledger.RoleInstaller)
	if err := tx.consentEvent(ctx, c.ID, "paper_form", note); err != nil {
		return err
	}
	return tx.audit(ctx, "paper_form.attach", c.BuildingID, "consent", c.ID, map[string]any{"kind": in.Kind, "pages": pages,
		"sha256": form.SHA256(), "files": hashes, "signed_by": ids, "date_written": in.DateWritten, "on_behalf": cl.role() != doorledger.RoleInstaller})
}

// confirmPaper records, with the signature just given (signatureID), that
// the signer confirmed the paper form.
func (tx *Tx) confirmPaper(ctx context.Context, c *doorledger.Consent, me *doorledger.RequestSigner, signatureID int64, actor string) error {
	if c.PaperToConfirm(me) == nil {
		return nil
	}
	hash := c.Paper.SHA256()
	if _, err := tx.ExecContext(ctx, `UPDATE paper_form_signers SET answer = 'confirmed', answered_at = ?, signature_id = ?, paper_sha256 = ?
		WHERE paper_form_id = ? AND signer_id = ?`, formatTime(tx.now), signatureID, hash, c.Paper.ID, me.Signer.ID); err != nil {
		return fmt.Errorf("confirm paper form: %w", err)
	}
	if err := tx.consentEvent(ctx, c.ID, "paper_confirmed", fmt.Sprintf("%s (%s) confirmed signing the paper form (SHA-256 %s) and signed electronically", me.Signer.Name, me.Signer.Title, hash)); err != nil {
		return err
	}
	return tx.auditAs(ctx, 0, actor, "paper_form.confirm", c.BuildingID, "consent", c.ID, map[string]any{"paper_sha256": hash, "signer": me.Signer.ID})
}

func (s *ConsentService) AttachPaperForm(ctx context.Context, consentID int64, in doorledger.PaperFormInput) (*doorledger.PaperForm, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	c, err := checkConsent(ctx, tx, consentID)
	if err != nil {
		return nil, err
	}
	if r := callerFrom(ctx).role(); r != doorledger.RoleManager && r != doorledger.RoleAdmin {
		return nil, doorledger.Errorf(doorledger.EFORBIDDEN, "Only the building's managers attach a paper form on a signer's behalf.")
	}
	if c.Status != doorledger.ConsentAwaiting {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "Consent #%d no longer awaits signatures: a paper form can no longer be attached.", c.ID)
	}
	if c.Paper != nil {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "Consent request #%d has a paper form already.", c.ID)
	}
	var named []*doorledger.Signer
	signed := map[int64]bool{}
	for _, rs := range c.Signers {
		sg := rs.Signer
		if sg.Active {
			named = append(named, &sg)
		}
		signed[sg.ID] = rs.Signature != nil
	}
	v := doorledger.Validation{}
	claimed := in.Claimed(v, tx.now, named, signed, nil)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := tx.attachPaper(ctx, c, in, claimed); err != nil {
		return nil, err
	}
	after, err := findConsent(ctx, tx, c.ID)
	if err != nil {
		return nil, err
	}
	// Each signer it names gets a fresh link: the page they may have seen
	// before did not ask about the form.
	for _, sg := range claimed {
		if rs := after.RequestSigner(sg.ID); rs != nil && (rs.State == doorledger.SignerToSign || rs.State == doorledger.SignerWaiting) {
			if err := s.mailSigningLink(ctx, tx, after, *rs, "paper"); err != nil {
				return nil, err
			}
		}
	}
	return after.Paper, tx.Commit()
}

func (s *ConsentService) PaperFile(ctx context.Context, consentID, fileID int64) (*doorledger.PaperFile, error) {
	if _, err := checkConsent(ctx, s.db.read, consentID); err != nil {
		return nil, err
	}
	return paperFile(ctx, s.db.read, consentID, fileID)
}

func paperFile(ctx context.Context, q querier, consentID, fileID int64) (*doorledger.PaperFile, error) {
	var f doorledger.PaperFile
	err := q.QueryRowContext(ctx, `SELECT f.id, f.content_type, f.data, f.size, f.sha256, f.pages FROM paper_form_files f
		JOIN paper_forms p ON p.id = f.paper_form_id WHERE p.consent_id = ? AND f.id = ?`, consentID, fileID).
		Scan(&f.ID, &f.ContentType, &f.Data, &f.Size, &f.SHA256, &f.Pages)
	if err != nil {
		return nil, notFound(err, "File not found.")
	}
	return &f, nil
}

func (s *ConsentService) SigningPaperFile(ctx context.Context, token string, fileID int64) (*doorledger.PaperFile, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	t, err := tx.findToken(ctx, token, "sign")
	if err != nil {
		return nil, err
	}
	return paperFile(ctx, tx, t.consentID, fileID)
}

func (s *ConsentService) DisputePaperForm(ctx context.Context, token, reason string) (*doorledger.Consent, error) {
	reason, err := doorledger.NormalizeReason(reason, 1000)
	if err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	_, c, me, err := tx.linkConsent(ctx, token, "sign")
	if err != nil {
		return nil, err
	}
	if c.PaperToConfirm(me) == nil || me.Signature != nil {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "The paper form of consent #%d does not await your answer.", c.ID)
	}
	// A link that no longer works for signing still answers for the form
	// while the request or its consent stands: the signer may learn of the
	// form late (their signature was not needed), and a forged form must be
	// caught whenever it is.
	if c.Status != doorledger.ConsentAwaiting && c.Status != doorledger.ConsentSigned {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "Consent #%d has ended already (%s): nothing more to answer.", c.ID, statusWords(c.Status))
	}
	actor := fmt.Sprintf("signer %s <%s>", me.Signer.Name, me.Signer.Email)
	sysctx := doorledger.NewSystemContext(ctx, actor)
	note := notice.PaperDisputedNote(me, reason)
	if _, err := tx.ExecContext(ctx, `UPDATE paper_form_signers SET answer = 'disputed', answered_at = ?, note = ? WHERE paper_form_id = ? AND signer_id = ?`,
		formatTime(tx.now), reason, c.Paper.ID, me.Signer.ID); err != nil {
		return nil, fmt.Errorf("dispute paper form: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE paper_forms SET disputed_at = ?, disputed_by = ? WHERE id = ? AND disputed_at IS NULL`,
		formatTime(tx.now), me.Signer.ID, c.Paper.ID); err != nil {
		return nil, fmt.Errorf("dispute paper form: %w", err)
	}
	// The device stays disabled, or is disabled at once if it was enabled
	// (under this consent if it was signed meanwhile, or under the consent a
	// renewal request was to replace).
	disabled := 0
	if c.Status == doorledger.ConsentSigned {
		// As "I did not sign this": every device under it disabled first,
		// journaled as consent.disputed (residents are told), managers and
		// board alerted.
		if err := s.endConsent(sysctx, tx, c, doorledger.ConsentDisputed, "paper form disputed: "+note); err != nil {
			return nil, err
		}
	} else {
		if c.DeviceID != 0 {
			var state string
			if err := tx.QueryRowContext(ctx, `SELECT desired_state FROM devices WHERE id = ?`, c.DeviceID).Scan(&state); err != nil {
				return nil, err
			}
			if state == string(doorledger.StateEnabled) {
				if _, err := tx.setDesiredState(sysctx, c.DeviceID, doorledger.StateDisabled, fmt.Sprintf("consent request #%d: its paper form is disputed", c.ID)); err != nil {
					return nil, err
				}
				disabled = 1
			}
		}
		res, err := tx.ExecContext(ctx, `UPDATE consents SET status = 'declined', status_at = ?, status_note = ? WHERE id = ? AND status = 'awaiting_signature' AND expired_at IS NULL`,
			formatTime(tx.now), "paper form disputed: "+note, c.ID)
		if err != nil {
			return nil, err
		} else if n, _ := res.RowsAffected(); n == 0 {
			return nil, doorledger.Errorf(doorledger.ECONFLICT, "Consent request #%d no longer awaits signatures.", c.ID)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE consent_tokens SET used_at = ? WHERE consent_id = ? AND used_at IS NULL`, formatTime(tx.now), c.ID); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE consent_codes SET used_at = ? WHERE consent_id = ? AND used_at IS NULL`, formatTime(tx.now), c.ID); err != nil {
		return nil, err
	}
	ended := notice.PaperEnded(c)
	if err := tx.consentEvent(ctx, c.ID, "paper_disputed", fmt.Sprintf("%s; %s and the installer's submission is marked disputed", note, ended)); err != nil {
		return nil, err
	}
	if err := tx.auditAs(ctx, 0, actor, "paper_form.dispute", c.BuildingID, "consent", c.ID, map[string]any{"paper_sha256": c.Paper.SHA256(),
		"signer": me.Signer.ID, "installer": c.InstallerID, "reason": reason, "request_ended": c.Status == doorledger.ConsentAwaiting, "devices_disabled": disabled}); err != nil {
		return nil, err
	}
	loc := buildingLoc(ctx, tx, c.BuildingID)
	a := notice.PaperDisputed(c, me, reason, ended, disabled, loc, s.BaseURL)
	if err := tx.alertManagers(ctx, c.BuildingID, true, a.Subject, a.Body, ""); err != nil {
		return nil, err
	}
	after, err := findConsent(ctx, tx, c.ID)
	if err != nil {
		return nil, err
	}
	return after, tx.Commit()
}

func (s *ConsentService) PaperDisputes(ctx context.Context, buildingID int64) ([]doorledger.PaperDisputes, error) {
	if err := checkBuilding(ctx, s.db.read, callerFrom(ctx), buildingID); err != nil {
		return nil, err
	}
	return paperDisputes(ctx, s.db.read, buildingID)
}

// paperDisputes counts a building's paper forms per installer and vendor,
// the most disputed first.
func paperDisputes(ctx context.Context, q querier, buildingID int64) ([]doorledger.PaperDisputes, error) {
	return queryAll(ctx, q, func(r interface{ Scan(...any) error }) (doorledger.PaperDisputes, error) {
		var d doorledger.PaperDisputes
		return d, r.Scan(&d.InstallerID, &d.Installer, &d.Company, &d.Vendor, &d.Forms, &d.Disputed)
	}, `SELECT c.installer_id, u.name, u.company, c.vendor, COUNT(*), COUNT(p.disputed_at)
		FROM paper_forms p JOIN consents c ON c.id = p.consent_id JOIN users u ON u.id = c.installer_id
		WHERE c.building_id = ? GROUP BY c.installer_id, c.vendor ORDER BY COUNT(p.disputed_at) DESC, u.name, c.vendor`, buildingID)
}
