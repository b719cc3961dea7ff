package dbtest

import (
	"context"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/pdftest"
)

var paperTests = []test{
	{"PaperFormAttachedByManagerDisputedAfterSigning", testPaperFormAttachedByManagerDisputedAfterSigning},
}

// PaperPDF is a two-page PDF paper form naming signedBy as its signers.
func PaperPDF(signedBy ...*doorledger.Signer) *doorledger.PaperFormInput {
	in := &doorledger.PaperFormInput{Kind: doorledger.PaperPDF, DateWritten: "2026-11-20",
		Files: []doorledger.PaperFile{{ContentType: "application/pdf", Data: pdftest.Pages(2), Pages: 2, PageSize: "A4 portrait (210 × 297 mm)"}}}
	for _, s := range signedBy {
		in.SignedByIDs = append(in.SignedByIDs, s.ID)
	}
	return in
}

// A manager attaches a form mailed to them on a signer's behalf; the signer
// is mailed to confirm it; once the consent is signed, a named signer whose
// signature was not needed can still dispute the form, which disables the
// device at once.
func testPaperFormAttachedByManagerDisputedAfterSigning(t *testing.T, newServices NewServices) {
	w := NewPolicyWorld(t, NewConsentWorld(t, newServices(t)))
	c := w.Ask(t, "PF-2", w.Paula, w.Tom)
	if _, err := w.Papers.AttachPaperForm(as(w.Inst), c.ID, *PaperPDF(w.Tom)); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Fatalf("installer attaches on a signer's behalf: %v", err)
	}
	bad := PaperPDF(w.Tom)
	bad.DateWritten = "20 Nov"
	if _, err := w.Papers.AttachPaperForm(as(w.Manager), c.ID, *bad); doorledger.ErrorFields(err)["paper_date"] == "" {
		t.Fatalf("bad date: %v", err)
	}
	p, err := w.Papers.AttachPaperForm(as(w.Manager), c.ID, *PaperPDF(w.Tom))
	if err != nil {
		t.Fatal(err)
	}
	if p.AttachedAs != doorledger.RoleManager {
		t.Errorf("attached as %s", p.AttachedAs)
	}
	if m := w.LastMail(t, w.Tom.Email); !strings.Contains(m.Subject, "Did you sign this form?") {
		t.Errorf("Tom's mail: %q", m.Subject)
	}
	if _, err := w.Papers.AttachPaperForm(as(w.Manager), c.ID, *PaperPDF(w.Tom)); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Errorf("second form: %v", err)
	}
	// Paula signs (the form does not name her): the default policy of one is satisfied.
	if _, err := w.SignAs(t, w.Paula); err != nil {
		t.Fatal(err)
	}
	signed, _ := w.Consents.FindConsentByID(as(w.Manager), c.ID)
	if signed.Status != doorledger.ConsentSigned {
		t.Fatalf("status %s", signed.Status)
	}
	if state, _ := w.Device(t, signed.DeviceID); state != "enabled" {
		t.Fatalf("device %s", state)
	}
	ended, err := w.Papers.DisputePaperForm(context.Background(), w.LastLink(t, w.Tom.Email, "/sign/"), "")
	if err != nil {
		t.Fatal(err)
	}
	if ended.Status != doorledger.ConsentDisputed {
		t.Errorf("status %s", ended.Status)
	}
	if state, _ := w.Device(t, signed.DeviceID); state != "disabled" {
		t.Errorf("device %s after the dispute", state)
	}
}
