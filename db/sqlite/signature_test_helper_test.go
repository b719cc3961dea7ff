package sqlite_test

import (
	"database/sql"
	"testing"
)

// signDirectly gives a consent written directly to the tables (as awaiting,
// with its evidence columns filled) what the database requires of a signed
// consent since migration 030: its signer named, and their signature of the
// consent's terms. Then it marks it signed and, for a later status
// (withdrawn, disputed, lapsed), moves it there — each step a write the
// triggers check, as the tests that write the tables around the services do.
func signDirectly(tb testing.TB, w *sql.DB, consentID int64, status string) {
	tb.Helper()
	for _, q := range []string{
		`INSERT INTO consent_signers (consent_id, signer_id, position, address_key)
			SELECT c.id, c.signer_id, 1, lower(s.email) FROM consents c JOIN signers s ON s.id = c.signer_id WHERE c.id = ?`,
		`INSERT INTO consent_signatures (consent_id, signer_id, address, address_key, terms_sha256, typed_name, signature_png, signed_at, signed_tz, signed_ip, signed_ua, method)
			SELECT c.id, c.signer_id, s.email, lower(s.email), c.terms_sha256, c.typed_name, c.signature_png, c.signed_at, c.signed_tz, c.signed_ip, c.signed_ua, c.method
			FROM consents c JOIN signers s ON s.id = c.signer_id WHERE c.id = ?`,
		`UPDATE consents SET status = 'signed' WHERE id = ?`,
	} {
		if _, err := w.Exec(q, consentID); err != nil {
			tb.Fatalf("sign consent %d directly: %v", consentID, err)
		}
	}
	if status != "" && status != "signed" {
		if _, err := w.Exec(`UPDATE consents SET status = ? WHERE id = ?`, status, consentID); err != nil {
			tb.Fatalf("consent %d to %s: %v", consentID, status, err)
		}
	}
}
