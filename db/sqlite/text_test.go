package sqlite_test

import (
	"strings"
	"testing"
)

// A mail subject is one line even when built from a name stored before names
// were checked.
func TestMailSubjectIsOneLine(t *testing.T) {
	w := newConsentWorld(t)
	if _, err := w.db.Writer().Exec(`UPDATE buildings SET name = ? WHERE id = ?`, "Harbor View\r\nBcc: victim@example.com", w.A.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-3", w.Signer.ID)); err != nil {
		t.Fatal(err)
	}
	var subject string
	if err := w.db.Reader().QueryRow(`SELECT subject FROM outbox WHERE kind = 'signing_link'`).Scan(&subject); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(subject, "\r\n") || !strings.Contains(subject, "Harbor View  Bcc: victim@example.com") {
		t.Fatalf("subject %q", subject)
	}
}
