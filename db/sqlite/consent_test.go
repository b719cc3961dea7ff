package sqlite_test

import (
	"context"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/sqlite"
)

// consentWorld is the suite's consent world (a building with a roster, its
// manager, two installers and a second building) with the database under it,
// for the tests that must reach it.
type consentWorld struct {
	*dbtest.ConsentWorld
	db *sqlite.DB
}

func newConsentWorld(t *testing.T) *consentWorld {
	t.Helper()
	s, d := openServices(t)
	return &consentWorld{ConsentWorld: dbtest.NewConsentWorld(t, s), db: d}
}

func as(u *doorledger.User) context.Context { return dbtest.As(u) }

var (
	request = dbtest.Request
	png     = dbtest.SignaturePNG
)

func TestConsentSignedByLink(t *testing.T) {
	w := newConsentWorld(t)
	var pushed []doorledger.DesiredState
	w.db.OnDesired = func(s []doorledger.DesiredState) { pushed = append(pushed, s...) }
	c, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-1", w.Signer.ID))
	if err != nil {
		t.Fatal(err)
	}
	if state, _ := w.Device(t, c.DeviceID); state != "disabled" || c.Status != doorledger.ConsentAwaiting {
		t.Fatalf("after request: device %s, consent %s", state, c.Status)
	}
	token := w.LastLink(t, "zoe@example.com", "/sign/")

	// Missing name, agreement and signature: each named, nothing written.
	_, err = w.Consents.Sign(context.Background(), token, doorledger.SignInput{})
	if f := doorledger.ErrorFields(err); f["typed_name"] == "" || f["agree"] == "" || f["signature"] == "" {
		t.Fatalf("empty sign: %v", err)
	}
	in := w.SignInput(t, token) // the link still works after a failed attempt
	signed, err := w.Consents.Sign(context.Background(), token, in)
	if err != nil {
		t.Fatal(err)
	}
	sig := signed.Signature
	if signed.Status != doorledger.ConsentSigned || sig == nil || sig.Method != doorledger.VerifyLink || sig.IP != "203.0.113.7" ||
		sig.TermsSHA256 != doorledger.TermsSHA256(sig.Terms) || !strings.Contains(sig.Terms, "SN-1") || sig.Timezone != "America/New_York" {
		t.Fatalf("signed consent: %+v %+v", signed, sig)
	}
	if !signed.ExpiresAt.Equal(w.Now.AddDate(0, 12, 0)) {
		t.Fatalf("expires %v, want 12 months after %v", signed.ExpiresAt, *w.Now)
	}
	if state, _ := w.Device(t, c.DeviceID); state != "enabled" {
		t.Fatalf("device after signing: %s", state)
	}
	if len(pushed) != 1 || pushed[0].State != doorledger.StateEnabled {
		t.Fatalf("pushed after signing: %+v", pushed)
	}
	// The link is single use: reopened, it says what happened (and when), with
	// none of the evidence; it cannot sign again.
	reopened, err := w.Consents.OpenSigning(context.Background(), token)
	if err != nil || !reopened.Done || reopened.Terms != "" || reopened.Consent.Status != doorledger.ConsentSigned {
		t.Fatalf("reused link: %+v %v", reopened, err)
	}
	if s := reopened.Consent.Signature; s == nil || !s.SignedAt.Equal(sig.SignedAt) || s.TypedName != "" || s.IP != "" || s.UserAgent != "" ||
		s.SignaturePNG != nil || s.Terms != "" || reopened.Consent.Signer.Email != "" || reopened.Building.Signers != nil {
		t.Fatalf("a used signing link shows more than the signer saw: %+v %+v", reopened.Consent, s)
	}
	if _, err := w.Consents.Sign(context.Background(), token, in); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("re-sign: %v", err)
	}
	// Timeline.
	events, err := w.Consents.ConsentTimeline(as(w.Manager), c.ID)
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
	withdraw := w.LastLink(t, "zoe@example.com", "/consent/withdraw/")
	pushed = nil
	ended, err := w.Consents.EndByToken(context.Background(), withdraw, "changed my mind")
	if err != nil {
		t.Fatal(err)
	}
	if ended.Status != doorledger.ConsentWithdrawn {
		t.Fatalf("status %s", ended.Status)
	}
	if state, _ := w.Device(t, c.DeviceID); state != "disabled" || len(pushed) != 1 || pushed[0].State != doorledger.StateDisabled {
		t.Fatalf("device after withdrawal: %s, pushed %+v", state, pushed)
	}
	msgs, _ := w.Outbox.PendingMessages(context.Background(), 100, 1000)
	alerted := false
	for _, m := range msgs {
		alerted = alerted || (m.To == "manager@example.com" && strings.Contains(m.Subject, "WITHDRAWN"))
	}
	if !alerted {
		t.Fatal("managers not alerted of the withdrawal")
	}
	// The dispute link died with the consent.
	dispute := w.LastLink(t, "zoe@example.com", "/consent/dispute/")
	if _, err := w.Consents.EndByToken(context.Background(), dispute, ""); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("dispute after withdrawal: %v", err)
	}
}
