package dbtest

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
)

var policyTests = []test{
	{"PolicyRemovedSignerDropsOut", testPolicyRemovedSignerDropsOut},
	{"PolicyMailTexts", testPolicyMailTexts},
}

// A signer removed before signing drops out, and the request says who is
// still needed; when the others can no longer satisfy the policy, the
// managers are alerted.
func testPolicyRemovedSignerDropsOut(t *testing.T, newServices NewServices) {
	w := NewPolicyWorld(t, NewConsentWorld(t, newServices(t)))
	w.SetPolicy(t, doorledger.PolicyInput{Required: 2})
	c := w.Ask(t, "SN-R1", w.Paula, w.Tom, w.Sam)
	bs := w.Buildings
	if err := bs.RemoveSigner(as(w.Manager), w.A.ID, w.Sam.ID); err != nil {
		t.Fatal(err)
	}
	got, err := w.Consents.FindConsentByID(as(w.Manager), c.ID)
	if err != nil || got.Stranded() || got.Need.More != 2 || got.RequestSigner(w.Sam.ID).State != doorledger.SignerRemoved {
		t.Fatalf("after one of three left: %+v %v", got, err)
	}
	if _, err := w.Consents.OpenSigning(context.Background(), w.LastLink(t, w.Sam.Email, "/sign/")); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("removed signer's link: %v", err)
	}
	if err := bs.RemoveSigner(as(w.Manager), w.A.ID, w.Tom.ID); err != nil {
		t.Fatal(err)
	}
	got, _ = w.Consents.FindConsentByID(as(w.Manager), c.ID)
	if !got.Stranded() {
		t.Fatalf("two of three left, 2 required: not stranded: %+v", got.Need)
	}
	msgs, _ := w.Outbox.PendingMessages(context.Background(), 100, 1000)
	alerted := false
	for _, m := range msgs {
		if m.To == "manager@example.com" && strings.Contains(m.Body, "can no longer be signed") && strings.Contains(m.Body, "#"+strconv.FormatInt(c.ID, 10)) {
			alerted = true
		}
	}
	if !alerted {
		t.Fatal("managers not alerted of a request the roster can no longer satisfy")
	}
	if _, err := w.Consents.OpenSigning(context.Background(), w.LastLink(t, w.Paula.Email, "/sign/")); err == nil {
		t.Fatal("a stranded request's link still opens for signing")
	}
}
