package dbtest

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

var consentTests = []test{
	{"ConsentBadLinks", testConsentBadLinks},
	{"ConsentDeclineAndDispute", testConsentDeclineAndDispute},
	{"ConsentInPersonCode", testConsentInPersonCode},
	{"ConsentAccessAndInput", testConsentAccessAndInput},
	{"ConsentLapseAndRenewal", testConsentLapseAndRenewal},
	{"ConsentSignRefusesChangedTerms", testConsentSignRefusesChangedTerms},
	{"ConsentSignedBySignerSinceRemoved", testConsentSignedBySignerSinceRemoved},
	{"ConsentInstallerSeesNoContactData", testConsentInstallerSeesNoContactData},
	{"ConsentLinksAfterSigning", testConsentLinksAfterSigning},
}

func testConsentBadLinks(t *testing.T, newServices NewServices) {
	w := NewConsentWorld(t, newServices(t))
	if _, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-2", w.Signer.ID)); err != nil {
		t.Fatal(err)
	}
	token := w.LastLink(t, "zoe@example.com", "/sign/")
	for name, tok := range map[string]string{"forged": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "empty": "", "truncated": token[:20]} {
		if _, err := w.Consents.OpenSigning(context.Background(), tok); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
			t.Errorf("%s link: %v", name, err)
		}
	}
	// A link lives as long as its request: past SigningLinkTTL it
	// still works; once the request's period is over it does not.
	*w.Now = w.Now.Add(doorledger.SigningLinkTTL + time.Second)
	if _, err := w.Consents.OpenSigning(context.Background(), token); err != nil {
		t.Fatalf("link of a request not yet expired: %v", err)
	}
	*w.Now = w.Now.Add(doorledger.DefaultExpiryDays*24*time.Hour - doorledger.SigningLinkTTL)
	if _, err := w.Consents.OpenSigning(context.Background(), token); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("expired link: %v", err)
	}
}

func testConsentDeclineAndDispute(t *testing.T, newServices NewServices) {
	w := NewConsentWorld(t, newServices(t))
	c1, _ := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-3", w.Signer.ID))
	if err := w.Consents.Decline(context.Background(), w.LastLink(t, "zoe@example.com", "/sign/"), "we never agreed to this"); err != nil {
		t.Fatal(err)
	}
	got, _ := w.Consents.FindConsentByID(as(w.Manager), c1.ID)
	if got.Status != doorledger.ConsentDeclined || got.StatusNote != "we never agreed to this" {
		t.Fatalf("declined: %+v", got)
	}
	c2, _ := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-4", w.Signer.ID))
	token := w.LastLink(t, "zoe@example.com", "/sign/")
	if _, err := w.Consents.Sign(context.Background(), token, w.SignInput(t, token)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Consents.EndByToken(context.Background(), w.LastLink(t, "zoe@example.com", "/consent/dispute/"), "I did not sign this"); err != nil {
		t.Fatal(err)
	}
	got, _ = w.Consents.FindConsentByID(as(w.Manager), c2.ID)
	if state, _ := w.Device(t, c2.DeviceID); got.Status != doorledger.ConsentDisputed || state != "disabled" {
		t.Fatalf("disputed: %s, device %s", got.Status, state)
	}
}

func testConsentInPersonCode(t *testing.T, newServices NewServices) {
	w := NewConsentWorld(t, newServices(t))
	r := request("SN-5", w.Signer.ID)
	r.InPerson = true
	c, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, r)
	if err != nil {
		t.Fatal(err)
	}
	ctx := as(w.Inst)
	if err := w.Consents.SendCode(ctx, c.ID, 0); err != nil {
		t.Fatal(err)
	}
	msgs, _ := w.Outbox.PendingMessages(context.Background(), 100, 1000)
	code := regexp.MustCompile(`Your code is: (\d{6})`).FindStringSubmatch(msgs[len(msgs)-1].Body)
	if code == nil || msgs[len(msgs)-1].To != "zoe@example.com" {
		t.Fatalf("code mail: %+v", msgs[len(msgs)-1])
	}
	sess, err := w.Consents.InPersonSession(ctx, c.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	in := doorledger.SignInput{TypedName: "Zoë Nuñez", AgreeESign: true, SignaturePNG: SignaturePNG, TermsSHA256: sess.TermsSHA256}
	wrong := "000000"
	if code[1] == wrong {
		wrong = "111111"
	}
	for i := 1; i <= doorledger.CodeMaxAttempts; i++ {
		_, err := w.Consents.SignInPerson(ctx, c.ID, 0, wrong, in)
		if i < doorledger.CodeMaxAttempts && (doorledger.ErrorCode(err) != doorledger.EINVALID || !strings.Contains(doorledger.ErrorFields(err)["code"], "tries left")) {
			t.Fatalf("wrong code %d: %v", i, err)
		}
		if i == doorledger.CodeMaxAttempts && doorledger.ErrorCode(err) != doorledger.ETOOMANY {
			t.Fatalf("wrong code %d: %v, want ETOOMANY", i, err)
		}
	}
	// Even the right code is refused after five wrong tries.
	if _, err := w.Consents.SignInPerson(ctx, c.ID, 0, code[1], in); doorledger.ErrorCode(err) != doorledger.ETOOMANY {
		t.Fatalf("right code after lockout: %v", err)
	}
	// A new code (rate-limited to 3 an hour) works; an expired one does not.
	if err := w.Consents.SendCode(ctx, c.ID, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Consents.SendCode(ctx, c.ID, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Consents.SendCode(ctx, c.ID, 0); doorledger.ErrorCode(err) != doorledger.ETOOMANY {
		t.Fatalf("fourth code in an hour: %v", err)
	}
	msgs, _ = w.Outbox.PendingMessages(context.Background(), 100, 1000)
	code = regexp.MustCompile(`Your code is: (\d{6})`).FindStringSubmatch(msgs[len(msgs)-1].Body)
	*w.Now = w.Now.Add(doorledger.CodeTTL + time.Second)
	if _, err := w.Consents.SignInPerson(ctx, c.ID, 0, code[1], in); !strings.Contains(doorledger.ErrorMessage(err), "expired") {
		t.Fatalf("expired code: %v", err)
	}
	*w.Now = w.Now.Add(time.Hour)
	if err := w.Consents.SendCode(ctx, c.ID, 0); err != nil {
		t.Fatal(err)
	}
	msgs, _ = w.Outbox.PendingMessages(context.Background(), 100, 1000)
	code = regexp.MustCompile(`Your code is: (\d{6})`).FindStringSubmatch(msgs[len(msgs)-1].Body)
	signed, err := w.Consents.SignInPerson(ctx, c.ID, 0, code[1], in)
	if err != nil {
		t.Fatal(err)
	}
	if signed.Signature.Method != doorledger.VerifyCode {
		t.Fatalf("method %s", signed.Signature.Method)
	}
	// Another installer cannot drive this consent.
	if err := w.Consents.SendCode(as(w.Inst2), c.ID, 0); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("other installer: %v", err)
	}
}

func testConsentAccessAndInput(t *testing.T, newServices NewServices) {
	w := NewConsentWorld(t, newServices(t))
	// An installer not invited to the building: not found.
	if _, err := w.Consents.RequestConsent(as(w.InstB), w.A.ID, request("SN-6", w.Signer.ID)); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("uninvited installer: %v", err)
	}
	// A signer from another building's roster is refused beside the field.
	_, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-6", w.SignerB.ID))
	if doorledger.ErrorFields(err)["signer_id"] == "" {
		t.Fatalf("foreign signer: %v", err)
	}
	c, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-6", w.Signer.ID))
	if err != nil {
		t.Fatal(err)
	}
	// The same serial twice in one building is a conflict on the serial field.
	if _, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-6", w.Signer.ID)); doorledger.ErrorFields(err)["serial"] == "" {
		t.Fatalf("duplicate serial: %v", err)
	}
	// Another installer cannot read it; the manager can; the other building's installer cannot.
	if _, err := w.Consents.FindConsentByID(as(w.Inst2), c.ID); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("other installer read: %v", err)
	}
	if _, err := w.Consents.FindConsentByID(as(w.InstB), c.ID); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("other building's installer read: %v", err)
	}
	if _, err := w.Consents.FindConsentByID(as(w.Manager), c.ID); err != nil {
		t.Fatal(err)
	}
	mine, err := w.Consents.FindMySubmissions(as(w.Inst2))
	if err != nil || len(mine) != 0 {
		t.Fatalf("other installer's submissions: %d %v", len(mine), err)
	}
	// Managers do not submit requests.
	if _, err := w.Consents.RequestConsent(as(w.Manager), w.A.ID, request("SN-7", w.Signer.ID)); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Fatalf("manager request: %v", err)
	}
}

func testConsentLapseAndRenewal(t *testing.T, newServices NewServices) {
	w := NewConsentWorld(t, newServices(t))
	c, _ := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-8", w.Signer.ID))
	token := w.LastLink(t, "zoe@example.com", "/sign/")
	if _, err := w.Consents.Sign(context.Background(), token, w.SignInput(t, token)); err != nil {
		t.Fatal(err)
	}
	// A renewal, signed before the lapse, moves the device onto the new consent.
	*w.Now = w.Now.AddDate(0, 11, 0)
	renewal, err := w.Consents.RequestRenewal(as(w.Manager), c.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	token = w.LastLink(t, "zoe@example.com", "/sign/")
	if _, err := w.Consents.Sign(context.Background(), token, w.SignInput(t, token)); err != nil {
		t.Fatal(err)
	}
	if state, consentID := w.Device(t, c.DeviceID); state != "enabled" || consentID != renewal.ID {
		t.Fatalf("after renewal: %s on consent %d, want enabled on %d", state, consentID, renewal.ID)
	}
	// The first consent lapses without touching the device.
	*w.Now = w.Now.AddDate(0, 1, 1)
	n, err := w.Consents.LapseDue(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("lapse: %d %v", n, err)
	}
	if state, _ := w.Device(t, c.DeviceID); state != "enabled" {
		t.Fatalf("renewed device after the old consent lapsed: %s", state)
	}
	// A year later the renewal lapses too, and the device is disabled.
	*w.Now = w.Now.AddDate(1, 0, 0)
	if n, err := w.Consents.LapseDue(context.Background()); err != nil || n != 1 {
		t.Fatalf("second lapse: %d %v", n, err)
	}
	if state, _ := w.Device(t, c.DeviceID); state != "disabled" {
		t.Fatalf("device after lapse: %s", state)
	}
}

// A signer signs the terms they were shown. A request's terms are fixed
// when it is made (every signer of a request signs the same bytes), so renaming the building later changes nothing a signer sees; a
// posted hash of other terms is refused, the device stays disabled and the
// link still works.
func testConsentSignRefusesChangedTerms(t *testing.T, newServices NewServices) {
	w := NewConsentWorld(t, newServices(t))
	c, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-1", w.Signer.ID))
	if err != nil {
		t.Fatal(err)
	}
	token := w.LastLink(t, w.Signer.Email, "/sign/")
	shown := w.SignInput(t, token)
	if _, err := w.Buildings.UpdateBuilding(as(w.Manager), w.A.ID, doorledger.BuildingInput{Name: "Harbor View Towers", Address: "1 Harbor St", Timezone: "America/New_York"}); err != nil {
		t.Fatal(err)
	}
	if again := w.SignInput(t, token); again.TermsSHA256 != shown.TermsSHA256 {
		t.Fatalf("the request's terms changed with the building: %s, then %s", shown.TermsSHA256, again.TermsSHA256)
	}
	other := shown
	other.TermsSHA256 = doorledger.TermsSHA256("other terms")
	if _, err := w.Consents.Sign(context.Background(), token, other); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("signing other terms: %v, want ECONFLICT", err)
	}
	if state, _ := w.Device(t, c.DeviceID); state != string(doorledger.StateDisabled) {
		t.Fatalf("device %s after a refused signature", state)
	}
	signed, err := w.Consents.Sign(context.Background(), token, shown)
	if err != nil {
		t.Fatalf("signing the terms shown: %v", err)
	}
	if got := doorledger.TermsSHA256(signed.Signature.Terms); got != shown.TermsSHA256 || !strings.Contains(signed.Signature.Terms, "Building: Harbor View\n") {
		t.Fatalf("stored terms hash %s, want %s:\n%s", got, shown.TermsSHA256, signed.Signature.Terms)
	}
}

// A consent signed before its signer left the roster stays valid and is
// flagged; a manager asks a current signer to renew it, and a request
// stranded by the removal is asked of a current signer instead.
func testConsentSignedBySignerSinceRemoved(t *testing.T, newServices NewServices) {
	w := NewConsentWorld(t, newServices(t))
	bs := w.Buildings
	c, _ := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-R6", w.Signer.ID))
	token := w.LastLink(t, "zoe@example.com", "/sign/")
	if _, err := w.Consents.Sign(context.Background(), token, w.SignInput(t, token)); err != nil {
		t.Fatal(err)
	}
	stranded, _ := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-R7", w.Signer.ID))
	ana, err := bs.AddSigner(as(w.Manager), w.A.ID, doorledger.SignerInput{Name: "Ana Owner", Title: "Owner", Email: "ana@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.RemoveSigner(as(w.Manager), w.A.ID, w.Signer.ID); err != nil {
		t.Fatal(err)
	}
	got, _ := w.Consents.FindConsentByID(as(w.Manager), c.ID)
	if state, _ := w.Device(t, c.DeviceID); got.Status != doorledger.ConsentSigned || !got.SignedByRemovedSigner() || got.Signer.RemovedAt.IsZero() || state != "enabled" {
		t.Fatalf("signed consent after its signer left: %s, flagged %v, device %s", got.Status, got.SignedByRemovedSigner(), state)
	}
	if m := w.Mail(t, "manager@example.com", "Signer removed"); len(m) != 1 || !strings.Contains(m[0].Body, "Consents they signed stay valid") ||
		!strings.Contains(m[0].Body, "consent #"+itoa(c.ID)) || !strings.Contains(m[0].Body, "consent #"+itoa(stranded.ID)) {
		t.Fatalf("managers' mail: %+v", m)
	}

	// Renewal by the removed signer is refused beside the field; by Ana it works.
	if _, err := w.Consents.RequestRenewal(as(w.Manager), c.ID, 0); doorledger.ErrorFields(err)["signer_id"] == "" {
		t.Fatalf("renewal by the removed signer: %v", err)
	}
	if _, err := w.Consents.RequestRenewal(as(w.Manager), c.ID, w.SignerB.ID); doorledger.ErrorFields(err)["signer_id"] == "" {
		t.Fatalf("renewal by another building's signer: %v", err)
	}
	renewal, err := w.Consents.RequestRenewal(as(w.Manager), c.ID, ana.ID)
	if err != nil {
		t.Fatal(err)
	}
	tok := w.LastLink(t, "ana@example.com", "/sign/")
	in := w.SignInput(t, tok)
	in.TypedName = "Ana Owner"
	if _, err := w.Consents.Sign(context.Background(), tok, in); err != nil {
		t.Fatal(err)
	}
	if state, on := w.Device(t, c.DeviceID); state != "enabled" || on != renewal.ID {
		t.Fatalf("device after Ana renewed: %s on %d, want enabled on %d", state, on, renewal.ID)
	}

	// The stranded request: asked of Ana instead; her signature enables the device.
	if _, err := w.Consents.RequestRenewal(as(w.Manager), stranded.ID, 0); doorledger.ErrorFields(err)["signer_id"] == "" {
		t.Fatalf("stranded request asked of its removed signer: %v", err)
	}
	again, err := w.Consents.RequestRenewal(as(w.Manager), stranded.ID, ana.ID)
	if err != nil {
		t.Fatal(err)
	}
	tok = w.LastLink(t, "ana@example.com", "/sign/")
	in = w.SignInput(t, tok)
	in.TypedName = "Ana Owner"
	if _, err := w.Consents.Sign(context.Background(), tok, in); err != nil {
		t.Fatal(err)
	}
	if state, on := w.Device(t, stranded.DeviceID); state != "enabled" || on != again.ID {
		t.Fatalf("device of the stranded request: %s on %d, want enabled on %d", state, on, again.ID)
	}
	if tl := w.Timeline(t, w.Manager, stranded.ID); !strings.Contains(tl, "renewal_requested: consent #"+itoa(again.ID)+" asks Ana Owner, Owner") {
		t.Fatalf("stranded request's timeline:\n%s", tl)
	}
	// An awaiting request whose signer is on the roster is not "renewed".
	pending, _ := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-R8", ana.ID))
	if _, err := w.Consents.RequestRenewal(as(w.Manager), pending.ID, ana.ID); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("renewal of a pending request: %v", err)
	}
}

func testConsentInstallerSeesNoContactData(t *testing.T, newServices NewServices) {
	w := NewConsentWorld(t, newServices(t))
	c, _ := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-P1", w.Signer.ID))
	token := w.LastLink(t, "zoe@example.com", "/sign/")
	if _, err := w.Consents.Sign(context.Background(), token, w.SignInput(t, token)); err != nil {
		t.Fatal(err)
	}
	mgr, err := w.Consents.FindConsentByID(as(w.Manager), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := w.Consents.FindConsentByID(as(w.Inst), c.ID)
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
	if tl := w.Timeline(t, w.Inst, c.ID); strings.Contains(tl, "zoe@example.com") || !strings.Contains(tl, "signing link to "+doorledger.MaskedAddress) {
		t.Fatalf("installer's timeline:\n%s", tl)
	}
	if tl := w.Timeline(t, w.Manager, c.ID); !strings.Contains(tl, "signing link to zoe@example.com") {
		t.Fatalf("manager's timeline:\n%s", tl)
	}
	lists := [][]*doorledger.Consent{}
	l1, _ := w.Consents.FindConsents(as(w.Inst), doorledger.ConsentFilter{BuildingID: w.A.ID})
	l2, _ := w.Consents.FindMySubmissions(as(w.Inst))
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
	r := request("SN-P2", w.Signer.ID)
	r.InPerson = true
	c2, _ := w.Consents.RequestConsent(as(w.Inst), w.A.ID, r)
	sess, err := w.Consents.InPersonSession(as(w.Inst), c2.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sess.Terms, "zoe@example.com") || sess.Consent.Signer.Email != doorledger.MaskedAddress || sess.TermsSHA256 == doorledger.TermsSHA256(sess.Terms) {
		t.Fatalf("in-person session shows the address: %q", sess.Terms)
	}
	code := w.MustCode(t, c2.ID)
	signed, err := w.Consents.SignInPerson(as(w.Inst), c2.ID, 0, code, doorledger.SignInput{TypedName: "Zoë Nuñez", AgreeESign: true, SignaturePNG: SignaturePNG, TermsSHA256: sess.TermsSHA256})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(signed.Signature.Terms, "zoe@example.com") || signed.Signature.TermsSHA256 != sess.TermsSHA256 {
		t.Fatalf("in person, the terms signed: %+v", signed.Signature)
	}
	if tl := w.Timeline(t, w.Inst, c2.ID); strings.Contains(tl, "zoe@example.com") {
		t.Fatalf("installer's in-person timeline:\n%s", tl)
	}
}

// A used signing link says what happened and can have the withdraw and
// dispute links mailed again to the registered address, never end the
// consent itself.
func testConsentLinksAfterSigning(t *testing.T, newServices NewServices) {
	w := NewConsentWorld(t, newServices(t))
	c, _ := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-L1", w.Signer.ID))
	token := w.LastLink(t, "zoe@example.com", "/sign/")
	if _, err := w.Consents.Sign(context.Background(), token, w.SignInput(t, token)); err != nil {
		t.Fatal(err)
	}
	firstWithdraw := w.LastLink(t, "zoe@example.com", "/consent/withdraw/")
	// The signing link cannot withdraw or dispute by itself.
	if _, err := w.Consents.EndByToken(context.Background(), token, ""); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("signing link used to end the consent: %v", err)
	}
	for i := 0; i < doorledger.EndLinkMailsPerDay; i++ {
		if err := w.Consents.MailEndLinks(context.Background(), token); err != nil {
			t.Fatalf("links mailed again (%d): %v", i+1, err)
		}
	}
	if err := w.Consents.MailEndLinks(context.Background(), token); doorledger.ErrorCode(err) != doorledger.ETOOMANY {
		t.Fatalf("links mailed again past the limit: %v", err)
	}
	if m := w.Mail(t, "zoe@example.com", "Links to withdraw or report"); len(m) != doorledger.EndLinkMailsPerDay {
		t.Fatalf("mails with the links: %d", len(m))
	}
	if err := w.Consents.MailEndLinks(context.Background(), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("forged token: %v", err)
	}
	// The new links work; the earlier ones did too until then.
	withdraw := w.LastLink(t, "zoe@example.com", "/consent/withdraw/")
	if withdraw == firstWithdraw {
		t.Fatal("the same withdraw link mailed again")
	}
	sess, purpose, err := w.Consents.OpenAfterSigning(context.Background(), withdraw)
	if err != nil || purpose != "withdraw" || sess.Done || sess.Consent.Signature == nil || sess.Consent.Signature.IP != "" {
		t.Fatalf("new withdraw link: %+v %s %v", sess, purpose, err)
	}
	if _, err := w.Consents.EndByToken(context.Background(), withdraw, "moved out"); err != nil {
		t.Fatal(err)
	}
	// Every link now says what happened.
	for _, tok := range []string{withdraw, firstWithdraw} {
		sess, _, err := w.Consents.OpenAfterSigning(context.Background(), tok)
		if err != nil || !sess.Done || sess.Consent.Status != doorledger.ConsentWithdrawn || sess.Consent.StatusNote != "" {
			t.Fatalf("withdraw link after withdrawal: %+v %v", sess, err)
		}
	}
	sess, err = w.Consents.OpenSigning(context.Background(), token)
	if err != nil || !sess.Done || sess.Consent.Status != doorledger.ConsentWithdrawn {
		t.Fatalf("signing link after withdrawal: %+v %v", sess, err)
	}
	if err := w.Consents.MailEndLinks(context.Background(), token); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("links mailed for a withdrawn consent: %v", err)
	}
	if tl := w.Timeline(t, w.Manager, c.ID); strings.Count(tl, "links_mailed:") != doorledger.EndLinkMailsPerDay {
		t.Fatalf("timeline:\n%s", tl)
	}

	// A declined request's link says so.
	w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-L2", w.Signer.ID))
	token = w.LastLink(t, "zoe@example.com", "/sign/")
	if err := w.Consents.Decline(context.Background(), token, ""); err != nil {
		t.Fatal(err)
	}
	if sess, err := w.Consents.OpenSigning(context.Background(), token); err != nil || !sess.Done || sess.Consent.Status != doorledger.ConsentDeclined {
		t.Fatalf("signing link after declining: %+v %v", sess, err)
	}
}
