package sqlite_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

// Issue 10.2: a signer taken off the roster can no longer sign; 10.3: the
// typed name is compared with the roster name; 10.6: installers see no
// contact data, and a signer's links say what happened once used.

func (w *consentWorld) buildings() *sqlite.BuildingService {
	b := sqlite.NewBuildingService(w.db)
	b.BaseURL = "http://portal.test"
	return b
}

// mail returns the queued messages to addr whose subject contains subject.
func (w *consentWorld) mail(t *testing.T, addr, subject string) []*doorledger.Message {
	t.Helper()
	msgs, err := w.outbox.PendingMessages(context.Background(), 100, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []*doorledger.Message
	for _, m := range msgs {
		if m.To == addr && strings.Contains(m.Subject, subject) {
			out = append(out, m)
		}
	}
	return out
}

func (w *consentWorld) timeline(t *testing.T, u *doorledger.User, id int64) string {
	t.Helper()
	events, err := w.consents.ConsentTimeline(as(u), id)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range events {
		b.WriteString(e.Kind + ": " + e.Note + "\n")
	}
	return b.String()
}

// mustCode mails a code for an in-person consent and returns it.
func (w *consentWorld) mustCode(t *testing.T, id int64) string {
	t.Helper()
	if err := w.consents.SendCode(as(w.inst), id, 0); err != nil {
		t.Fatal(err)
	}
	msgs, _ := w.outbox.PendingMessages(context.Background(), 100, 1000)
	return regexp.MustCompile(`Your code is: (\d{6})`).FindStringSubmatch(msgs[len(msgs)-1].Body)[1]
}

func TestConsentSignerRemovedCannotSignByLink(t *testing.T) {
	w := newConsentWorld(t)
	c, err := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-R1", w.signer.ID))
	if err != nil {
		t.Fatal(err)
	}
	token := w.lastLink(t, "zoe@example.com", "/sign/")
	in := w.signInput(t, token)
	if err := w.buildings().RemoveSigner(as(w.manager), w.A.ID, w.signer.ID); err != nil {
		t.Fatal(err)
	}

	// The link neither opens nor signs, and says why.
	_, err = w.consents.OpenSigning(context.Background(), token)
	if doorledger.ErrorCode(err) != doorledger.ECONFLICT || !strings.Contains(doorledger.ErrorMessage(err), "removed from the roster") {
		t.Fatalf("open after removal: %v", err)
	}
	if _, err := w.consents.Sign(context.Background(), token, in); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("sign after removal: %v", err)
	}
	got, _ := w.consents.FindConsentByID(as(w.manager), c.ID)
	if state, _ := w.device(t, c.DeviceID); state != "disabled" || got.Status != doorledger.ConsentAwaiting || !got.Stranded() {
		t.Fatalf("after a refused signature: device %s, consent %s (stranded %v)", state, got.Status, got.Stranded())
	}
	// The link was withdrawn: a fact on the timeline; installer and managers told.
	if tl := w.timeline(t, w.manager, c.ID); !strings.Contains(tl, "links_withdrawn: Zoë Nuñez was removed from the roster") {
		t.Fatalf("timeline:\n%s", tl)
	}
	var live int
	if err := w.db.Reader().QueryRow(`SELECT COUNT(*) FROM consent_tokens WHERE consent_id = ? AND used_at IS NULL`, c.ID).Scan(&live); err != nil || live != 0 {
		t.Fatalf("live tokens after removal: %d %v", live, err)
	}
	toInstaller := w.mail(t, "inst@example.com", "can no longer be signed")
	if len(toInstaller) != 1 || !strings.Contains(toInstaller[0].Body, "consent #"+itoa(c.ID)) || strings.Contains(toInstaller[0].Body, "zoe@example.com") {
		t.Fatalf("installer's mail: %+v", toInstaller)
	}
	if m := w.mail(t, "manager@example.com", "Signer removed"); len(m) != 1 || !strings.Contains(m[0].Body, "consent #"+itoa(c.ID)) {
		t.Fatalf("managers' mail: %+v", m)
	}
}

// Removed around the service (the links still live), signing is still
// refused inside the signing transaction.
func TestConsentSignerRemovedAroundTheService(t *testing.T) {
	w := newConsentWorld(t)
	c, _ := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-R2", w.signer.ID))
	token := w.lastLink(t, "zoe@example.com", "/sign/")
	in := w.signInput(t, token)
	if _, err := w.db.Writer().Exec(`UPDATE signers SET active = 0 WHERE id = ?`, w.signer.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.consents.Sign(context.Background(), token, in); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("sign by a signer off the roster: %v", err)
	}
	if state, _ := w.device(t, c.DeviceID); state != "disabled" {
		t.Fatalf("device %s", state)
	}
}

func TestConsentSignerRemovedCannotSignInPerson(t *testing.T) {
	w := newConsentWorld(t)
	r := request("SN-R3", w.signer.ID)
	r.InPerson = true
	c, err := w.consents.RequestConsent(as(w.inst), w.A.ID, r)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := w.consents.InPersonSession(as(w.inst), c.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	in := doorledger.SignInput{TypedName: "Zoë Nuñez", AgreeESign: true, SignaturePNG: png, TermsSHA256: sess.TermsSHA256}
	code := w.mustCode(t, c.ID)

	// Around the service first: the code is live, the signer is not.
	if _, err := w.db.Writer().Exec(`UPDATE signers SET active = 0 WHERE id = ?`, w.signer.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.consents.SignInPerson(as(w.inst), c.ID, 0, code, in); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("in person, signer off the roster: %v", err)
	}

	// Through the service: the code is withdrawn with the signer.
	w2 := newConsentWorld(t)
	r.Device.Serial = "SN-R4"
	c2, _ := w2.consents.RequestConsent(as(w2.inst), w2.A.ID, r)
	sess, _ = w2.consents.InPersonSession(as(w2.inst), c2.ID, 0)
	in.TermsSHA256 = sess.TermsSHA256
	code = w2.mustCode(t, c2.ID)
	if err := w2.buildings().RemoveSigner(as(w2.manager), w2.A.ID, w2.signer.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := w2.consents.SignInPerson(as(w2.inst), c2.ID, 0, code, in); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("in person after removal: %v", err)
	}
	if err := w2.consents.SendCode(as(w2.inst), c2.ID, 0); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("code after removal: %v", err)
	}
	if _, err := w2.consents.InPersonSession(as(w2.inst), c2.ID, 0); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("in-person page after removal: %v", err)
	}
	var live int
	if err := w2.db.Reader().QueryRow(`SELECT COUNT(*) FROM consent_codes WHERE consent_id = ? AND used_at IS NULL`, c2.ID).Scan(&live); err != nil || live != 0 {
		t.Fatalf("live codes after removal: %d %v", live, err)
	}
	if state, _ := w.device(t, c.DeviceID); state != "disabled" {
		t.Fatalf("device %s after a refused in-person signature", state)
	}
	if state, _ := w2.device(t, c2.DeviceID); state != "disabled" {
		t.Fatalf("device %s after a refused in-person signature", state)
	}
}

// The database refuses a signature by a signer off the roster, whoever
// writes it, as it refuses enabling without consent.
func TestConsentSignNeedsRosterTrigger(t *testing.T) {
	w := newConsentWorld(t)
	c, _ := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-R5", w.signer.ID))
	if err := w.buildings().RemoveSigner(as(w.manager), w.A.ID, w.signer.ID); err != nil {
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
		w.A.ID, w.inst.ID, w.signer.ID)
	if err == nil || !strings.Contains(err.Error(), "roster") {
		t.Fatalf("signed consent of a removed signer inserted: %v", err)
	}
	// Another building's signer cannot sign either.
	if _, err := w.db.Writer().Exec(`UPDATE consents SET signer_id = ? WHERE id = ?`, w.signerB.ID, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.Writer().Exec(`UPDATE consents SET status = 'signed', `+evidence+` WHERE id = ?`, c.ID); err == nil ||
		!strings.Contains(err.Error(), "roster") && !strings.Contains(err.Error(), "as many signatures as its policy requires") {
		t.Fatalf("signature by another building's signer: %v", err)
	}
	// A removal is for good.
	if _, err := w.db.Writer().Exec(`UPDATE signers SET active = 1 WHERE id = ?`, w.signer.ID); err == nil || !strings.Contains(err.Error(), "stays removed") {
		t.Fatalf("signer put back on the roster: %v", err)
	}
}

// A consent signed before its signer left the roster stays valid and is
// flagged; a manager asks a current signer to renew it, and a request
// stranded by the removal is asked of a current signer instead.
func TestConsentSignedBySignerSinceRemoved(t *testing.T) {
	w := newConsentWorld(t)
	bs := w.buildings()
	c, _ := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-R6", w.signer.ID))
	token := w.lastLink(t, "zoe@example.com", "/sign/")
	if _, err := w.consents.Sign(context.Background(), token, w.signInput(t, token)); err != nil {
		t.Fatal(err)
	}
	stranded, _ := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-R7", w.signer.ID))
	ana, err := bs.AddSigner(as(w.manager), w.A.ID, doorledger.SignerInput{Name: "Ana Owner", Title: "Owner", Email: "ana@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.RemoveSigner(as(w.manager), w.A.ID, w.signer.ID); err != nil {
		t.Fatal(err)
	}
	got, _ := w.consents.FindConsentByID(as(w.manager), c.ID)
	if state, _ := w.device(t, c.DeviceID); got.Status != doorledger.ConsentSigned || !got.SignedByRemovedSigner() || got.Signer.RemovedAt.IsZero() || state != "enabled" {
		t.Fatalf("signed consent after its signer left: %s, flagged %v, device %s", got.Status, got.SignedByRemovedSigner(), state)
	}
	if m := w.mail(t, "manager@example.com", "Signer removed"); len(m) != 1 || !strings.Contains(m[0].Body, "Consents they signed stay valid") ||
		!strings.Contains(m[0].Body, "consent #"+itoa(c.ID)) || !strings.Contains(m[0].Body, "consent #"+itoa(stranded.ID)) {
		t.Fatalf("managers' mail: %+v", m)
	}

	// Renewal by the removed signer is refused beside the field; by Ana it works.
	if _, err := w.consents.RequestRenewal(as(w.manager), c.ID, 0); doorledger.ErrorFields(err)["signer_id"] == "" {
		t.Fatalf("renewal by the removed signer: %v", err)
	}
	if _, err := w.consents.RequestRenewal(as(w.manager), c.ID, w.signerB.ID); doorledger.ErrorFields(err)["signer_id"] == "" {
		t.Fatalf("renewal by another building's signer: %v", err)
	}
	renewal, err := w.consents.RequestRenewal(as(w.manager), c.ID, ana.ID)
	if err != nil {
		t.Fatal(err)
	}
	tok := w.lastLink(t, "ana@example.com", "/sign/")
	in := w.signInput(t, tok)
	in.TypedName = "Ana Owner"
	if _, err := w.consents.Sign(context.Background(), tok, in); err != nil {
		t.Fatal(err)
	}
	if state, on := w.device(t, c.DeviceID); state != "enabled" || on != renewal.ID {
		t.Fatalf("device after Ana renewed: %s on %d, want enabled on %d", state, on, renewal.ID)
	}

	// The stranded request: asked of Ana instead; her signature enables the device.
	if _, err := w.consents.RequestRenewal(as(w.manager), stranded.ID, 0); doorledger.ErrorFields(err)["signer_id"] == "" {
		t.Fatalf("stranded request asked of its removed signer: %v", err)
	}
	again, err := w.consents.RequestRenewal(as(w.manager), stranded.ID, ana.ID)
	if err != nil {
		t.Fatal(err)
	}
	tok = w.lastLink(t, "ana@example.com", "/sign/")
	in = w.signInput(t, tok)
	in.TypedName = "Ana Owner"
	if _, err := w.consents.Sign(context.Background(), tok, in); err != nil {
		t.Fatal(err)
	}
	if state, on := w.device(t, stranded.DeviceID); state != "enabled" || on != again.ID {
		t.Fatalf("device of the stranded request: %s on %d, want enabled on %d", state, on, again.ID)
	}
	if tl := w.timeline(t, w.manager, stranded.ID); !strings.Contains(tl, "renewal_requested: consent #"+itoa(again.ID)+" asks Ana Owner, Owner") {
		t.Fatalf("stranded request's timeline:\n%s", tl)
	}
	// An awaiting request whose signer is on the roster is not "renewed".
	pending, _ := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-R8", ana.ID))
	if _, err := w.consents.RequestRenewal(as(w.manager), pending.ID, ana.ID); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("renewal of a pending request: %v", err)
	}
}

func TestConsentTypedNameCheck(t *testing.T) {
	w := newConsentWorld(t) // the roster says "Zoë Nuñez"
	c, _ := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-N1", w.signer.ID))
	token := w.lastLink(t, "zoe@example.com", "/sign/")
	in := w.signInput(t, token)

	// Another name: refused beside the field, with a confirmation to tick; the link still works.
	in.TypedName = "Mickey Mouse"
	_, err := w.consents.Sign(context.Background(), token, in)
	if f := doorledger.ErrorFields(err); doorledger.ErrorCode(err) != doorledger.EINVALID || !strings.Contains(f["typed_name"], "Zoë Nuñez") || f["name_confirm"] == "" {
		t.Fatalf("a differing name, unconfirmed: %v", err)
	}
	// Confirmed: signed, and the evidence says the names differ, for good.
	in.ConfirmNameDiffers = true
	signed, err := w.consents.Sign(context.Background(), token, in)
	if err != nil {
		t.Fatal(err)
	}
	if signed.Signature.TypedName != "Mickey Mouse" || !signed.Signature.NameDiffers {
		t.Fatalf("signed with a differing name: %+v", signed.Signature)
	}
	if tl := w.timeline(t, w.manager, c.ID); !strings.Contains(tl, "signed: typed name “Mickey Mouse”, which differs from the roster name “Zoë Nuñez” (the signer confirmed it); the roster address was verified by a one-time link") {
		t.Fatalf("timeline:\n%s", tl)
	}
	if _, err := w.db.Writer().Exec(`UPDATE consents SET typed_name_differs = 0 WHERE id = ?`, c.ID); err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Fatalf("name check changed after signing: %v", err)
	}
	if m := w.mail(t, "manager@example.com", "signed at"); len(m) != 1 || !strings.Contains(m[0].Body, "DIFFERS from the roster name") {
		t.Fatalf("managers' mail: %+v", m)
	}

	// The same name written plainly matches: no confirmation asked, none recorded.
	c2, _ := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-N2", w.signer.ID))
	token = w.lastLink(t, "zoe@example.com", "/sign/")
	in = w.signInput(t, token)
	in.TypedName = "zoe  NUNEZ"
	signed, err = w.consents.Sign(context.Background(), token, in)
	if err != nil || signed.Signature.NameDiffers {
		t.Fatalf("a matching name: %+v %v", signed, err)
	}
	var differs int
	if err := w.db.Reader().QueryRow(`SELECT typed_name_differs FROM consents WHERE id = ?`, c2.ID).Scan(&differs); err != nil || differs != 0 {
		t.Fatalf("stored name check: %d %v", differs, err)
	}

	// In person: a differing name does not cost the signer their code.
	r := request("SN-N3", w.signer.ID)
	r.InPerson = true
	c3, _ := w.consents.RequestConsent(as(w.inst), w.A.ID, r)
	sess, _ := w.consents.InPersonSession(as(w.inst), c3.ID, 0)
	code := w.mustCode(t, c3.ID)
	in = doorledger.SignInput{TypedName: "Donald Duck", AgreeESign: true, SignaturePNG: png, TermsSHA256: sess.TermsSHA256}
	if _, err := w.consents.SignInPerson(as(w.inst), c3.ID, 0, code, in); doorledger.ErrorFields(err)["name_confirm"] == "" {
		t.Fatalf("in person, a differing name: %v", err)
	}
	in.TypedName = "Zoë Nuñez"
	if _, err := w.consents.SignInPerson(as(w.inst), c3.ID, 0, code, in); err != nil {
		t.Fatalf("in person, corrected name with the same code: %v", err)
	}
}

// A consent signed before the comparison was recorded (NULL) is compared
// when read.
func TestConsentTypedNameCheckOfOlderConsents(t *testing.T) {
	w := newConsentWorld(t)
	c, _ := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-N4", w.signer.ID))
	token := w.lastLink(t, "zoe@example.com", "/sign/")
	in := w.signInput(t, token)
	in.TypedName, in.ConfirmNameDiffers = "Mickey Mouse", true
	if _, err := w.consents.Sign(context.Background(), token, in); err != nil {
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
	got, _ := w.consents.FindConsentByID(as(w.manager), c.ID)
	if !got.Signature.NameDiffers {
		t.Fatalf("older consent signed as Mickey Mouse: not flagged")
	}
}

func TestConsentInstallerSeesNoContactData(t *testing.T) {
	w := newConsentWorld(t)
	c, _ := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-P1", w.signer.ID))
	token := w.lastLink(t, "zoe@example.com", "/sign/")
	if _, err := w.consents.Sign(context.Background(), token, w.signInput(t, token)); err != nil {
		t.Fatal(err)
	}
	mgr, err := w.consents.FindConsentByID(as(w.manager), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := w.consents.FindConsentByID(as(w.inst), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	s := inst.Signature
	if inst.Signer.Email != doorledger.MaskedAddress || s.IP != "" || s.UserAgent != "" || s.SignaturePNG != nil ||
		strings.Contains(s.Terms, "zoe@example.com") || !strings.Contains(s.Terms, doorledger.MaskedAddress) {
		t.Fatalf("installer's copy: %+v %+v", inst.Signer, s)
	}
	// The signed bytes are untouched: the manager's copy hashes to the stored SHA-256.
	if s.TermsSHA256 != mgr.Signature.TermsSHA256 || doorledger.TermsSHA256(mgr.Signature.Terms) != mgr.Signature.TermsSHA256 ||
		!strings.Contains(mgr.Signature.Terms, "zoe@example.com") || mgr.Signature.IP != "203.0.113.7" {
		t.Fatalf("manager's copy: %+v", mgr.Signature)
	}
	if tl := w.timeline(t, w.inst, c.ID); strings.Contains(tl, "zoe@example.com") || !strings.Contains(tl, "signing link to "+doorledger.MaskedAddress) {
		t.Fatalf("installer's timeline:\n%s", tl)
	}
	if tl := w.timeline(t, w.manager, c.ID); !strings.Contains(tl, "signing link to zoe@example.com") {
		t.Fatalf("manager's timeline:\n%s", tl)
	}
	lists := [][]*doorledger.Consent{}
	l1, _ := w.consents.FindConsents(as(w.inst), doorledger.ConsentFilter{BuildingID: w.A.ID})
	l2, _ := w.consents.FindMySubmissions(as(w.inst))
	lists = append(lists, l1, l2)
	for _, l := range lists {
		if len(l) == 0 {
			t.Fatal("no submissions")
		}
		for _, c := range l {
			if c.Signer.Email != doorledger.MaskedAddress || (c.Signature != nil && c.Signature.IP != "") {
				t.Fatalf("installer's list shows contact data: %+v", c)
			}
		}
	}

	// In person: the terms on the installer's screen are masked; the hash
	// posted back is of the terms signed, and signing checks it.
	r := request("SN-P2", w.signer.ID)
	r.InPerson = true
	c2, _ := w.consents.RequestConsent(as(w.inst), w.A.ID, r)
	sess, err := w.consents.InPersonSession(as(w.inst), c2.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sess.Terms, "zoe@example.com") || sess.Consent.Signer.Email != doorledger.MaskedAddress || sess.TermsSHA256 == doorledger.TermsSHA256(sess.Terms) {
		t.Fatalf("in-person session shows the address: %q", sess.Terms)
	}
	code := w.mustCode(t, c2.ID)
	signed, err := w.consents.SignInPerson(as(w.inst), c2.ID, 0, code, doorledger.SignInput{TypedName: "Zoë Nuñez", AgreeESign: true, SignaturePNG: png, TermsSHA256: sess.TermsSHA256})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(signed.Signature.Terms, "zoe@example.com") || signed.Signature.TermsSHA256 != sess.TermsSHA256 {
		t.Fatalf("in person, the terms signed: %+v", signed.Signature)
	}
	if tl := w.timeline(t, w.inst, c2.ID); strings.Contains(tl, "zoe@example.com") {
		t.Fatalf("installer's in-person timeline:\n%s", tl)
	}
}

// A used signing link says what happened and can have the withdraw and
// dispute links mailed again to the registered address, never end the
// consent itself.
func TestConsentLinksAfterSigning(t *testing.T) {
	w := newConsentWorld(t)
	c, _ := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-L1", w.signer.ID))
	token := w.lastLink(t, "zoe@example.com", "/sign/")
	if _, err := w.consents.Sign(context.Background(), token, w.signInput(t, token)); err != nil {
		t.Fatal(err)
	}
	firstWithdraw := w.lastLink(t, "zoe@example.com", "/consent/withdraw/")
	// The signing link cannot withdraw or dispute by itself.
	if _, err := w.consents.EndByToken(context.Background(), token, ""); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("signing link used to end the consent: %v", err)
	}
	for i := 0; i < doorledger.EndLinkMailsPerDay; i++ {
		if err := w.consents.MailEndLinks(context.Background(), token); err != nil {
			t.Fatalf("links mailed again (%d): %v", i+1, err)
		}
	}
	if err := w.consents.MailEndLinks(context.Background(), token); doorledger.ErrorCode(err) != doorledger.ETOOMANY {
		t.Fatalf("links mailed again past the limit: %v", err)
	}
	if m := w.mail(t, "zoe@example.com", "Links to withdraw or report"); len(m) != doorledger.EndLinkMailsPerDay {
		t.Fatalf("mails with the links: %d", len(m))
	}
	if err := w.consents.MailEndLinks(context.Background(), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("forged token: %v", err)
	}
	// The new links work; the earlier ones did too until then.
	withdraw := w.lastLink(t, "zoe@example.com", "/consent/withdraw/")
	if withdraw == firstWithdraw {
		t.Fatal("the same withdraw link mailed again")
	}
	sess, purpose, err := w.consents.OpenAfterSigning(context.Background(), withdraw)
	if err != nil || purpose != "withdraw" || sess.Done || sess.Consent.Signature == nil || sess.Consent.Signature.IP != "" {
		t.Fatalf("new withdraw link: %+v %s %v", sess, purpose, err)
	}
	if _, err := w.consents.EndByToken(context.Background(), withdraw, "moved out"); err != nil {
		t.Fatal(err)
	}
	// Every link now says what happened.
	for _, tok := range []string{withdraw, firstWithdraw} {
		sess, _, err := w.consents.OpenAfterSigning(context.Background(), tok)
		if err != nil || !sess.Done || sess.Consent.Status != doorledger.ConsentWithdrawn || sess.Consent.StatusNote != "" {
			t.Fatalf("withdraw link after withdrawal: %+v %v", sess, err)
		}
	}
	sess, err = w.consents.OpenSigning(context.Background(), token)
	if err != nil || !sess.Done || sess.Consent.Status != doorledger.ConsentWithdrawn {
		t.Fatalf("signing link after withdrawal: %+v %v", sess, err)
	}
	if err := w.consents.MailEndLinks(context.Background(), token); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("links mailed for a withdrawn consent: %v", err)
	}
	if tl := w.timeline(t, w.manager, c.ID); strings.Count(tl, "links_mailed:") != doorledger.EndLinkMailsPerDay {
		t.Fatalf("timeline:\n%s", tl)
	}

	// A declined request's link says so.
	w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-L2", w.signer.ID))
	token = w.lastLink(t, "zoe@example.com", "/sign/")
	if err := w.consents.Decline(context.Background(), token, ""); err != nil {
		t.Fatal(err)
	}
	if sess, err := w.consents.OpenSigning(context.Background(), token); err != nil || !sess.Done || sess.Consent.Status != doorledger.ConsentDeclined {
		t.Fatalf("signing link after declining: %+v %v", sess, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
