package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/notice"
)

func (s *ConsentService) OpenAfterSigning(ctx context.Context, token string) (*doorledger.SigningSession, string, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, "", err
	}
	defer tx.Rollback()
	t, c, me, err := tx.linkConsent(ctx, token, "withdraw", "dispute")
	if err != nil {
		return nil, "", err
	}
	sess, err := doneSession(ctx, tx, c, me)
	if err != nil {
		return nil, "", err
	}
	// The link works while the consent is signed, or while the request this
	// signer signed awaits others; after that (or once used) it says what
	// happened. Either way, only what the signer already saw.
	sess.Done = !t.live || !c.Endable()
	return sess, t.purpose, nil
}

func (s *ConsentService) MailEndLinks(ctx context.Context, token string) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	_, c, me, err := tx.linkConsent(ctx, token, "sign", "withdraw", "dispute")
	if err != nil {
		return err
	}
	if c.Status != doorledger.ConsentSigned && (c.Status != doorledger.ConsentAwaiting || me.Signature == nil) {
		return doorledger.Errorf(doorledger.ECONFLICT, "Consent #%d is %s: there is nothing left to withdraw or report.", c.ID, strings.ToLower(statusWords(c.Status)))
	}
	if me.Signature == nil {
		return doorledger.Errorf(doorledger.ECONFLICT, "%s did not sign consent #%d: there is no signature of theirs to withdraw or report.", me.Signer.Name, c.ID)
	}
	var recent int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM consent_events WHERE consent_id = ? AND kind = 'links_mailed' AND at > ?`,
		c.ID, formatTime(tx.now.Add(-24*time.Hour))).Scan(&recent); err != nil {
		return err
	}
	if recent >= doorledger.EndLinkMailsPerDay {
		return doorledger.Errorf(doorledger.ETOOMANY, "The links were mailed %d times in the last day. Look for those mails at your registered address, or try again tomorrow.", recent)
	}
	expires := c.ExpiresAt
	if expires.IsZero() {
		expires = c.RequestExpiresAt.AddDate(0, 120, 0)
	}
	links, err := s.issueEndLinks(ctx, tx, c.ID, me.Signer.ID, expires)
	if err != nil {
		return err
	}
	if err := tx.queueMail(ctx, notice.EndLinksAgain(c, me, links), ""); err != nil {
		return err
	}
	if err := tx.consentEvent(ctx, c.ID, "links_mailed", "withdraw and “I did not sign this” links mailed again to "+me.Signer.Email); err != nil {
		return err
	}
	if err := tx.auditAs(ctx, 0, fmt.Sprintf("signer %s <%s>", me.Signer.Name, me.Signer.Email), "consent.links_mailed", c.BuildingID, "consent", c.ID, nil); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *ConsentService) EndByToken(ctx context.Context, token, reason string) (*doorledger.Consent, error) {
	reason, err := doorledger.NormalizeReason(reason, 1000)
	if err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var t linkToken
	for _, p := range []string{"withdraw", "dispute"} {
		if t, err = tx.useToken(ctx, token, p, true); err == nil {
			break
		} else if doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
			return nil, err
		}
	}
	if err != nil {
		return nil, notFoundLink
	}
	id := t.consentID
	c, err := findConsent(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	me := c.SignerOf(t.signerID)
	status := doorledger.ConsentWithdrawn
	if t.purpose == "dispute" {
		status = doorledger.ConsentDisputed
	}
	actor := fmt.Sprintf("signer %s <%s>", me.Signer.Name, me.Signer.Email)
	reason = notice.EndNote(c, me, reason)
	sysctx := doorledger.NewSystemContext(ctx, actor)
	if c.Status == doorledger.ConsentAwaiting {
		err = s.endRequest(sysctx, tx, c, status, reason)
	} else {
		err = s.endConsent(sysctx, tx, c, status, reason)
	}
	if err != nil {
		return nil, err
	}
	// Every link dies with the consent.
	if _, err := tx.ExecContext(ctx, `UPDATE consent_tokens SET used_at = ? WHERE consent_id = ? AND used_at IS NULL`, formatTime(tx.now), id); err != nil {
		return nil, err
	}
	ended, err := findConsent(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	if ended.Status == doorledger.ConsentDeclined { // a request ended before it was signed: say what the signer did
		ended.Status = status
	}
	return ended, tx.Commit()
}

// endRequest ends a request one of whose signers, having signed, withdraws
// their signature or reports that they did not sign it before the others
// signed: nothing was enabled, and nothing will be. The request is recorded
// as declined (only a signed consent can be withdrawn or disputed), with the
// fact — withdrawn or disputed, by whom — on its timeline, and the managers
// (and, for a dispute, the board) are alerted.
func (s *ConsentService) endRequest(ctx context.Context, tx *Tx, c *doorledger.Consent, status doorledger.ConsentStatus, note string) error {
	res, err := tx.ExecContext(ctx, `UPDATE consents SET status = 'declined', status_at = ?, status_note = ? WHERE id = ? AND status = 'awaiting_signature'`,
		formatTime(tx.now), string(status)+" "+note, c.ID)
	if err != nil {
		return fmt.Errorf("end request %d: %w", c.ID, err)
	} else if n, _ := res.RowsAffected(); n == 0 {
		return doorledger.Errorf(doorledger.ECONFLICT, "This request no longer awaits signatures.")
	}
	if err := tx.closeRequestLinks(ctx, c.ID); err != nil {
		return err
	}
	if err := tx.consentEvent(ctx, c.ID, string(status), note+"; the request ends unsigned"); err != nil {
		return err
	}
	if err := tx.audit(ctx, "consent."+string(status), c.BuildingID, "consent", c.ID, map[string]any{"note": note, "request_ended": true}); err != nil {
		return err
	}
	a := notice.RequestEnded(c, status, note, s.BaseURL)
	return tx.alertManagers(ctx, c.BuildingID, status == doorledger.ConsentDisputed, a.Subject, a.Body, "")
}

// endConsent withdraws, disputes or lapses a signed consent: every device under it
// is disabled first (the database refuses the status change otherwise), the fact
// is recorded, and the building's managers are alerted.
func (s *ConsentService) endConsent(ctx context.Context, tx *Tx, c *doorledger.Consent, status doorledger.ConsentStatus, note string) error {
	cmds, err := tx.disableConsentDevices(ctx, c.ID, fmt.Sprintf("consent #%d %s", c.ID, status))
	if err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `UPDATE consents SET status = ?, status_at = ?, status_note = ? WHERE id = ? AND status = 'signed'`,
		status, formatTime(tx.now), note, c.ID)
	if err != nil {
		return fmt.Errorf("end consent %d: %w", c.ID, err)
	} else if n, _ := res.RowsAffected(); n == 0 {
		return doorledger.Errorf(doorledger.ECONFLICT, "This consent is no longer signed.")
	}
	if err := tx.consentEvent(ctx, c.ID, string(status), note); err != nil {
		return err
	}
	if err := tx.audit(ctx, "consent."+string(status), c.BuildingID, "consent", c.ID, map[string]any{"note": note, "devices_disabled": len(cmds)}); err != nil {
		return err
	}
	a := notice.ConsentEnded(c, status, note, len(cmds), s.BaseURL)
	return tx.alertManagers(ctx, c.BuildingID, status == doorledger.ConsentDisputed, a.Subject, a.Body, "")
}

func (s *ConsentService) LapseDue(ctx context.Context) (int, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	ids, err := queryAll(ctx, tx, scanID, `SELECT id FROM consents WHERE status = 'signed' AND expires_at <= ? ORDER BY id`, formatTime(tx.now))
	if err != nil {
		return 0, err
	}
	sysctx := doorledger.NewSystemContext(ctx, "system")
	for _, id := range ids {
		c, err := findConsent(ctx, tx, id)
		if err != nil {
			return 0, err
		}
		if err := s.endConsent(sysctx, tx, c, doorledger.ConsentLapsed, "period ended "+c.ExpiresAt.Format("2006-01-02")); err != nil {
			return 0, err
		}
	}
	return len(ids), tx.Commit()
}
