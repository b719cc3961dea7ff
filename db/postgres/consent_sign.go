package postgres

import (
	"context"
	"crypto/subtle"
	"fmt"
	"strings"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/notice"
	"github.com/doorledger/doorledger/namecheck"
)

// signingSession builds what the signing page shows for a named signer of a
// consent: the exact terms to sign and their hash, who else signs and who
// has, and, under ordered signing, whom it waits for. The terms of a policy
// request were fixed when it was made; an older request's are built now
// (version 1), as they always were. The building comes without its roster
// (the page is for whoever holds the link).
func signingSession(ctx context.Context, q querier, c *doorledger.Consent, me *doorledger.RequestSigner) (*doorledger.SigningSession, error) {
	b, err := findBuilding(ctx, q, c.BuildingID)
	if err != nil {
		return nil, err
	}
	b.Signers = nil
	terms := c.Terms
	if c.TermsSHA256 == "" {
		terms = doorledger.ConsentTerms(c, b)
	}
	return &doorledger.SigningSession{Consent: c, Building: b, Terms: terms, TermsSHA256: doorledger.TermsSHA256(terms),
		Me: me, WaitingFor: c.WaitingFor(me.Signer.ID)}, nil
}

// doneSession is what a link mailed to the signer shows once its consent is
// past signing, or once this signer signed a request that awaits others:
// only what the signer saw, its status and dates.
func doneSession(ctx context.Context, q querier, c *doorledger.Consent, me *doorledger.RequestSigner) (*doorledger.SigningSession, error) {
	b, err := findBuilding(ctx, q, c.BuildingID)
	if err != nil {
		return nil, err
	}
	b.Signers = nil
	seen := c.ForSigner()
	sess := &doorledger.SigningSession{Consent: seen, Building: b, Done: true}
	if me != nil {
		sess.Me = seen.RequestSigner(me.Signer.ID)
		sess.SignedByMe = me.Signature != nil && c.Status == doorledger.ConsentAwaiting
	}
	return sess, nil
}

func (s *ConsentService) OpenSigning(ctx context.Context, token string) (*doorledger.SigningSession, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	t, c, me, err := tx.linkConsent(ctx, token, "sign")
	if err != nil {
		return nil, err
	}
	switch {
	case c.Status != doorledger.ConsentAwaiting || me.Signature != nil:
		return doneSession(ctx, tx, c, me)
	case !me.Signer.Active:
		return nil, c.SignerRemovedError(me.Signer)
	case !t.live:
		return nil, notFoundLink
	}
	var opened int
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM consent_events WHERE consent_id = $1 AND kind = 'opened' AND note = $2`, c.ID, openedNote(c, me)).Scan(&opened); err != nil {
		return nil, err
	}
	if opened == 0 {
		if err := tx.consentEvent(ctx, c.ID, "opened", openedNote(c, me)); err != nil {
			return nil, err
		}
	}
	sess, err := signingSession(ctx, tx, c, me)
	if err != nil {
		return nil, err
	}
	return sess, tx.Commit(ctx)
}

// openedNote names who opened a link of a request with several signers.
func openedNote(c *doorledger.Consent, me *doorledger.RequestSigner) string {
	if len(c.Signers) <= 1 {
		return ""
	}
	return "by " + me.Signer.Name
}

// validateSign checks the signer's input. A typed name that differs from the
// roster name (namecheck's rule) is refused until the signer confirms it.
func validateSign(in *doorledger.SignInput, sess *doorledger.SigningSession) error {
	v := doorledger.Validation{}
	in.TypedName = strings.TrimSpace(in.TypedName)
	if in.TypedName == "" {
		v.Add("typed_name", "Type your full name.")
	} else if len(in.TypedName) > 200 {
		v.Add("typed_name", "Keep your name under 200 characters.")
	} else if doorledger.ValidateLine(v, "typed_name", in.TypedName); v["typed_name"] != "" {
		// A name with control characters is refused as such before it is
		// compared with the roster.
	} else if roster := sess.Me.Signer.Name; !in.ConfirmNameDiffers && !namecheck.Match(in.TypedName, roster) {
		v.Add("typed_name", fmt.Sprintf("This is not the name on the roster, “%s”. Correct it, or confirm below that you sign with the name as typed.", roster))
		v.Add("name_confirm", "Tick this to sign with the name as typed: the record will show both names and that they differ.")
	}
	if !in.AgreeESign {
		v.Add("agree", "Tick the box to agree to sign electronically.")
	}
	if len(in.SignaturePNG) == 0 {
		v.Add("signature", "Draw your signature in the box.")
	}
	return v.Err()
}

// sign records one named signer's signature evidence. When the signatures
// then satisfy the request's policy, the consent is signed and its device
// enabled (complete); otherwise the signer is told who else must sign, and,
// under ordered signing, the next signer is mailed that it is their turn.
// Either way the signer is mailed a confirmation with their own withdraw and
// "I did not sign this" links.
//
// The signer must be on the roster now, named by the request, and it must be
// their turn: c was read in this transaction, and the database refuses the
// signature otherwise (030's consent_signatures_valid).
func (s *ConsentService) sign(ctx context.Context, tx *Tx, c *doorledger.Consent, me *doorledger.RequestSigner, in doorledger.SignInput, method doorledger.VerificationMethod) (*doorledger.Consent, error) {
	if !me.Signer.Active {
		return nil, c.SignerRemovedError(me.Signer)
	}
	if me.Signature != nil {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "%s signed consent #%d already: one person signs once.", me.Signer.Name, c.ID)
	}
	if waiting := c.WaitingFor(me.Signer.ID); len(waiting) > 0 {
		return nil, c.WaitingError(waiting)
	}
	sess, err := signingSession(ctx, tx, c, me)
	if err != nil {
		return nil, err
	}
	pv := doorledger.Validation{}
	if err := c.CheckPaperConfirm(me, in, pv); err != nil {
		return nil, err
	}
	if err := validateSign(&in, sess); err != nil || len(pv) > 0 {
		for k, m := range doorledger.ErrorFields(err) {
			pv.Add(k, m)
		}
		return nil, pv.Err()
	}
	differs := !namecheck.Match(in.TypedName, me.Signer.Name)
	hash := sess.TermsSHA256
	if subtle.ConstantTimeCompare([]byte(in.TermsSHA256), []byte(hash)) != 1 {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "The terms changed since the page was opened. Please read them again before signing.")
	}
	b := sess.Building
	if len(in.UserAgent) > 500 {
		in.UserAgent = in.UserAgent[:500]
	}
	if c.TermsSHA256 == "" { // a request made before policies: its terms are stored as signed
		if _, err := tx.Exec(ctx, `UPDATE consents SET terms = $1, terms_sha256 = $2 WHERE id = $3 AND signed_at IS NULL`, sess.Terms, hash, c.ID); err != nil {
			return nil, err
		}
	}
	var signatureID int64
	err = tx.QueryRow(ctx, `INSERT INTO consent_signatures (consent_id, signer_id, address, address_key, terms_sha256, typed_name, typed_name_differs,
			signature_png, signed_at, signed_tz, signed_ip, signed_ua, method) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id`,
		c.ID, me.Signer.ID, me.Signer.Email, doorledger.AddressKey(me.Signer.Email), hash, in.TypedName, differs, in.SignaturePNG,
		ts(tx.now), b.Timezone, in.IP, in.UserAgent, method).Scan(&signatureID)
	if isUniqueViolation(err) || isRefusal(err, "one person cannot sign a request twice") {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "Consent #%d has a signature from this person already (the same roster entry or the same registered address): one person signs once.", c.ID)
	} else if err != nil {
		return nil, fmt.Errorf("sign consent %d: %w", c.ID, err)
	}
	nameNote := fmt.Sprintf("typed name “%s”", in.TypedName)
	if differs {
		nameNote += fmt.Sprintf(", which differs from the roster name “%s” (the signer confirmed it)", me.Signer.Name)
	}
	if len(c.Signers) > 1 {
		nameNote = fmt.Sprintf("%s (%s) signed: %s", me.Signer.Name, me.Signer.Title, nameNote)
	}
	signer := fmt.Sprintf("signer %s <%s>", me.Signer.Name, me.Signer.Email)
	if err := tx.auditAs(ctx, 0, signer, "consent.sign", c.BuildingID, "consent", c.ID,
		map[string]any{"terms_sha256": hash, "method": method, "typed_name": in.TypedName, "typed_name_differs": differs, "signer": me.Signer.ID}); err != nil {
		return nil, err
	}
	if err := tx.confirmPaper(ctx, c, me, signatureID, signer); err != nil {
		return nil, err
	}
	after, err := findConsent(ctx, tx, c.ID)
	if err != nil {
		return nil, err
	}
	if !after.Need.Satisfied {
		if err := tx.consentEvent(ctx, c.ID, "signature", fmt.Sprintf("%s; the roster address was verified by %s. Still needed: %s", nameNote, notice.MethodWords(method), after.Need.Describe())); err != nil {
			return nil, err
		}
		if err := s.mailSignatureRecorded(ctx, tx, after, after.SignerOf(me.Signer.ID), b, method, differs, in.TypedName); err != nil {
			return nil, err
		}
		if err := s.mailTurns(ctx, tx, after); err != nil {
			return nil, err
		}
		return after, nil
	}
	if err := tx.consentEvent(ctx, c.ID, "signed", fmt.Sprintf("%s; the roster address was verified by %s", nameNote, notice.MethodWords(method))); err != nil {
		return nil, err
	}
	return s.complete(ctx, tx, after, after.SignerOf(me.Signer.ID), b, method)
}

// complete marks a request whose signatures satisfy its policy signed (the
// row holds the last signature, the one that satisfied it; every signature
// is in consent_signatures), enables its device, withdraws the links and
// codes of the signers no longer needed, and mails the last signer their
// confirmation, the earlier ones that the consent is in force, and the
// managers.
func (s *ConsentService) complete(ctx context.Context, tx *Tx, c *doorledger.Consent, last *doorledger.RequestSigner, b *doorledger.Building, method doorledger.VerificationMethod) (*doorledger.Consent, error) {
	sig := last.Signature
	months := b.ConsentMonths
	if c.Policy.ID != 0 {
		if err := tx.QueryRow(ctx, `SELECT COALESCE(term_months, $1) FROM consents WHERE id = $2`, months, c.ID).Scan(&months); err != nil {
			return nil, err
		}
	}
	expires := tx.now.AddDate(0, months, 0)
	res, err := tx.Exec(ctx, `UPDATE consents SET status = 'signed', status_at = $1, signer_id = $2, typed_name = $3,
		signature_png = $4, signed_at = $5, signed_tz = $6, signed_ip = $7, signed_ua = $8, method = $9, expires_at = $10, typed_name_differs = $11
		WHERE id = $12 AND status = 'awaiting_signature' AND expired_at IS NULL`,
		ts(tx.now), last.Signer.ID, sig.TypedName, sig.SignaturePNG, ts(tx.now), sig.Timezone, sig.IP, sig.UserAgent,
		method, ts(expires), sig.NameDiffers, c.ID)
	if err != nil {
		return nil, fmt.Errorf("sign consent %d: %w", c.ID, err)
	} else if n := res.RowsAffected(); n == 0 {
		return nil, notFoundLink
	}
	// The signers not needed any more: their links and codes stop working.
	if err := tx.closeRequestLinks(ctx, c.ID); err != nil {
		return nil, err
	}
	signer := fmt.Sprintf("signer %s <%s>", last.Signer.Name, last.Signer.Email)
	// The device now rests on this consent (a renewal moves it here) and is enabled.
	if c.DeviceID != 0 {
		if _, err := tx.Exec(ctx, `UPDATE devices SET consent_id = $1, unconsented = false WHERE id = $2 AND NOT retired`, c.ID, c.DeviceID); err != nil {
			return nil, err
		}
		sysctx := doorledger.NewSystemContext(ctx, signer)
		// Under the privacy profile a device without a complete vendor
		// disclosure record stays disabled: the consent is signed, and the
		// managers are told what is missing (db/sqlite/privacy.go).
		if hold, err := tx.privacyHold(ctx, c.DeviceID); err != nil {
			return nil, err
		} else if hold != "" {
			a := notice.PrivacyHold(c, hold)
			if err := tx.alertManagers(ctx, c.BuildingID, false, a.Subject, a.Body, "privacy.hold:"+itoa(c.ID)); err != nil {
				return nil, err
			}
		} else if _, err := tx.setDesiredState(sysctx, c.DeviceID, doorledger.StateEnabled, fmt.Sprintf("consent #%d signed", c.ID)); err != nil {
			return nil, err
		}
	}
	links, err := s.issueEndLinks(ctx, tx, c.ID, last.Signer.ID, expires)
	if err != nil {
		return nil, err
	}
	if err := tx.queueMail(ctx, notice.Signed(c, last, b, method, tx.now, expires, links), ""); err != nil {
		return nil, err
	}
	for _, rs := range c.Signers { // the earlier signers: their links of their own confirmation still work
		if rs.Signature == nil || rs.Signer.ID == last.Signer.ID {
			continue
		}
		if err := tx.queueMail(ctx, notice.NowSigned(c, rs, b, expires), ""); err != nil {
			return nil, err
		}
	}
	a := notice.SignedAlert(c, last, b, method, s.BaseURL)
	if err := tx.alertManagers(ctx, b.ID, false, a.Subject, a.Body, ""); err != nil {
		return nil, err
	}
	return findConsent(ctx, tx, c.ID)
}

// mailSignatureRecorded confirms one signature of a request that awaits
// others, with the signer's own withdraw and "I did not sign this" links
// (working until the consent could last at most).
func (s *ConsentService) mailSignatureRecorded(ctx context.Context, tx *Tx, c *doorledger.Consent, me *doorledger.RequestSigner, b *doorledger.Building,
	method doorledger.VerificationMethod, differs bool, typed string) error {
	horizon := c.RequestExpiresAt
	if horizon.IsZero() {
		horizon = tx.now
	}
	links, err := s.issueEndLinks(ctx, tx, c.ID, me.Signer.ID, horizon.AddDate(0, b.ConsentMonths, 0))
	if err != nil {
		return err
	}
	return tx.queueMail(ctx, notice.SignatureRecorded(c, me, b, method, differs, typed, tx.now, links), "")
}

// mailTurns mails, under ordered signing, each signer whose turn has come
// (the earlier signers signed or left the roster) and who was not told yet,
// a fresh signing link. Each is told once.
func (s *ConsentService) mailTurns(ctx context.Context, tx *Tx, c *doorledger.Consent) error {
	if !c.Policy.Ordered || c.Status != doorledger.ConsentAwaiting {
		return nil
	}
	for _, rs := range c.Signers {
		if rs.State != doorledger.SignerToSign || rs.Position == 1 { // the first was asked at the request
			continue
		}
		res, err := tx.Exec(ctx, `INSERT INTO consent_reminders (consent_id, signer_id, kind, day, sent_at) VALUES ($1, $2, 'turn', 0, $3) ON CONFLICT DO NOTHING`,
			c.ID, rs.Signer.ID, ts(tx.now))
		if err != nil {
			return err
		} else if n := res.RowsAffected(); n == 0 {
			continue
		}
		if c.InPerson {
			continue // signed on the installer's screen: no link to mail
		}
		if err := s.mailSigningLink(ctx, tx, c, rs, "turn"); err != nil {
			return err
		}
	}
	return nil
}

func (s *ConsentService) Sign(ctx context.Context, token string, in doorledger.SignInput) (*doorledger.Consent, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	t, c, me, err := tx.linkConsent(ctx, token, "sign")
	if err != nil {
		return nil, err
	}
	if c.Status == doorledger.ConsentAwaiting && me.Signature == nil {
		if !me.Signer.Active {
			return nil, c.SignerRemovedError(me.Signer) // said before "link not valid": the signer's links were withdrawn with them
		}
		if waiting := c.WaitingFor(me.Signer.ID); len(waiting) > 0 && t.live {
			return nil, c.WaitingError(waiting) // the link stays usable for their turn
		}
	}
	if _, err := tx.useToken(ctx, token, "sign", true); err != nil {
		return nil, err
	}
	if c.Status != doorledger.ConsentAwaiting || me.Signature != nil {
		return nil, notFoundLink
	}
	signed, err := s.sign(ctx, tx, c, me, in, doorledger.VerifyLink)
	if err != nil {
		return nil, err
	}
	return signed, tx.Commit(ctx)
}

// Decline refuses by link: any one named signer's "no" ends the request.
func (s *ConsentService) Decline(ctx context.Context, token, reason string) error {
	reason, err := doorledger.NormalizeReason(reason, 1000)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	t, err := tx.useToken(ctx, token, "sign", true)
	if err != nil {
		return err
	}
	id := t.consentID
	c, err := findConsent(ctx, tx, id)
	if err != nil {
		return err
	}
	me := c.SignerOf(t.signerID)
	if !me.Signer.Active || me.Signature != nil {
		return notFoundLink
	}
	res, err := tx.Exec(ctx, `UPDATE consents SET status = 'declined', status_at = $1, status_note = $2 WHERE id = $3 AND status = 'awaiting_signature' AND expired_at IS NULL`,
		ts(tx.now), reason, id)
	if err != nil {
		return err
	} else if n := res.RowsAffected(); n == 0 {
		return notFoundLink
	}
	if err := tx.closeRequestLinks(ctx, id); err != nil {
		return err
	}
	note := reason
	if len(c.Signers) > 1 {
		note = fmt.Sprintf("by %s (%s): %s", me.Signer.Name, me.Signer.Title, orDash(reason))
	}
	if err := tx.consentEvent(ctx, id, "declined", note); err != nil {
		return err
	}
	if err := tx.auditAs(ctx, 0, fmt.Sprintf("signer %s <%s>", me.Signer.Name, me.Signer.Email), "consent.decline", c.BuildingID, "consent", id, map[string]string{"reason": reason}); err != nil {
		return err
	}
	a := notice.Declined(c, me, reason, s.BaseURL)
	if err := tx.alertManagers(ctx, c.BuildingID, false, a.Subject, a.Body, ""); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
