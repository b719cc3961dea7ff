package sqlite_test

import (
	"context"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/internal/pdftest"
)

func paperPDF(signedBy ...*doorledger.Signer) *doorledger.PaperFormInput {
	in := &doorledger.PaperFormInput{Kind: doorledger.PaperPDF, DateWritten: "2026-11-20",
		Files: []doorledger.PaperFile{{ContentType: "application/pdf", Data: pdftest.Pages(2), Pages: 2, PageSize: "A4 portrait (210 × 297 mm)"}}}
	for _, s := range signedBy {
		in.SignedByIDs = append(in.SignedByIDs, s.ID)
	}
	return in
}

// The paper form of issue 17 under a policy of two: the form must name as
// many people as the policy requires; each named signer must confirm it to
// sign, and the confirmation records the form's digest beside the
// signature's terms hash; a named signer's "I did not sign this form"
// refuses the request, keeps the device disabled and alerts the managers and
// the board.
func TestPaperFormConfirmedAndDisputed(t *testing.T) {
	w := newPolicyWorld(t)
	board, err := sqlite.NewUserService(w.db).CreateUser(sys(), doorledger.NewUser{Email: "board@example.com", Name: "Bea Board", Role: doorledger.RoleBoard, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.buildings().GrantAccess(sys(), w.A.ID, board.ID); err != nil {
		t.Fatal(err)
	}
	w.setPolicy(t, doorledger.PolicyInput{Required: 2})

	// One signer named on the form is fewer than the policy's two.
	r := request("PF-1", 0)
	r.SignerIDs = []int64{w.paula.ID, w.tom.ID}
	r.Paper = paperPDF(w.paula)
	if _, err := w.consents.RequestConsent(as(w.inst), w.A.ID, r); doorledger.ErrorFields(err)["paper_signed_by"] == "" {
		t.Fatalf("form signed by 1 of 2: %v (%v)", err, doorledger.ErrorFields(err))
	}
	// Someone the request does not ask.
	r.Paper = paperPDF(w.paula, w.sam)
	if _, err := w.consents.RequestConsent(as(w.inst), w.A.ID, r); doorledger.ErrorFields(err)["paper_signed_by"] == "" {
		t.Fatalf("form signed by someone not asked: %v", err)
	}
	r.Paper = paperPDF(w.paula, w.tom)
	c, err := w.consents.RequestConsent(as(w.inst), w.A.ID, r)
	if err != nil {
		t.Fatal(err)
	}
	if c.Paper == nil || len(c.Paper.SignedBy) != 2 || c.Paper.Pages() != 2 || c.Paper.AttachedAs != doorledger.RoleInstaller {
		t.Fatalf("paper form = %+v", c.Paper)
	}
	// The installer's copy masks the signers' addresses.
	mine, err := w.consents.FindConsentByID(as(w.inst), c.ID)
	if err != nil || mine.Paper.SignedBy[0].Signer.Email != doorledger.MaskedAddress {
		t.Fatalf("installer's copy: %+v %v", mine.Paper, err)
	}

	// Paula must confirm the form to sign.
	token := w.lastLink(t, w.paula.Email, "/sign/")
	if !strings.Contains(lastMail(t, w.consentWorld, w.paula.Email).Body, "Did you sign this form?") && !strings.Contains(lastMail(t, w.consentWorld, w.paula.Email).Body, "did you sign this form?") {
		t.Error("the signing mail does not ask about the paper form")
	}
	in := w.signInput(t, token)
	in.TypedName = w.paula.Name
	if _, err := w.consents.Sign(context.Background(), token, in); doorledger.ErrorFields(err)["paper_confirm"] == "" {
		t.Fatalf("signed without confirming the form: %v", err)
	}
	token = w.lastLink(t, w.paula.Email, "/sign/")
	in.ConfirmPaper, in.PaperSHA256 = true, c.Paper.SHA256()
	if _, err := w.consents.Sign(context.Background(), token, in); err != nil {
		t.Fatal(err)
	}
	var paperHash, termsHash string
	if err := w.db.Reader().QueryRow(`SELECT ps.paper_sha256, g.terms_sha256 FROM paper_form_signers ps JOIN consent_signatures g ON g.id = ps.signature_id
		WHERE ps.signer_id = ? AND ps.answer = 'confirmed'`, w.paula.ID).Scan(&paperHash, &termsHash); err != nil {
		t.Fatal(err)
	}
	if paperHash != c.Paper.SHA256() || termsHash != c.TermsSHA256 {
		t.Errorf("confirmation recorded paper %s, terms %s; want %s and %s", paperHash, termsHash, c.Paper.SHA256(), c.TermsSHA256)
	}

	// Tom did not sign it.
	tomToken := w.lastLink(t, w.tom.Email, "/sign/")
	ended, err := w.consents.DisputePaperForm(context.Background(), tomToken, "I was abroad that week.")
	if err != nil {
		t.Fatal(err)
	}
	if ended.Status != doorledger.ConsentDeclined || !ended.Paper.Disputed() || ended.Paper.Asks(w.tom.ID).Answer != doorledger.PaperDisputed {
		t.Fatalf("after the dispute: status %s, paper %+v", ended.Status, ended.Paper)
	}
	if state, _ := w.device(t, ended.DeviceID); state != "disabled" {
		t.Errorf("device %s after the dispute", state)
	}
	for _, addr := range []string{w.manager.Email, board.Email} {
		if m := lastMail(t, w.consentWorld, addr); !strings.Contains(m.Subject, "Paper form DISPUTED") || !strings.Contains(m.Body, "I was abroad") {
			t.Errorf("alert to %s: %q", addr, m.Subject)
		}
	}
	// Answered once; the link signs no more.
	if _, err := w.consents.DisputePaperForm(context.Background(), tomToken, ""); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Errorf("second dispute: %v", err)
	}
	counts, err := w.consents.PaperDisputes(as(w.manager), w.A.ID)
	if err != nil || len(counts) != 1 || counts[0].Disputed != 1 || counts[0].Forms != 1 || counts[0].Vendor != "Acme Access" {
		t.Errorf("dispute counts %+v, %v", counts, err)
	}
	// The database keeps the evidence.
	for _, q := range []string{`DELETE FROM paper_form_files`, `UPDATE paper_form_files SET data = x'00'`, `UPDATE paper_form_signers SET answer = 'confirmed' WHERE signer_id = ` + itoa(w.tom.ID),
		`DELETE FROM paper_forms`, `UPDATE paper_forms SET disputed_at = NULL`} {
		if _, err := w.db.Writer().Exec(q); err == nil {
			t.Errorf("%s: allowed", q)
		}
	}
}

// A manager attaches a form mailed to them on a signer's behalf; the signer
// is mailed to confirm it; once the consent is signed, a named signer whose
// signature was not needed can still dispute the form, which disables the
// device at once.
func TestPaperFormAttachedByManagerDisputedAfterSigning(t *testing.T) {
	w := newPolicyWorld(t)
	c := w.ask(t, "PF-2", w.paula, w.tom)
	if _, err := w.consents.AttachPaperForm(as(w.inst), c.ID, *paperPDF(w.tom)); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Fatalf("installer attaches on a signer's behalf: %v", err)
	}
	bad := paperPDF(w.tom)
	bad.DateWritten = "20 Nov"
	if _, err := w.consents.AttachPaperForm(as(w.manager), c.ID, *bad); doorledger.ErrorFields(err)["paper_date"] == "" {
		t.Fatalf("bad date: %v", err)
	}
	p, err := w.consents.AttachPaperForm(as(w.manager), c.ID, *paperPDF(w.tom))
	if err != nil {
		t.Fatal(err)
	}
	if p.AttachedAs != doorledger.RoleManager {
		t.Errorf("attached as %s", p.AttachedAs)
	}
	if m := lastMail(t, w.consentWorld, w.tom.Email); !strings.Contains(m.Subject, "Did you sign this form?") {
		t.Errorf("Tom's mail: %q", m.Subject)
	}
	if _, err := w.consents.AttachPaperForm(as(w.manager), c.ID, *paperPDF(w.tom)); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Errorf("second form: %v", err)
	}
	// Paula signs (the form does not name her): the default policy of one is satisfied.
	if _, err := w.signAs(t, w.paula); err != nil {
		t.Fatal(err)
	}
	signed, _ := w.consents.FindConsentByID(as(w.manager), c.ID)
	if signed.Status != doorledger.ConsentSigned {
		t.Fatalf("status %s", signed.Status)
	}
	if state, _ := w.device(t, signed.DeviceID); state != "enabled" {
		t.Fatalf("device %s", state)
	}
	ended, err := w.consents.DisputePaperForm(context.Background(), w.lastLink(t, w.tom.Email, "/sign/"), "")
	if err != nil {
		t.Fatal(err)
	}
	if ended.Status != doorledger.ConsentDisputed {
		t.Errorf("status %s", ended.Status)
	}
	if state, _ := w.device(t, signed.DeviceID); state != "disabled" {
		t.Errorf("device %s after the dispute", state)
	}
}

func lastMail(t *testing.T, w *consentWorld, addr string) doorledger.Message {
	t.Helper()
	msgs, err := w.outbox.PendingMessages(context.Background(), 1000, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].To == addr {
			return *msgs[i]
		}
	}
	t.Fatalf("no mail to %s", addr)
	return doorledger.Message{}
}
