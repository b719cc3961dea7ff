package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/notice"
)

// withdrawSignerRequests follows a signer's removal from the roster, in the
// same transaction. In every request awaiting their signature they drop out:
// their signing links and codes stop working (a fact on its timeline, which
// says who is still needed). A request the signers left can no longer
// satisfy is stranded: its links and codes are withdrawn, its installer is
// told, and the managers are alerted; under ordered signing, the next
// signer is mailed that it is their turn. The managers are also told which
// signed consents now rest on a signer no longer on the roster (they stay
// valid: the signer was authorized when they signed). It returns the ids of
// the requests withdrawn (stranded) and of the signed consents.
func (tx *Tx) withdrawSignerRequests(ctx context.Context, baseURL string, buildingID, signerID int64) (withdrawn, signed []int64, err error) {
	list, err := queryConsents(ctx, tx, `SELECT `+consentColumns+consentFrom+`
		WHERE c.building_id = ? AND c.status IN ('awaiting_signature', 'signed') AND c.expired_at IS NULL
		AND (c.signer_id = ? OR EXISTS (SELECT 1 FROM consent_signers n WHERE n.consent_id = c.id AND n.signer_id = ?)) ORDER BY c.id`, buildingID, signerID, signerID)
	if err != nil || len(list) == 0 {
		return nil, nil, err
	}
	at := formatTime(tx.now)
	var pending, active, still []*doorledger.Consent
	byInstaller := map[int64][]*doorledger.Consent{}
	var installers []int64
	var removed doorledger.Signer
	cs := &ConsentService{BaseURL: baseURL}
	for _, c := range list {
		me := c.SignerOf(signerID)
		removed = me.Signer
		if c.Status == doorledger.ConsentSigned {
			if me.Signature != nil || c.SignerID == signerID {
				signed = append(signed, c.ID)
				active = append(active, c)
			}
			continue
		}
		if me.Signature != nil {
			continue // they signed before leaving: their signature stands
		}
		if _, err := tx.ExecContext(ctx, `UPDATE consent_tokens SET used_at = ? WHERE consent_id = ? AND purpose = 'sign' AND used_at IS NULL AND COALESCE(signer_id, ?) = ?`,
			at, c.ID, c.SignerID, signerID); err != nil {
			return nil, nil, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE consent_codes SET used_at = ? WHERE consent_id = ? AND used_at IS NULL AND COALESCE(signer_id, ?) = ?`,
			at, c.ID, c.SignerID, signerID); err != nil {
			return nil, nil, err
		}
		if c.Need.Satisfiable {
			still = append(still, c)
			if err := tx.consentEvent(ctx, c.ID, "links_withdrawn",
				fmt.Sprintf("%s was removed from the roster by %s: their signing link and codes no longer work. Still needed: %s", me.Signer.Name, callerFrom(ctx).label(), c.Need.Describe())); err != nil {
				return nil, nil, err
			}
			if err := cs.mailTurns(ctx, tx, c); err != nil {
				return nil, nil, err
			}
			continue
		}
		withdrawn = append(withdrawn, c.ID)
		pending = append(pending, c)
		if err := tx.closeRequestLinks(ctx, c.ID); err != nil {
			return nil, nil, err
		}
		note := fmt.Sprintf("%s was removed from the roster by %s: the signing link and codes no longer work", me.Signer.Name, callerFrom(ctx).label())
		if len(c.Signers) > 1 {
			note = fmt.Sprintf("%s was removed from the roster by %s: the signers left cannot satisfy the policy (%s), so the signing links and codes no longer work", me.Signer.Name, callerFrom(ctx).label(), c.Policy.Describe())
		}
		if err := tx.consentEvent(ctx, c.ID, "links_withdrawn", note); err != nil {
			return nil, nil, err
		}
		if byInstaller[c.InstallerID] == nil {
			installers = append(installers, c.InstallerID)
		}
		byInstaller[c.InstallerID] = append(byInstaller[c.InstallerID], c)
	}
	for _, id := range installers {
		var email string
		if err := tx.QueryRowContext(ctx, `SELECT email FROM users WHERE id = ? AND disabled = 0`, id).Scan(&email); err == sql.ErrNoRows {
			continue
		} else if err != nil {
			return nil, nil, err
		}
		if err := tx.queueMail(ctx, notice.RequestsUnsignable(email, removed, byInstaller[id], baseURL), ""); err != nil {
			return nil, nil, err
		}
	}
	if len(pending)+len(active)+len(still) == 0 {
		return withdrawn, signed, nil
	}
	a := notice.SignerRemoved(list[0].BuildingName, removed, callerFrom(ctx).label(), pending, still, active, baseURL)
	return withdrawn, signed, tx.alertManagers(ctx, buildingID, false, a.Subject, a.Body, "")
}
