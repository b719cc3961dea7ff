package sqlite_test

import (
	"context"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/sqlite"
)

// A paper form under a policy of two: the form must name as
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
	if err := w.Buildings.GrantAccess(sys(), w.A.ID, board.ID); err != nil {
		t.Fatal(err)
	}
	w.SetPolicy(t, doorledger.PolicyInput{Required: 2})

	// One signer named on the form is fewer than the policy's two.
	r := request("PF-1", 0)
	r.SignerIDs = []int64{w.Paula.ID, w.Tom.ID}
	r.Paper = dbtest.PaperPDF(w.Paula)
	if _, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, r); doorledger.ErrorFields(err)["paper_signed_by"] == "" {
		t.Fatalf("form signed by 1 of 2: %v (%v)", err, doorledger.ErrorFields(err))
	}
	// Someone the request does not ask.
	r.Paper = dbtest.PaperPDF(w.Paula, w.Sam)
	if _, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, r); doorledger.ErrorFields(err)["paper_signed_by"] == "" {
		t.Fatalf("form signed by someone not asked: %v", err)
	}
	r.Paper = dbtest.PaperPDF(w.Paula, w.Tom)
	c, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, r)
	if err != nil {
		t.Fatal(err)
	}
	if c.Paper == nil || len(c.Paper.SignedBy) != 2 || c.Paper.Pages() != 2 || c.Paper.AttachedAs != doorledger.RoleInstaller {
		t.Fatalf("paper form = %+v", c.Paper)
	}
	// The installer's copy masks the signers' addresses.
	mine, err := w.Consents.FindConsentByID(as(w.Inst), c.ID)
	if err != nil || mine.Paper.SignedBy[0].Signer.Email != doorledger.MaskedAddress {
		t.Fatalf("installer's copy: %+v %v", mine.Paper, err)
	}

	// Paula must confirm the form to sign.
	token := w.LastLink(t, w.Paula.Email, "/sign/")
	if !strings.Contains(w.LastMail(t, w.Paula.Email).Body, "Did you sign this form?") && !strings.Contains(w.LastMail(t, w.Paula.Email).Body, "did you sign this form?") {
		t.Error("the signing mail does not ask about the paper form")
	}
	in := w.SignInput(t, token)
	in.TypedName = w.Paula.Name
	if _, err := w.Consents.Sign(context.Background(), token, in); doorledger.ErrorFields(err)["paper_confirm"] == "" {
		t.Fatalf("signed without confirming the form: %v", err)
	}
	token = w.LastLink(t, w.Paula.Email, "/sign/")
	in.ConfirmPaper, in.PaperSHA256 = true, c.Paper.SHA256()
	if _, err := w.Consents.Sign(context.Background(), token, in); err != nil {
		t.Fatal(err)
	}
	var paperHash, termsHash string
	if err := w.db.Reader().QueryRow(`SELECT ps.paper_sha256, g.terms_sha256 FROM paper_form_signers ps JOIN consent_signatures g ON g.id = ps.signature_id
		WHERE ps.signer_id = ? AND ps.answer = 'confirmed'`, w.Paula.ID).Scan(&paperHash, &termsHash); err != nil {
		t.Fatal(err)
	}
	if paperHash != c.Paper.SHA256() || termsHash != c.TermsSHA256 {
		t.Errorf("confirmation recorded paper %s, terms %s; want %s and %s", paperHash, termsHash, c.Paper.SHA256(), c.TermsSHA256)
	}

	// Tom did not sign it.
	tomToken := w.LastLink(t, w.Tom.Email, "/sign/")
	ended, err := w.Papers.DisputePaperForm(context.Background(), tomToken, "I was abroad that week.")
	if err != nil {
		t.Fatal(err)
	}
	if ended.Status != doorledger.ConsentDeclined || !ended.Paper.Disputed() || ended.Paper.Asks(w.Tom.ID).Answer != doorledger.PaperDisputed {
		t.Fatalf("after the dispute: status %s, paper %+v", ended.Status, ended.Paper)
	}
	if state, _ := w.Device(t, ended.DeviceID); state != "disabled" {
		t.Errorf("device %s after the dispute", state)
	}
	for _, addr := range []string{w.Manager.Email, board.Email} {
		if m := w.LastMail(t, addr); !strings.Contains(m.Subject, "Paper form DISPUTED") || !strings.Contains(m.Body, "I was abroad") {
			t.Errorf("alert to %s: %q", addr, m.Subject)
		}
	}
	// Answered once; the link signs no more.
	if _, err := w.Papers.DisputePaperForm(context.Background(), tomToken, ""); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Errorf("second dispute: %v", err)
	}
	counts, err := w.Papers.PaperDisputes(as(w.Manager), w.A.ID)
	if err != nil || len(counts) != 1 || counts[0].Disputed != 1 || counts[0].Forms != 1 || counts[0].Vendor != "Acme Access" {
		t.Errorf("dispute counts %+v, %v", counts, err)
	}
	// The database keeps the evidence.
	for _, q := range []string{`DELETE FROM paper_form_files`, `UPDATE paper_form_files SET data = x'00'`, `UPDATE paper_form_signers SET answer = 'confirmed' WHERE signer_id = ` + itoa(w.Tom.ID),
		`DELETE FROM paper_forms`, `UPDATE paper_forms SET disputed_at = NULL`} {
		if _, err := w.db.Writer().Exec(q); err == nil {
			t.Errorf("%s: allowed", q)
		}
	}
}
