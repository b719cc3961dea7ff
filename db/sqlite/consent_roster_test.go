package sqlite_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
)

// A signer taken off the roster can no longer sign; the typed name is
// compared with the roster name; installers see no contact data, and a signer's links say what happened once used.

func TestConsentSignerRemovedCannotSignByLink(t *testing.T) {
	w := newConsentWorld(t)
	c, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-R1", w.Signer.ID))
	if err != nil {
		t.Fatal(err)
	}
	token := w.LastLink(t, "zoe@example.com", "/sign/")
	in := w.SignInput(t, token)
	if err := w.Buildings.RemoveSigner(as(w.Manager), w.A.ID, w.Signer.ID); err != nil {
		t.Fatal(err)
	}

	// The link neither opens nor signs, and says why.
	_, err = w.Consents.OpenSigning(context.Background(), token)
	if doorledger.ErrorCode(err) != doorledger.ECONFLICT || !strings.Contains(doorledger.ErrorMessage(err), "removed from the roster") {
		t.Fatalf("open after removal: %v", err)
	}
	if _, err := w.Consents.Sign(context.Background(), token, in); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("sign after removal: %v", err)
	}
	got, _ := w.Consents.FindConsentByID(as(w.Manager), c.ID)
	if state, _ := w.Device(t, c.DeviceID); state != "disabled" || got.Status != doorledger.ConsentAwaiting || !got.Stranded() {
		t.Fatalf("after a refused signature: device %s, consent %s (stranded %v)", state, got.Status, got.Stranded())
	}
	// The link was withdrawn: a fact on the timeline; installer and managers told.
	if tl := w.Timeline(t, w.Manager, c.ID); !strings.Contains(tl, "links_withdrawn: Zoë Nuñez was removed from the roster") {
		t.Fatalf("timeline:\n%s", tl)
	}
	var live int
	if err := w.db.Reader().QueryRow(`SELECT COUNT(*) FROM consent_tokens WHERE consent_id = ? AND used_at IS NULL`, c.ID).Scan(&live); err != nil || live != 0 {
		t.Fatalf("live tokens after removal: %d %v", live, err)
	}
	toInstaller := w.Mail(t, "inst@example.com", "can no longer be signed")
	if len(toInstaller) != 1 || !strings.Contains(toInstaller[0].Body, "consent #"+itoa(c.ID)) || strings.Contains(toInstaller[0].Body, "zoe@example.com") {
		t.Fatalf("installer's mail: %+v", toInstaller)
	}
	if m := w.Mail(t, "manager@example.com", "Signer removed"); len(m) != 1 || !strings.Contains(m[0].Body, "consent #"+itoa(c.ID)) {
		t.Fatalf("managers' mail: %+v", m)
	}
}

// Removed around the service (the links still live), signing is still
// refused inside the signing transaction.
func TestConsentSignerRemovedAroundTheService(t *testing.T) {
	w := newConsentWorld(t)
	c, _ := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-R2", w.Signer.ID))
	token := w.LastLink(t, "zoe@example.com", "/sign/")
	in := w.SignInput(t, token)
	if _, err := w.db.Writer().Exec(`UPDATE signers SET active = 0 WHERE id = ?`, w.Signer.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Consents.Sign(context.Background(), token, in); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("sign by a signer off the roster: %v", err)
	}
	if state, _ := w.Device(t, c.DeviceID); state != "disabled" {
		t.Fatalf("device %s", state)
	}
}

func TestConsentSignerRemovedCannotSignInPerson(t *testing.T) {
	w := newConsentWorld(t)
	r := request("SN-R3", w.Signer.ID)
	r.InPerson = true
	c, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, r)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := w.Consents.InPersonSession(as(w.Inst), c.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	in := doorledger.SignInput{TypedName: "Zoë Nuñez", AgreeESign: true, SignaturePNG: png, TermsSHA256: sess.TermsSHA256}
	code := w.MustCode(t, c.ID)

	// Around the service first: the code is live, the signer is not.
	if _, err := w.db.Writer().Exec(`UPDATE signers SET active = 0 WHERE id = ?`, w.Signer.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Consents.SignInPerson(as(w.Inst), c.ID, 0, code, in); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("in person, signer off the roster: %v", err)
	}

	// Through the service: the code is withdrawn with the signer.
	w2 := newConsentWorld(t)
	r.Device.Serial = "SN-R4"
	c2, _ := w2.Consents.RequestConsent(as(w2.Inst), w2.A.ID, r)
	sess, _ = w2.Consents.InPersonSession(as(w2.Inst), c2.ID, 0)
	in.TermsSHA256 = sess.TermsSHA256
	code = w2.MustCode(t, c2.ID)
	if err := w2.Buildings.RemoveSigner(as(w2.Manager), w2.A.ID, w2.Signer.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := w2.Consents.SignInPerson(as(w2.Inst), c2.ID, 0, code, in); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("in person after removal: %v", err)
	}
	if err := w2.Consents.SendCode(as(w2.Inst), c2.ID, 0); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("code after removal: %v", err)
	}
	if _, err := w2.Consents.InPersonSession(as(w2.Inst), c2.ID, 0); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("in-person page after removal: %v", err)
	}
	var live int
	if err := w2.db.Reader().QueryRow(`SELECT COUNT(*) FROM consent_codes WHERE consent_id = ? AND used_at IS NULL`, c2.ID).Scan(&live); err != nil || live != 0 {
		t.Fatalf("live codes after removal: %d %v", live, err)
	}
	if state, _ := w.Device(t, c.DeviceID); state != "disabled" {
		t.Fatalf("device %s after a refused in-person signature", state)
	}
	if state, _ := w2.Device(t, c2.DeviceID); state != "disabled" {
		t.Fatalf("device %s after a refused in-person signature", state)
	}
}

// The database refuses a signature by a signer off the roster, whoever
// writes it, as it refuses enabling without consent.
func TestConsentSignNeedsRosterTrigger(t *testing.T) {
	w := newConsentWorld(t)
	c, _ := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-R5", w.Signer.ID))
	if err := w.Buildings.RemoveSigner(as(w.Manager), w.A.ID, w.Signer.ID); err != nil {
		t.Fatal(err)
	}
	const evidence = `terms = 't', terms_sha256 = 'h', typed_name = 'Zoë Nuñez', signature_png = x'00', signed_at = '2026-01-01T00:00:00Z',
		method = 'link', expires_at = '2999-01-01T00:00:00Z'`
	_, err := w.db.Writer().Exec(`UPDATE consents SET status = 'signed', `+evidence+` WHERE id = ?`, c.ID)
	if err == nil || !strings.Contains(err.Error(), "roster") && !strings.Contains(err.Error(), "as many signatures as its policy requires") {
		t.Fatalf("signature by a removed signer written directly: %v", err)
	}
	// Their signature row itself is refused (migration 030).
	_, err = w.db.Writer().Exec(`INSERT INTO consent_signatures (consent_id, signer_id, address, address_key, terms_sha256, typed_name, signature_png, signed_at, method)
		SELECT id, signer_id, 'zoe@example.com', 'zoe@example.com', terms_sha256, 'Zoë Nuñez', x'00', '2026-01-01T00:00:00Z', 'link' FROM consents WHERE id = ?`, c.ID)
	if err == nil || !strings.Contains(err.Error(), "roster") {
		t.Fatalf("signature row of a removed signer written directly: %v", err)
	}
	_, err = w.db.Writer().Exec(`INSERT INTO consents (building_id, installer_id, signer_id, vendor, model, serial, location, opens, mode, requested_at, status, status_at,
		terms, terms_sha256, typed_name, signature_png, signed_at, method, expires_at)
		VALUES (?, ?, ?, 'V', 'M', 'S', 'L', 'O', 'link', '2026-01-01T00:00:00Z', 'signed', '2026-01-01T00:00:00Z', 't', 'h', 'n', x'00', '2026-01-01T00:00:00Z', 'link', '2999-01-01T00:00:00Z')`,
		w.A.ID, w.Inst.ID, w.Signer.ID)
	if err == nil || !strings.Contains(err.Error(), "roster") {
		t.Fatalf("signed consent of a removed signer inserted: %v", err)
	}
	// Another building's signer cannot sign either.
	if _, err := w.db.Writer().Exec(`UPDATE consents SET signer_id = ? WHERE id = ?`, w.SignerB.ID, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.Writer().Exec(`UPDATE consents SET status = 'signed', `+evidence+` WHERE id = ?`, c.ID); err == nil ||
		!strings.Contains(err.Error(), "roster") && !strings.Contains(err.Error(), "as many signatures as its policy requires") {
		t.Fatalf("signature by another building's signer: %v", err)
	}
	// A removal is for good.
	if _, err := w.db.Writer().Exec(`UPDATE signers SET active = 1 WHERE id = ?`, w.Signer.ID); err == nil || !strings.Contains(err.Error(), "stays removed") {
		t.Fatalf("signer put back on the roster: %v", err)
	}
}

func TestConsentTypedNameCheck(t *testing.T) {
	w := newConsentWorld(t) // the roster says "Zoë Nuñez"
	c, _ := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-N1", w.Signer.ID))
	token := w.LastLink(t, "zoe@example.com", "/sign/")
	in := w.SignInput(t, token)

	// Another name: refused beside the field, with a confirmation to tick; the link still works.
	in.TypedName = "Mickey Mouse"
	_, err := w.Consents.Sign(context.Background(), token, in)
	if f := doorledger.ErrorFields(err); doorledger.ErrorCode(err) != doorledger.EINVALID || !strings.Contains(f["typed_name"], "Zoë Nuñez") || f["name_confirm"] == "" {
		t.Fatalf("a differing name, unconfirmed: %v", err)
	}
	// Confirmed: signed, and the evidence says the names differ, for good.
	in.ConfirmNameDiffers = true
	signed, err := w.Consents.Sign(context.Background(), token, in)
	if err != nil {
		t.Fatal(err)
	}
	if signed.Signature.TypedName != "Mickey Mouse" || !signed.Signature.NameDiffers {
		t.Fatalf("signed with a differing name: %+v", signed.Signature)
	}
	if tl := w.Timeline(t, w.Manager, c.ID); !strings.Contains(tl, "signed: typed name “Mickey Mouse”, which differs from the roster name “Zoë Nuñez” (the signer confirmed it); the roster address was verified by a one-time link") {
		t.Fatalf("timeline:\n%s", tl)
	}
	if _, err := w.db.Writer().Exec(`UPDATE consents SET typed_name_differs = 0 WHERE id = ?`, c.ID); err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Fatalf("name check changed after signing: %v", err)
	}
	if m := w.Mail(t, "manager@example.com", "signed at"); len(m) != 1 || !strings.Contains(m[0].Body, "DIFFERS from the roster name") {
		t.Fatalf("managers' mail: %+v", m)
	}

	// The same name written plainly matches: no confirmation asked, none recorded.
	c2, _ := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-N2", w.Signer.ID))
	token = w.LastLink(t, "zoe@example.com", "/sign/")
	in = w.SignInput(t, token)
	in.TypedName = "zoe  NUNEZ"
	signed, err = w.Consents.Sign(context.Background(), token, in)
	if err != nil || signed.Signature.NameDiffers {
		t.Fatalf("a matching name: %+v %v", signed, err)
	}
	var differs int
	if err := w.db.Reader().QueryRow(`SELECT typed_name_differs FROM consents WHERE id = ?`, c2.ID).Scan(&differs); err != nil || differs != 0 {
		t.Fatalf("stored name check: %d %v", differs, err)
	}

	// In person: a differing name does not cost the signer their code.
	r := request("SN-N3", w.Signer.ID)
	r.InPerson = true
	c3, _ := w.Consents.RequestConsent(as(w.Inst), w.A.ID, r)
	sess, _ := w.Consents.InPersonSession(as(w.Inst), c3.ID, 0)
	code := w.MustCode(t, c3.ID)
	in = doorledger.SignInput{TypedName: "Donald Duck", AgreeESign: true, SignaturePNG: png, TermsSHA256: sess.TermsSHA256}
	if _, err := w.Consents.SignInPerson(as(w.Inst), c3.ID, 0, code, in); doorledger.ErrorFields(err)["name_confirm"] == "" {
		t.Fatalf("in person, a differing name: %v", err)
	}
	in.TypedName = "Zoë Nuñez"
	if _, err := w.Consents.SignInPerson(as(w.Inst), c3.ID, 0, code, in); err != nil {
		t.Fatalf("in person, corrected name with the same code: %v", err)
	}
}

// A consent signed before the comparison was recorded (NULL) is compared
// when read.
func TestConsentTypedNameCheckOfOlderConsents(t *testing.T) {
	w := newConsentWorld(t)
	c, _ := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-N4", w.Signer.ID))
	token := w.LastLink(t, "zoe@example.com", "/sign/")
	in := w.SignInput(t, token)
	in.TypedName, in.ConfirmNameDiffers = "Mickey Mouse", true
	if _, err := w.Consents.Sign(context.Background(), token, in); err != nil {
		t.Fatal(err)
	}
	// As a database from before migration 015 holds it: drop the trigger to
	// write the NULL, as the ALTER TABLE did for rows signed earlier.
	if _, err := w.db.Writer().Exec(`DROP TRIGGER consents_name_check_immutable`); err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.Writer().Exec(`UPDATE consents SET typed_name_differs = NULL WHERE id = ?`, c.ID); err != nil {
		t.Fatal(err)
	}
	got, _ := w.Consents.FindConsentByID(as(w.Manager), c.ID)
	if !got.Signature.NameDiffers {
		t.Fatalf("older consent signed as Mickey Mouse: not flagged")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
