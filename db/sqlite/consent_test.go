package sqlite_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

// consentWorld is a building with a roster, its manager, two installers and
// a second building, on a real database with a movable clock.
type consentWorld struct {
	db                   *sqlite.DB
	now                  *time.Time
	consents             *sqlite.ConsentService
	outbox               *sqlite.OutboxService
	A, B                 *doorledger.Building
	signer, signerB      *doorledger.Signer
	manager, inst, inst2 *doorledger.User
	instB                *doorledger.User
}

func newConsentWorld(t *testing.T) *consentWorld {
	t.Helper()
	d, now := MustOpenDB(t)
	// The database compares consent expiry with the real clock: start from it.
	*now = time.Now().UTC().Truncate(time.Second)
	w := &consentWorld{db: d, now: now, consents: sqlite.NewConsentService(d, "http://portal.test"), outbox: sqlite.NewOutboxService(d)}
	ctx := sys()
	buildings, users := sqlite.NewBuildingService(d), sqlite.NewUserService(d)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var err error
	w.A, err = buildings.CreateBuilding(ctx, doorledger.BuildingInput{Name: "Harbor View", Address: "1 Harbor St", Timezone: "America/New_York"})
	must(err)
	w.B, err = buildings.CreateBuilding(ctx, doorledger.BuildingInput{Name: "Elm Court", Address: "2 Elm St", Timezone: "Europe/Warsaw"})
	must(err)
	w.signer, err = buildings.AddSigner(ctx, w.A.ID, doorledger.SignerInput{Name: "Zoë Nuñez", Title: "Board president", Email: "zoe@example.com"})
	must(err)
	w.signerB, err = buildings.AddSigner(ctx, w.B.ID, doorledger.SignerInput{Name: "Łukasz Wróbel", Title: "Owner", Email: "lukasz@example.com"})
	must(err)
	user := func(email string, role doorledger.Role, b *doorledger.Building) *doorledger.User {
		u, err := users.CreateUser(ctx, doorledger.NewUser{Email: email, Name: email, Role: role, Company: "FastKey", Password: "correct horse battery"})
		must(err)
		must(buildings.GrantAccess(ctx, b.ID, u.ID))
		return u
	}
	w.manager = user("manager@example.com", doorledger.RoleManager, w.A)
	w.inst = user("inst@example.com", doorledger.RoleInstaller, w.A)
	w.inst2 = user("inst2@example.com", doorledger.RoleInstaller, w.A)
	w.instB = user("instb@example.com", doorledger.RoleInstaller, w.B)
	return w
}

func as(u *doorledger.User) context.Context {
	return doorledger.NewContextWithUser(context.Background(), u)
}

func request(serial string, signer int64) doorledger.ConsentRequest {
	return doorledger.ConsentRequest{SignerID: signer, Device: doorledger.DeviceDetails{
		Vendor: "Acme Access", Model: "KeyBox 2", Serial: serial, Location: "main lobby intercom panel", Opens: "lobby door, for couriers"}}
}

// lastLink returns the newest link with the given path prefix mailed to addr.
func (w *consentWorld) lastLink(t *testing.T, addr, prefix string) string {
	t.Helper()
	msgs, err := w.outbox.PendingMessages(context.Background(), 100, 1000)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(regexp.QuoteMeta("http://portal.test"+prefix) + `([A-Za-z0-9_-]+)`)
	for i := len(msgs) - 1; i >= 0; i-- {
		if m := re.FindStringSubmatch(msgs[i].Body); msgs[i].To == addr && m != nil {
			return m[1]
		}
	}
	t.Fatalf("no %s link mailed to %s", prefix, addr)
	return ""
}

var png = []byte("\x89PNG\r\n\x1a\n-a-validated-signature")

func (w *consentWorld) signInput(t *testing.T, token string) doorledger.SignInput {
	sess, err := w.consents.OpenSigning(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	return doorledger.SignInput{TypedName: "Zoë Nuñez", AgreeESign: true, SignaturePNG: png, IP: "203.0.113.7", UserAgent: "test", TermsSHA256: doorledger.TermsSHA256(sess.Terms)}
}

func (w *consentWorld) device(t *testing.T, id int64) (state string, consentID int64) {
	t.Helper()
	if err := w.db.Reader().QueryRow(`SELECT desired_state, COALESCE(consent_id, 0) FROM devices WHERE id = ?`, id).Scan(&state, &consentID); err != nil {
		t.Fatal(err)
	}
	return state, consentID
}

func TestConsentSignedByLink(t *testing.T) {
	w := newConsentWorld(t)
	var pushed []doorledger.DesiredState
	w.db.OnDesired = func(s []doorledger.DesiredState) { pushed = append(pushed, s...) }
	c, err := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-1", w.signer.ID))
	if err != nil {
		t.Fatal(err)
	}
	if state, _ := w.device(t, c.DeviceID); state != "disabled" || c.Status != doorledger.ConsentAwaiting {
		t.Fatalf("after request: device %s, consent %s", state, c.Status)
	}
	token := w.lastLink(t, "zoe@example.com", "/sign/")

	// Missing name, agreement and signature: each named, nothing written.
	_, err = w.consents.Sign(context.Background(), token, doorledger.SignInput{})
	if f := doorledger.ErrorFields(err); f["typed_name"] == "" || f["agree"] == "" || f["signature"] == "" {
		t.Fatalf("empty sign: %v", err)
	}
	in := w.signInput(t, token) // the link still works after a failed attempt
	signed, err := w.consents.Sign(context.Background(), token, in)
	if err != nil {
		t.Fatal(err)
	}
	sig := signed.Signature
	if signed.Status != doorledger.ConsentSigned || sig == nil || sig.Method != doorledger.VerifyLink || sig.IP != "203.0.113.7" ||
		sig.TermsSHA256 != doorledger.TermsSHA256(sig.Terms) || !strings.Contains(sig.Terms, "SN-1") || sig.Timezone != "America/New_York" {
		t.Fatalf("signed consent: %+v %+v", signed, sig)
	}
	if !signed.ExpiresAt.Equal(w.now.AddDate(0, 12, 0)) {
		t.Fatalf("expires %v, want 12 months after %v", signed.ExpiresAt, *w.now)
	}
	if state, _ := w.device(t, c.DeviceID); state != "enabled" {
		t.Fatalf("device after signing: %s", state)
	}
	if len(pushed) != 1 || pushed[0].State != doorledger.StateEnabled {
		t.Fatalf("pushed after signing: %+v", pushed)
	}
	// The link is single use: reopened, it says what happened (and when), with
	// none of the evidence; it cannot sign again.
	reopened, err := w.consents.OpenSigning(context.Background(), token)
	if err != nil || !reopened.Done || reopened.Terms != "" || reopened.Consent.Status != doorledger.ConsentSigned {
		t.Fatalf("reused link: %+v %v", reopened, err)
	}
	if s := reopened.Consent.Signature; s == nil || !s.SignedAt.Equal(sig.SignedAt) || s.TypedName != "" || s.IP != "" || s.UserAgent != "" ||
		s.SignaturePNG != nil || s.Terms != "" || reopened.Consent.Signer.Email != "" || reopened.Building.Signers != nil {
		t.Fatalf("a used signing link shows more than the signer saw: %+v %+v", reopened.Consent, s)
	}
	if _, err := w.consents.Sign(context.Background(), token, in); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("re-sign: %v", err)
	}
	// Timeline.
	events, err := w.consents.ConsentTimeline(as(w.manager), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, e.Kind)
	}
	if got, want := strings.Join(kinds, ","), "requested,mailed,opened,signed"; got != want {
		t.Fatalf("timeline %s, want %s", got, want)
	}
	// The signed evidence cannot be changed, even around the service.
	if _, err := w.db.Writer().Exec(`UPDATE consents SET typed_name = 'Someone Else' WHERE id = ?`, c.ID); err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Fatalf("evidence edit: %v", err)
	}
	if _, err := w.db.Writer().Exec(`DELETE FROM consents WHERE id = ?`, c.ID); err == nil {
		t.Fatal("a consent was deleted")
	}

	// Withdrawal by the link in the confirmation disables the device and alerts.
	withdraw := w.lastLink(t, "zoe@example.com", "/consent/withdraw/")
	pushed = nil
	ended, err := w.consents.EndByToken(context.Background(), withdraw, "changed my mind")
	if err != nil {
		t.Fatal(err)
	}
	if ended.Status != doorledger.ConsentWithdrawn {
		t.Fatalf("status %s", ended.Status)
	}
	if state, _ := w.device(t, c.DeviceID); state != "disabled" || len(pushed) != 1 || pushed[0].State != doorledger.StateDisabled {
		t.Fatalf("device after withdrawal: %s, pushed %+v", state, pushed)
	}
	msgs, _ := w.outbox.PendingMessages(context.Background(), 100, 1000)
	alerted := false
	for _, m := range msgs {
		alerted = alerted || (m.To == "manager@example.com" && strings.Contains(m.Subject, "WITHDRAWN"))
	}
	if !alerted {
		t.Fatal("managers not alerted of the withdrawal")
	}
	// The dispute link died with the consent.
	dispute := w.lastLink(t, "zoe@example.com", "/consent/dispute/")
	if _, err := w.consents.EndByToken(context.Background(), dispute, ""); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("dispute after withdrawal: %v", err)
	}
}

func TestConsentBadLinks(t *testing.T) {
	w := newConsentWorld(t)
	if _, err := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-2", w.signer.ID)); err != nil {
		t.Fatal(err)
	}
	token := w.lastLink(t, "zoe@example.com", "/sign/")
	for name, tok := range map[string]string{"forged": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "empty": "", "truncated": token[:20]} {
		if _, err := w.consents.OpenSigning(context.Background(), tok); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
			t.Errorf("%s link: %v", name, err)
		}
	}
	// A link lives as long as its request (issue 13): past SigningLinkTTL it
	// still works; once the request's period is over it does not.
	*w.now = w.now.Add(doorledger.SigningLinkTTL + time.Second)
	if _, err := w.consents.OpenSigning(context.Background(), token); err != nil {
		t.Fatalf("link of a request not yet expired: %v", err)
	}
	*w.now = w.now.Add(doorledger.DefaultExpiryDays*24*time.Hour - doorledger.SigningLinkTTL)
	if _, err := w.consents.OpenSigning(context.Background(), token); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("expired link: %v", err)
	}
}

func TestConsentDeclineAndDispute(t *testing.T) {
	w := newConsentWorld(t)
	c1, _ := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-3", w.signer.ID))
	if err := w.consents.Decline(context.Background(), w.lastLink(t, "zoe@example.com", "/sign/"), "we never agreed to this"); err != nil {
		t.Fatal(err)
	}
	got, _ := w.consents.FindConsentByID(as(w.manager), c1.ID)
	if got.Status != doorledger.ConsentDeclined || got.StatusNote != "we never agreed to this" {
		t.Fatalf("declined: %+v", got)
	}
	c2, _ := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-4", w.signer.ID))
	token := w.lastLink(t, "zoe@example.com", "/sign/")
	if _, err := w.consents.Sign(context.Background(), token, w.signInput(t, token)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.consents.EndByToken(context.Background(), w.lastLink(t, "zoe@example.com", "/consent/dispute/"), "I did not sign this"); err != nil {
		t.Fatal(err)
	}
	got, _ = w.consents.FindConsentByID(as(w.manager), c2.ID)
	if state, _ := w.device(t, c2.DeviceID); got.Status != doorledger.ConsentDisputed || state != "disabled" {
		t.Fatalf("disputed: %s, device %s", got.Status, state)
	}
}

func TestConsentInPersonCode(t *testing.T) {
	w := newConsentWorld(t)
	r := request("SN-5", w.signer.ID)
	r.InPerson = true
	c, err := w.consents.RequestConsent(as(w.inst), w.A.ID, r)
	if err != nil {
		t.Fatal(err)
	}
	ctx := as(w.inst)
	if err := w.consents.SendCode(ctx, c.ID, 0); err != nil {
		t.Fatal(err)
	}
	msgs, _ := w.outbox.PendingMessages(context.Background(), 100, 1000)
	code := regexp.MustCompile(`Your code is: (\d{6})`).FindStringSubmatch(msgs[len(msgs)-1].Body)
	if code == nil || msgs[len(msgs)-1].To != "zoe@example.com" {
		t.Fatalf("code mail: %+v", msgs[len(msgs)-1])
	}
	sess, err := w.consents.InPersonSession(ctx, c.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	in := doorledger.SignInput{TypedName: "Zoë Nuñez", AgreeESign: true, SignaturePNG: png, TermsSHA256: sess.TermsSHA256}
	wrong := "000000"
	if code[1] == wrong {
		wrong = "111111"
	}
	for i := 1; i <= doorledger.CodeMaxAttempts; i++ {
		_, err := w.consents.SignInPerson(ctx, c.ID, 0, wrong, in)
		if i < doorledger.CodeMaxAttempts && (doorledger.ErrorCode(err) != doorledger.EINVALID || !strings.Contains(doorledger.ErrorFields(err)["code"], "tries left")) {
			t.Fatalf("wrong code %d: %v", i, err)
		}
		if i == doorledger.CodeMaxAttempts && doorledger.ErrorCode(err) != doorledger.ETOOMANY {
			t.Fatalf("wrong code %d: %v, want ETOOMANY", i, err)
		}
	}
	// Even the right code is refused after five wrong tries.
	if _, err := w.consents.SignInPerson(ctx, c.ID, 0, code[1], in); doorledger.ErrorCode(err) != doorledger.ETOOMANY {
		t.Fatalf("right code after lockout: %v", err)
	}
	// A new code (rate-limited to 3 an hour) works; an expired one does not.
	if err := w.consents.SendCode(ctx, c.ID, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.consents.SendCode(ctx, c.ID, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.consents.SendCode(ctx, c.ID, 0); doorledger.ErrorCode(err) != doorledger.ETOOMANY {
		t.Fatalf("fourth code in an hour: %v", err)
	}
	msgs, _ = w.outbox.PendingMessages(context.Background(), 100, 1000)
	code = regexp.MustCompile(`Your code is: (\d{6})`).FindStringSubmatch(msgs[len(msgs)-1].Body)
	*w.now = w.now.Add(doorledger.CodeTTL + time.Second)
	if _, err := w.consents.SignInPerson(ctx, c.ID, 0, code[1], in); !strings.Contains(doorledger.ErrorMessage(err), "expired") {
		t.Fatalf("expired code: %v", err)
	}
	*w.now = w.now.Add(time.Hour)
	if err := w.consents.SendCode(ctx, c.ID, 0); err != nil {
		t.Fatal(err)
	}
	msgs, _ = w.outbox.PendingMessages(context.Background(), 100, 1000)
	code = regexp.MustCompile(`Your code is: (\d{6})`).FindStringSubmatch(msgs[len(msgs)-1].Body)
	signed, err := w.consents.SignInPerson(ctx, c.ID, 0, code[1], in)
	if err != nil {
		t.Fatal(err)
	}
	if signed.Signature.Method != doorledger.VerifyCode {
		t.Fatalf("method %s", signed.Signature.Method)
	}
	// Another installer cannot drive this consent.
	if err := w.consents.SendCode(as(w.inst2), c.ID, 0); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("other installer: %v", err)
	}
}

func TestConsentAccessAndInput(t *testing.T) {
	w := newConsentWorld(t)
	// An installer not invited to the building: not found.
	if _, err := w.consents.RequestConsent(as(w.instB), w.A.ID, request("SN-6", w.signer.ID)); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("uninvited installer: %v", err)
	}
	// A signer from another building's roster is refused beside the field.
	_, err := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-6", w.signerB.ID))
	if doorledger.ErrorFields(err)["signer_id"] == "" {
		t.Fatalf("foreign signer: %v", err)
	}
	c, err := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-6", w.signer.ID))
	if err != nil {
		t.Fatal(err)
	}
	// The same serial twice in one building is a conflict on the serial field.
	if _, err := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-6", w.signer.ID)); doorledger.ErrorFields(err)["serial"] == "" {
		t.Fatalf("duplicate serial: %v", err)
	}
	// Another installer cannot read it; the manager can; the other building's installer cannot.
	if _, err := w.consents.FindConsentByID(as(w.inst2), c.ID); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("other installer read: %v", err)
	}
	if _, err := w.consents.FindConsentByID(as(w.instB), c.ID); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("other building's installer read: %v", err)
	}
	if _, err := w.consents.FindConsentByID(as(w.manager), c.ID); err != nil {
		t.Fatal(err)
	}
	mine, err := w.consents.FindMySubmissions(as(w.inst2))
	if err != nil || len(mine) != 0 {
		t.Fatalf("other installer's submissions: %d %v", len(mine), err)
	}
	// Managers do not submit requests.
	if _, err := w.consents.RequestConsent(as(w.manager), w.A.ID, request("SN-7", w.signer.ID)); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Fatalf("manager request: %v", err)
	}
}

func TestConsentLapseAndRenewal(t *testing.T) {
	w := newConsentWorld(t)
	c, _ := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-8", w.signer.ID))
	token := w.lastLink(t, "zoe@example.com", "/sign/")
	if _, err := w.consents.Sign(context.Background(), token, w.signInput(t, token)); err != nil {
		t.Fatal(err)
	}
	// A renewal, signed before the lapse, moves the device onto the new consent.
	*w.now = w.now.AddDate(0, 11, 0)
	renewal, err := w.consents.RequestRenewal(as(w.manager), c.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	token = w.lastLink(t, "zoe@example.com", "/sign/")
	if _, err := w.consents.Sign(context.Background(), token, w.signInput(t, token)); err != nil {
		t.Fatal(err)
	}
	if state, consentID := w.device(t, c.DeviceID); state != "enabled" || consentID != renewal.ID {
		t.Fatalf("after renewal: %s on consent %d, want enabled on %d", state, consentID, renewal.ID)
	}
	// The first consent lapses without touching the device.
	*w.now = w.now.AddDate(0, 1, 1)
	n, err := w.consents.LapseDue(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("lapse: %d %v", n, err)
	}
	if state, _ := w.device(t, c.DeviceID); state != "enabled" {
		t.Fatalf("renewed device after the old consent lapsed: %s", state)
	}
	// A year later the renewal lapses too, and the device is disabled.
	*w.now = w.now.AddDate(1, 0, 0)
	if n, err := w.consents.LapseDue(context.Background()); err != nil || n != 1 {
		t.Fatalf("second lapse: %d %v", n, err)
	}
	if state, _ := w.device(t, c.DeviceID); state != "disabled" {
		t.Fatalf("device after lapse: %s", state)
	}
}
