package sqlite

import (
	"context"
	"fmt"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/notice"
)

// RemindAndExpire is the reminders job (see doorledger.ConsentService). It
// runs in one transaction at the database's clock (DB.Now): first it expires
// every request past its period, so that none of them is reminded, then it
// mails the reminders due. A reminder is due to a named signer who has not
// signed, is on the roster, and whose turn it is, on each day of the
// schedule recorded with the request; each goes once (consent_reminders),
// and when the job was not running on a day, only the latest reminder due
// is sent. Each carries a fresh signing link; the earlier links keep working
// until the request expires.
func (s *ConsentService) RemindAndExpire(ctx context.Context) (expired, reminded int, err error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback()
	sysctx := doorledger.NewSystemContext(ctx, "system")
	due, err := queryConsents(ctx, tx, `SELECT `+consentColumns+consentFrom+`
		WHERE c.status = 'awaiting_signature' AND c.expired_at IS NULL AND c.request_expires_at IS NOT NULL AND c.request_expires_at <= ? ORDER BY c.id`, formatTime(tx.now))
	if err != nil {
		return 0, 0, err
	}
	for _, c := range due {
		if err := s.expire(sysctx, tx, c); err != nil {
			return 0, 0, err
		}
	}
	pending, err := queryConsents(ctx, tx, `SELECT `+consentColumns+consentFrom+`
		WHERE c.status = 'awaiting_signature' AND c.expired_at IS NULL AND c.request_expires_at > ? AND c.mode = 'link' ORDER BY c.id`, formatTime(tx.now))
	if err != nil {
		return 0, 0, err
	}
	for _, c := range pending {
		n, err := s.remind(sysctx, tx, c)
		if err != nil {
			return 0, 0, err
		}
		reminded += n
		if err := s.mailTurns(sysctx, tx, c); err != nil {
			return 0, 0, err
		}
	}
	return len(due), reminded, tx.Commit()
}

// remind mails the reminders of one request due now and returns how many.
func (s *ConsentService) remind(ctx context.Context, tx *Tx, c *doorledger.Consent) (int, error) {
	day := c.ReminderDay(tx.now)
	if day == 0 {
		return 0, nil
	}
	sent := 0
	for _, rs := range c.Signers {
		if rs.State != doorledger.SignerToSign {
			continue // signed, removed, not needed, or waiting for their turn
		}
		var later int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM consent_reminders WHERE consent_id = ? AND signer_id = ? AND kind = 'reminder' AND day >= ?`,
			c.ID, rs.Signer.ID, day).Scan(&later); err != nil {
			return 0, err
		} else if later > 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO consent_reminders (consent_id, signer_id, kind, day, sent_at) VALUES (?, ?, 'reminder', ?, ?)`,
			c.ID, rs.Signer.ID, day, formatTime(tx.now)); err != nil {
			return 0, err
		}
		if err := s.mailSigningLink(ctx, tx, c, rs, "reminder"); err != nil {
			return 0, err
		}
		sent++
	}
	return sent, nil
}

// expire marks a request past its period expired: its signing links and
// codes stop working, the installer and the managers are told, and it can be
// sent again as a new request.
func (s *ConsentService) expire(ctx context.Context, tx *Tx, c *doorledger.Consent) error {
	if _, err := tx.ExecContext(ctx, `UPDATE consents SET expired_at = ? WHERE id = ? AND expired_at IS NULL`, formatTime(tx.now), c.ID); err != nil {
		return fmt.Errorf("expire consent %d: %w", c.ID, err)
	}
	if err := tx.closeRequestLinks(ctx, c.ID); err != nil {
		return err
	}
	note := notice.ExpiredNote(c)
	if err := tx.consentEvent(ctx, c.ID, "expired", note); err != nil {
		return err
	}
	if err := tx.audit(ctx, "consent.expire", c.BuildingID, "consent", c.ID, map[string]any{"requested_at": formatTime(c.RequestedAt), "still_needed": c.Need.Describe()}); err != nil {
		return err
	}
	a := notice.Expired(c, note, tx.now, s.BaseURL)
	var email string
	if err := tx.QueryRowContext(ctx, `SELECT email FROM users WHERE id = ? AND disabled = 0`, c.InstallerID).Scan(&email); err == nil {
		// The installer reads no contact data of signers: names and titles only.
		if err := tx.queueMail(ctx, &doorledger.Message{To: email, Subject: a.Subject, Body: c.MaskAddresses(a.Body), Kind: "alert", BuildingID: c.BuildingID}, ""); err != nil {
			return err
		}
	}
	return tx.alertManagers(ctx, c.BuildingID, false, a.Subject, a.Body, fmt.Sprintf("consent-expired:%d", c.ID))
}
