package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/doorledger/doorledger"
	"github.com/jackc/pgx/v5"
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
//
// The requests are taken FOR NO KEY UPDATE, as findConsent takes one: a
// signature being written at this moment by the signer removed is either
// committed first and stands, or waits and finds them off the roster.
func (tx *Tx) withdrawSignerRequests(ctx context.Context, baseURL string, buildingID, signerID int64) (withdrawn, signed []int64, err error) {
	list, err := queryConsents(ctx, tx, `SELECT `+consentColumns+consentFrom+`
		WHERE c.building_id = $1 AND c.status IN ('awaiting_signature', 'signed') AND c.expired_at IS NULL
		AND (c.signer_id = $2 OR EXISTS (SELECT 1 FROM consent_signers n WHERE n.consent_id = c.id AND n.signer_id = $3)) ORDER BY c.id
		FOR NO KEY UPDATE OF c`, buildingID, signerID, signerID)
	if err != nil || len(list) == 0 {
		return nil, nil, err
	}
	at := ts(tx.now)
	var pending, active, still strings.Builder
	byInstaller := map[int64][]*doorledger.Consent{}
	var installers []int64
	line := func(b *strings.Builder, c *doorledger.Consent) {
		fmt.Fprintf(b, "  consent #%d: %s %s, serial %s, at %s (installer %s, %s)\n    %s/consents/%d\n",
			c.ID, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, c.Installer, orNone(c.Company), baseURL, c.ID)
	}
	var removed doorledger.Signer
	cs := &ConsentService{BaseURL: baseURL}
	for _, c := range list {
		me := signerOf(c, signerID)
		removed = me.Signer
		if c.Status == doorledger.ConsentSigned {
			if me.Signature != nil || c.SignerID == signerID {
				signed = append(signed, c.ID)
				line(&active, c)
			}
			continue
		}
		if me.Signature != nil {
			continue // they signed before leaving: their signature stands
		}
		if _, err := tx.Exec(ctx, `UPDATE consent_tokens SET used_at = $1 WHERE consent_id = $2 AND purpose = 'sign' AND used_at IS NULL AND COALESCE(signer_id, $3) = $4`,
			at, c.ID, c.SignerID, signerID); err != nil {
			return nil, nil, err
		}
		if _, err := tx.Exec(ctx, `UPDATE consent_codes SET used_at = $1 WHERE consent_id = $2 AND used_at IS NULL AND COALESCE(signer_id, $3) = $4`,
			at, c.ID, c.SignerID, signerID); err != nil {
			return nil, nil, err
		}
		if c.Need.Satisfiable {
			line(&still, c)
			fmt.Fprintf(&still, "    still needed: %s\n", c.Need.Describe())
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
		line(&pending, c)
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
	first := list[0]
	for _, id := range installers {
		var email string
		if err := tx.QueryRow(ctx, `SELECT email FROM users WHERE id = $1 AND NOT disabled`, id).Scan(&email); errors.Is(err, pgx.ErrNoRows) {
			continue
		} else if err != nil {
			return nil, nil, err
		}
		var b strings.Builder
		for _, c := range byInstaller[id] {
			line(&b, c)
		}
		// The signer's name only: installers get no contact data of signers.
		if err := tx.queueMail(ctx, &doorledger.Message{To: email, Subject: fmt.Sprintf("Consent requests at %s can no longer be signed", first.BuildingName),
			Body: fmt.Sprintf(`%s was removed from the roster of authorized signers of %s, so these
requests of yours can no longer be signed: their signing links and codes no
longer work, and nothing was enabled.

%s
The building's managers have been told; they can ask a current signer instead.

— Doorledger, for the managers of %s
`, removed.Name, first.BuildingName, b.String(), first.BuildingName), Kind: "alert", BuildingID: buildingID}, ""); err != nil {
			return nil, nil, err
		}
	}
	if pending.Len()+active.Len()+still.Len() == 0 {
		return withdrawn, signed, nil
	}
	var body strings.Builder
	fmt.Fprintf(&body, "%s (%s) was removed from the roster of authorized signers of %s by %s.\n", removed.Name, removed.Title, first.BuildingName, callerFrom(ctx).label())
	if pending.Len() > 0 {
		fmt.Fprintf(&body, "\nRequests awaiting their signature can no longer be signed (their links and codes no\nlonger work; the installers were told). Ask a current signer on each consent's page:\n%s", pending.String())
	}
	if still.Len() > 0 {
		fmt.Fprintf(&body, "\nRequests that named them among several signers: they drop out, and the others can\nstill satisfy the policy:\n%s", still.String())
	}
	if active.Len() > 0 {
		fmt.Fprintf(&body, "\nConsents they signed stay valid (they were authorized when they signed) and are\nflagged on the building page and in reports. Ask a current signer to renew them on\neach consent's page:\n%s", active.String())
	}
	return withdrawn, signed, tx.alertManagers(ctx, buildingID, false,
		fmt.Sprintf("Signer removed at %s: %d request(s) withdrawn, %d signed consent(s) to renew", first.BuildingName, len(withdrawn), len(signed)), body.String(), "")
}
