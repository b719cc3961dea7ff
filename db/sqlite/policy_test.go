package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/sqlite"
)

// policyWorld is the suite's policy world with the database under it.
type policyWorld struct {
	*dbtest.PolicyWorld
	db *sqlite.DB
}

func newPolicyWorld(t *testing.T) *policyWorld {
	t.Helper()
	w := newConsentWorld(t)
	return &policyWorld{PolicyWorld: dbtest.NewPolicyWorld(t, w.ConsentWorld), db: w.db}
}

// A policy the active roster cannot satisfy is refused beside its field:
// too many people, a role nobody holds, two roster entries reaching one
// mailbox counted once. A valid one is journaled.
func TestPolicyRefusedWhenRosterCannotSatisfy(t *testing.T) {
	w := newPolicyWorld(t)
	for _, c := range []struct {
		in    doorledger.PolicyInput
		field string
	}{
		{doorledger.PolicyInput{Required: 4, ExpiryDays: 14}, "required"},
		{doorledger.PolicyInput{Required: 2, Roles: []string{"President", "Vice president"}, ExpiryDays: 14}, "roles"},
		{doorledger.PolicyInput{Required: 1, Roles: []string{"President", "Treasurer"}, ExpiryDays: 14}, "required"},
		{doorledger.PolicyInput{Required: 2, ReminderDays: "2, x", ExpiryDays: 14}, "reminder_days"},
		{doorledger.PolicyInput{Required: 2, ReminderDays: "2, 20", ExpiryDays: 14}, "reminder_days"},
		{doorledger.PolicyInput{Required: 2, ExpiryDays: 400}, "expiry_days"},
	} {
		_, err := w.Policies.SetConsentPolicy(as(w.Manager), w.A.ID, c.in)
		if doorledger.ErrorCode(err) != doorledger.EINVALID || doorledger.ErrorFields(err)[c.field] == "" {
			t.Errorf("%+v: %v (fields %v), want EINVALID on %s", c.in, err, doorledger.ErrorFields(err), c.field)
		}
	}
	// "paula+board@" is Paula's mailbox: 4 roster entries, 3 people.
	if _, err := w.Buildings.AddSigner(as(w.Manager), w.A.ID, doorledger.SignerInput{Name: "Paula Prez", Title: "Board member", Email: "Paula+board@example.com"}); err != nil {
		t.Fatal(err)
	}
	_, err := w.Policies.SetConsentPolicy(as(w.Manager), w.A.ID, doorledger.PolicyInput{Required: 4, ExpiryDays: 14})
	if msg := doorledger.ErrorFields(err)["required"]; !strings.Contains(msg, "3 different people") {
		t.Fatalf("4 of 3 people: %v %q", err, msg)
	}
	// Role matching is exact words, case and spacing aside.
	p := w.SetPolicy(t, doorledger.PolicyInput{Required: 2, Roles: []string{"  president ", "TREASURER"}, Ordered: true, ReminderDays: "5 2"})
	if p.Required != 2 || len(p.Roles) != 2 || !p.Ordered || len(p.ReminderDays) != 2 || p.ReminderDays[0] != 2 {
		t.Fatalf("policy stored: %+v", p)
	}
	if doorledger.RoleMatches("Board president", "President") || !doorledger.RoleMatches("president", "President") {
		t.Fatal("role matching is not exact")
	}
	// Board members read it; they cannot set it.
	if _, err := w.Policies.SetConsentPolicy(as(w.Inst), w.A.ID, doorledger.PolicyInput{Required: 1}); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN && doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("installer sets the policy: %v", err)
	}
	if n := len(w.Journal(t, 0, "consent_policy.set")); n != 1 {
		t.Fatalf("journal entries for the policy: %d", n)
	}
	// Policies are append-only.
	if _, err := w.db.Writer().Exec(`UPDATE consent_policies SET required = 1`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("policy edited in place: %v", err)
	}
}

// 2 of 3: the device stays disabled after one signature (and the database
// refuses enabling it, written directly), is enabled after the second; the
// policy in force at the request decides, whatever it is changed to later.
func TestPolicyQuorumAndTrigger(t *testing.T) {
	w := newPolicyWorld(t)
	w.SetPolicy(t, doorledger.PolicyInput{Required: 2, ReminderDays: "2, 5"})
	c := w.Ask(t, "SN-Q1", w.Paula, w.Tom, w.Sam)
	if len(c.Signers) != 3 || c.Policy.Required != 2 || !strings.HasPrefix(c.Terms, doorledger.TermsVersion2+"\n") {
		t.Fatalf("request: %+v", c)
	}
	for _, s := range []*doorledger.Signer{w.Paula, w.Tom, w.Sam} {
		if !strings.Contains(c.Terms, s.Name+", "+s.Title+", at "+s.Email) {
			t.Fatalf("the terms do not name %s:\n%s", s.Name, c.Terms)
		}
	}
	// The building's policy changes to 1: the request keeps its 2.
	w.SetPolicy(t, doorledger.PolicyInput{Required: 1})
	after, err := w.SignAs(t, w.Paula)
	if err != nil {
		t.Fatal(err)
	}
	if after.Status != doorledger.ConsentAwaiting || after.Need.More != 1 {
		t.Fatalf("after one signature: %s, need %+v", after.Status, after.Need)
	}
	if state, _ := w.Device(t, c.DeviceID); state != "disabled" {
		t.Fatalf("device %s after one of two signatures", state)
	}
	// Around the services: marking it signed, or enabling its device, is refused.
	const evidence = `typed_name = 'Paula Prez', signature_png = x'00', signed_at = '2026-01-01T00:00:00Z', method = 'link', expires_at = '2999-01-01T00:00:00Z'`
	if _, err := w.db.Writer().Exec(`UPDATE consents SET status = 'signed', signer_id = ?, `+evidence+` WHERE id = ?`, w.Paula.ID, c.ID); err == nil ||
		!strings.Contains(err.Error(), "as many signatures as its policy requires") {
		t.Fatalf("consent marked signed with one of two signatures: %v", err)
	}
	if _, err := w.db.Writer().Exec(`UPDATE devices SET desired_state = 'enabled' WHERE id = ?`, c.DeviceID); err == nil || !strings.Contains(err.Error(), "signed as its policy requires") {
		t.Fatalf("device enabled with one of two signatures: %v", err)
	}
	// A signature of other terms does not count, and is refused anyway.
	if _, err := w.db.Writer().Exec(`INSERT INTO consent_signatures (consent_id, signer_id, address, address_key, terms_sha256, typed_name, signature_png, signed_at, method)
		VALUES (?, ?, 'tom@example.com', 'tom@example.com', 'not-the-terms', 'Tom Trent', x'00', '2026-01-01T00:00:00Z', 'link')`, c.ID, w.Tom.ID); err == nil ||
		!strings.Contains(err.Error(), "own terms") {
		t.Fatalf("signature of other terms: %v", err)
	}
	signed, err := w.SignAs(t, w.Tom)
	if err != nil {
		t.Fatal(err)
	}
	if signed.Status != doorledger.ConsentSigned || len(signed.Signatures()) != 2 || signed.Signature.SignerID != w.Tom.ID {
		t.Fatalf("after two signatures: %s, %d signatures", signed.Status, len(signed.Signatures()))
	}
	if state, _ := w.Device(t, c.DeviceID); state != "enabled" {
		t.Fatalf("device %s after two of two signatures", state)
	}
	for _, sig := range signed.Signatures() {
		if sig.TermsSHA256 != doorledger.TermsSHA256(signed.Terms) {
			t.Fatalf("a signature of %s is not of the stored terms", sig.Signer.Name)
		}
	}
	// Sam is not needed any more: their link says the consent is signed.
	sess, err := w.Consents.OpenSigning(context.Background(), w.LastLink(t, w.Sam.Email, "/sign/"))
	if err != nil || !sess.Done {
		t.Fatalf("the third signer's link after the quorum: %+v %v", sess, err)
	}
	// Signatures are immutable.
	if _, err := w.db.Writer().Exec(`UPDATE consent_signatures SET typed_name = 'x'`); err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Fatalf("signature edited: %v", err)
	}
	// Any one signer's withdrawal ends it and disables the device.
	ended, err := w.Consents.EndByToken(context.Background(), w.LastLink(t, w.Paula.Email, "/consent/withdraw/"), "changed my mind")
	if err != nil || ended.Status != doorledger.ConsentWithdrawn {
		t.Fatalf("withdrawal by the first signer: %v %v", ended, err)
	}
	if state, _ := w.Device(t, c.DeviceID); state != "disabled" {
		t.Fatalf("device %s after a withdrawal", state)
	}
}

// The same person cannot sign twice: not the same roster entry (its link is
// used; the database refuses a second row), not a second roster entry with
// the same address (refused when the request names them).
func TestPolicySamePersonSignsOnce(t *testing.T) {
	w := newPolicyWorld(t)
	alias, err := w.Buildings.AddSigner(as(w.Manager), w.A.ID, doorledger.SignerInput{Name: "Paula Prez", Title: "Board member", Email: "paula+board@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	w.SetPolicy(t, doorledger.PolicyInput{Required: 2})
	r := request("SN-S1", 0)
	r.SignerIDs = []int64{w.Paula.ID, alias.ID}
	_, err = w.Consents.RequestConsent(as(w.Inst), w.A.ID, r)
	if msg := doorledger.ErrorFields(err)["signer_id"]; !strings.Contains(msg, "one person cannot sign twice") {
		t.Fatalf("request naming one person twice: %v %q", err, msg)
	}
	c := w.Ask(t, "SN-S2", w.Paula, w.Tom)
	token := w.LastLink(t, w.Paula.Email, "/sign/")
	in := w.SignInput(t, token)
	in.TypedName = w.Paula.Name
	if _, err := w.Consents.Sign(context.Background(), token, in); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Consents.Sign(context.Background(), token, in); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("second signature with the same link: %v", err)
	}
	// Around the services: a second row of the same entry, or of the same
	// mailbox under another entry, is refused.
	for name, q := range map[string]string{
		"same entry":   `INSERT INTO consent_signatures (consent_id, signer_id, address, address_key, terms_sha256, typed_name, signature_png, signed_at, method) SELECT id, ?, 'paula@example.com', 'paula@example.com', terms_sha256, 'P', x'00', '2026-01-01T00:00:00Z', 'link' FROM consents WHERE id = ?`,
		"same address": `INSERT INTO consent_signatures (consent_id, signer_id, address, address_key, terms_sha256, typed_name, signature_png, signed_at, method) SELECT id, ?, 'tom@example.com', 'paula@example.com', terms_sha256, 'P', x'00', '2026-01-01T00:00:00Z', 'link' FROM consents WHERE id = ?`,
	} {
		signer := w.Paula.ID
		if name == "same address" {
			signer = w.Tom.ID
		}
		if _, err := w.db.Writer().Exec(q, signer, c.ID); err == nil || !strings.Contains(err.Error(), "cannot sign a request twice") && !strings.Contains(err.Error(), "UNIQUE") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if state, _ := w.Device(t, c.DeviceID); state != "disabled" {
		t.Fatalf("device %s with one person's signature", state)
	}
}

// Ordered signing: the Treasurer's link waits for the President (and the
// database refuses their signature first); once she signs, he is mailed
// that it is his turn and can sign.
func TestPolicyOrderedSigning(t *testing.T) {
	w := newPolicyWorld(t)
	w.SetPolicy(t, doorledger.PolicyInput{Required: 2, Roles: []string{"President", "Treasurer"}, Ordered: true})
	c := w.Ask(t, "SN-O1", w.Paula, w.Tom)
	token := w.LastLink(t, w.Tom.Email, "/sign/")
	sess, err := w.Consents.OpenSigning(context.Background(), token)
	if err != nil || len(sess.WaitingFor) != 1 || sess.WaitingFor[0].ID != w.Paula.ID {
		t.Fatalf("second signer's page: %+v %v", sess, err)
	}
	in := w.SignInput(t, token)
	in.TypedName = w.Tom.Name
	if _, err := w.Consents.Sign(context.Background(), token, in); doorledger.ErrorCode(err) != doorledger.ECONFLICT ||
		!strings.Contains(doorledger.ErrorMessage(err), "waiting for the President (Paula Prez)") {
		t.Fatalf("signing before one's turn: %v", err)
	}
	if _, err := w.db.Writer().Exec(`INSERT INTO consent_signatures (consent_id, signer_id, address, address_key, terms_sha256, typed_name, signature_png, signed_at, method)
		SELECT id, ?, 'tom@example.com', 'tom@example.com', terms_sha256, 'T', x'00', '2026-01-01T00:00:00Z', 'link' FROM consents WHERE id = ?`, w.Tom.ID, c.ID); err == nil ||
		!strings.Contains(err.Error(), "earlier signer") {
		t.Fatalf("out-of-order signature written directly: %v", err)
	}
	if _, err := w.SignAs(t, w.Paula); err != nil {
		t.Fatal(err)
	}
	turn := w.LastLink(t, w.Tom.Email, "/sign/")
	if turn == token {
		t.Fatal("no turn mail with a fresh link")
	}
	// The first link works too (until the request expires).
	signed, err := w.Consents.Sign(context.Background(), token, in)
	if err != nil || signed.Status != doorledger.ConsentSigned {
		t.Fatalf("second signer in turn: %v %v", signed, err)
	}
}

// Reminders go on the days of the schedule recorded with the request, with
// a fresh link, only to those who have not signed and are on the roster;
// none after expiry. Expiry tells the installer and the managers, and the
// request is sent again as a new one.
func TestPolicyRemindersAndExpiry(t *testing.T) {
	w := newPolicyWorld(t)
	w.SetPolicy(t, doorledger.PolicyInput{Required: 2, ReminderDays: "2, 5", ExpiryDays: 14})
	c := w.Ask(t, "SN-E1", w.Paula, w.Tom, w.Sam)
	first := w.LastLink(t, w.Tom.Email, "/sign/")
	if _, err := w.SignAs(t, w.Paula); err != nil {
		t.Fatal(err)
	}
	if err := w.Buildings.RemoveSigner(as(w.Manager), w.A.ID, w.Sam.ID); err != nil {
		t.Fatal(err)
	}
	remind := func(days float64) (int, int) {
		t.Helper()
		*w.Now = c.RequestedAt.Add(time.Duration(days * float64(24*time.Hour)))
		e, r, err := w.Consents.RemindAndExpire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return e, r
	}
	reminders := func(to string) int {
		n := 0
		for _, m := range w.MailsTo(t, to) {
			if m.Kind == "reminder" {
				n++
			}
		}
		return n
	}
	if _, r := remind(1.9); r != 0 {
		t.Fatalf("reminders before day 2: %d", r)
	}
	if _, r := remind(2.1); r != 1 || reminders(w.Tom.Email) != 1 {
		t.Fatalf("day 2: %d reminders, %d to Tom", r, reminders(w.Tom.Email))
	}
	if _, r := remind(3); r != 0 {
		t.Fatalf("day 3: %d reminders", r)
	}
	if fresh := w.LastLink(t, w.Tom.Email, "/sign/"); fresh == first {
		t.Fatal("the reminder carries no fresh link")
	}
	if _, r := remind(5.5); r != 1 || reminders(w.Tom.Email) != 2 {
		t.Fatalf("day 5: %d", r)
	}
	if reminders(w.Paula.Email)+reminders(w.Sam.Email) != 0 {
		t.Fatal("a reminder to a signer who signed, or was removed")
	}
	// The first link still works on day 13.
	*w.Now = c.RequestedAt.Add(13 * 24 * time.Hour)
	if _, err := w.Consents.OpenSigning(context.Background(), first); err != nil {
		t.Fatalf("first link on day 13: %v", err)
	}
	if e, r := remind(14.01); e != 1 || r != 0 {
		t.Fatalf("day 14: %d expired, %d reminders", e, r)
	}
	if e, r := remind(20); e != 0 || r != 0 || reminders(w.Tom.Email) != 2 {
		t.Fatalf("after expiry: %d expired, %d reminders", e, r)
	}
	if sess, err := w.Consents.OpenSigning(context.Background(), first); err != nil || !sess.Done || sess.Consent.Status != doorledger.ConsentExpired {
		t.Fatalf("an expired request's link: %+v %v, want the page saying it expired", sess, err)
	}
	got, _ := w.Consents.FindConsentByID(as(w.Manager), c.ID)
	if got.Status != doorledger.ConsentExpired {
		t.Fatalf("status after expiry: %s", got.Status)
	}
	told := map[string]bool{}
	msgs, _ := w.Outbox.PendingMessages(context.Background(), 100, 1000)
	for _, m := range msgs {
		if strings.Contains(m.Subject, "expired unsigned") {
			told[m.To] = true
			if m.To == "inst@example.com" && strings.Contains(m.Body, "@example.com") && !strings.Contains(m.Body, "inst@") {
				t.Errorf("the installer's expiry mail carries a signer's address:\n%s", m.Body)
			}
		}
	}
	if !told["inst@example.com"] || !told["manager@example.com"] {
		t.Fatalf("expiry told to %v", told)
	}
	// The database refuses signing an expired request.
	if _, err := w.db.Writer().Exec(`INSERT INTO consent_signatures (consent_id, signer_id, address, address_key, terms_sha256, typed_name, signature_png, signed_at, method)
		SELECT id, ?, 'tom@example.com', 'tom@example.com', terms_sha256, 'T', x'00', '2026-01-01T00:00:00Z', 'link' FROM consents WHERE id = ?`, w.Tom.ID, c.ID); err == nil {
		t.Fatal("signature of an expired request written directly")
	}
	again, err := w.Consents.ResendRequest(as(w.Inst), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if again.ResendOf != c.ID || again.DeviceID != c.DeviceID || len(again.Signers) != 2 {
		t.Fatalf("sent again: %+v", again)
	}
	if _, err := w.Consents.ResendRequest(as(w.Inst), c.ID); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("sent again twice: %v", err)
	}
}

// Consents signed before migration 030 keep their evidence, byte for byte,
// and get it copied to consent_signatures; their terms' hash still
// recomputes; their device stays enabled.
func TestPolicyMigrationKeepsSignedConsents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	names, sqls, err := sqlite.MigrationsBefore("030")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := raw.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q[:min(len(q), 60)], err)
		}
	}
	exec(`CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)`)
	for i, q := range sqls {
		exec(q)
		exec(`INSERT INTO migrations (name, applied_at) VALUES (?, '2026-01-01T00:00:00Z')`, names[i])
	}
	now := time.Now().UTC()
	at, until := now.Format(time.RFC3339Nano), now.AddDate(1, 0, 0).Format(time.RFC3339Nano)
	terms := "doorledger-consent-terms/1\n\nCONSENT ... Zoë Nuñez-Łukasz\n"
	png := []byte("\x89PNG\r\n\x1a\nold-signature\x00\xff")
	exec(`INSERT INTO buildings (id, name, address, timezone, created_at, updated_at) VALUES (1, 'Old Court', '1 Old St', 'UTC', ?, ?)`, at, at)
	exec(`INSERT INTO users (id, email, name, role, password_hash, created_at, updated_at) VALUES (1, 'i@example.com', 'I', 'installer', 'x', ?, ?)`, at, at)
	exec(`INSERT INTO signers (id, building_id, name, title, email, created_at) VALUES (1, 1, 'Zoë Nuñez-Łukasz', 'Owner', 'zoe@example.com', ?)`, at)
	exec(`INSERT INTO consents (id, building_id, installer_id, signer_id, vendor, model, serial, location, opens, mode, requested_at, status, status_at,
		terms, terms_sha256, typed_name, signature_png, signed_at, signed_tz, signed_ip, signed_ua, method, expires_at, typed_name_differs)
		VALUES (1, 1, 1, 1, 'V', 'M', 'S', 'L', 'O', 'link', ?, 'signed', ?, ?, ?, 'Zoe Nunez', ?, ?, 'UTC', '192.0.2.9', 'old browser', 'link', ?, 0)`,
		at, at, terms, doorledger.TermsSHA256(terms), png, at, until)
	exec(`INSERT INTO devices (building_id, vendor, model, serial, location, consent_id, origin, desired_state, created_at) VALUES (1, 'V', 'M', 'S', 'L', 1, 'consent_request', 'enabled', ?)`, at)
	raw.Close()

	d := sqlite.NewDB(path)
	if err := d.Open(); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	defer d.Close()
	var gotTerms, gotHash, sigHash, typed string
	var gotPNG []byte
	if err := d.Reader().QueryRow(`SELECT c.terms, c.terms_sha256, g.terms_sha256, g.typed_name, g.signature_png FROM consents c
		JOIN consent_signatures g ON g.consent_id = c.id WHERE c.id = 1`).Scan(&gotTerms, &gotHash, &sigHash, &typed, &gotPNG); err != nil {
		t.Fatal(err)
	}
	if gotTerms != terms || gotHash != doorledger.TermsSHA256(terms) || sigHash != gotHash || typed != "Zoe Nunez" || string(gotPNG) != string(png) {
		t.Fatalf("evidence after the migration: %q %s %s %q %x", gotTerms, gotHash, sigHash, typed, gotPNG)
	}
	c, err := sqlite.NewConsentService(d, "").FindConsentByID(sys(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Signatures()) != 1 || c.Signature == nil || doorledger.TermsSHA256(c.Signature.Terms) != c.Signature.TermsSHA256 || c.Policy.Required != 1 {
		t.Fatalf("old consent read: %+v", c)
	}
	// Its device may still be written as enabled (one signature, no policy: one required).
	if _, err := d.Writer().Exec(`UPDATE devices SET desired_version = desired_version + 1, desired_state = 'enabled' WHERE id = 1`); err != nil {
		t.Fatalf("old consent's device after the migration: %v", err)
	}
}
