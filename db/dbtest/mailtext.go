package dbtest

import (
	"context"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

// testPolicyMailTexts walks the mails of the consent cluster the other tests
// of the mail golden groups do not reach (their texts are compared with
// testdata/mail/PolicyMailTexts.txt): ordered signing by two of a board
// (the signature recorded, the second signer's turn, the consent signed for
// both and the managers), a reminder, a request expiring unsigned, a signer
// of a multi-signer request declining, a consent signed while the privacy
// profile holds its device, and a resident's report of a device not listed.
func testPolicyMailTexts(t *testing.T, newServices NewServices) {
	w := NewPolicyWorld(t, NewConsentWorld(t, newServices(t)))
	ctx := context.Background()
	w.SetPolicy(t, doorledger.PolicyInput{Required: 2, Ordered: true, ReminderDays: "2", ExpiryDays: 5})
	c := w.Ask(t, "SN-M1", w.Paula, w.Tom)
	if _, err := w.SignAs(t, w.Paula); err != nil {
		t.Fatal(err)
	}
	*w.Now = w.Now.Add(49 * time.Hour)
	if _, reminded, err := w.Consents.RemindAndExpire(ctx); err != nil || reminded != 1 {
		t.Fatalf("reminders: %d, %v", reminded, err)
	}
	if got, err := w.SignAs(t, w.Tom); err != nil || got.Status != doorledger.ConsentSigned {
		t.Fatalf("Tom signs #%d: %+v, %v", c.ID, got, err)
	}

	// A request nobody signs expires; one a signer declines ends.
	w.Ask(t, "SN-M2", w.Paula, w.Tom)
	w.Ask(t, "SN-M3", w.Paula, w.Sam)
	if err := w.Consents.Decline(ctx, w.LastLink(t, w.Paula.Email, "/sign/"), "We have a doorman."); err != nil {
		t.Fatal(err)
	}
	*w.Now = w.Now.Add(6 * 24 * time.Hour)
	if expired, _, err := w.Consents.RemindAndExpire(ctx); err != nil || expired != 1 {
		t.Fatalf("expired: %d, %v", expired, err)
	}

	// Under the privacy profile a device without a disclosure record stays
	// disabled when its consent is signed.
	if err := w.Privacy.SetPrivacyProfile(as(w.Manager), w.A.ID, doorledger.PrivacyProfileTDPA); err != nil {
		t.Fatal(err)
	}
	w.SetPolicy(t, doorledger.PolicyInput{Required: 1})
	w.Ask(t, "SN-M4", w.Sam)
	if _, err := w.SignAs(t, w.Sam); err != nil {
		t.Fatal(err)
	}

	// A resident reports a device the notice does not list.
	rw := NewResidentWorld(t, w.ConsentWorld)
	if _, err := w.Residents.ReportDevice(ctx, rw.Slug, doorledger.ResidentReportInput{Location: "grey box by the mailboxes", Contact: "res@example.net"}); err != nil {
		t.Fatal(err)
	}
}
