package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

// TestClockInThePastCannotEnable: the DB's clock set in the past (as tests may
// set it) makes Go's own check pass for a consent that SQLite's clock says
// has expired; the database still refuses the enable by its own clock.
func TestClockInThePastCannotEnable(t *testing.T) {
	db := NewDB(filepath.Join(t.TempDir(), "clock.db"))
	db.PasswordCost = 4
	real := time.Now().UTC()
	past := real.Add(-2 * time.Hour).Truncate(time.Second)
	db.Now = func() time.Time { return past }
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := doorledger.NewSystemContext(context.Background(), "test")

	b, err := NewBuildingService(db).CreateBuilding(ctx, doorledger.BuildingInput{Name: "Alder Court", Address: "1 Alder Court", Timezone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := NewBuildingService(db).AddSigner(ctx, b.ID, doorledger.SignerInput{Name: "Pat Owner", Title: "Board president", Email: "pat@alder.example"})
	if err != nil {
		t.Fatal(err)
	}
	inst, err := NewUserService(db).CreateUser(ctx, doorledger.NewUser{Email: "inst@example.com", Name: "Installer", Role: doorledger.RoleInstaller, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	// Signed an hour before the test clock; it expired a minute ago by the
	// real time, an hour and 59 minutes after the test clock.
	signed, expires := formatTime(past.Add(-time.Hour)), formatTime(real.Add(-time.Minute))
	w := db.Writer()
	res, err := w.Exec(`INSERT INTO consents (building_id, installer_id, signer_id, vendor, model, serial, location, opens, mode, requested_at, status, status_at,
		terms, terms_sha256, typed_name, signature_png, signed_at, signed_tz, signed_ip, signed_ua, method, expires_at)
		VALUES (?, ?, ?, 'Acme', 'K1', 'C-1', 'lobby', 'front door', 'link', ?, 'awaiting_signature', ?,
		'the terms', 'abc123', 'Pat Owner', x'89504e47', ?, 'UTC', '192.0.2.1', 'test', 'link', ?)`,
		b.ID, inst.ID, signer.ID, signed, signed, signed, expires)
	if err != nil {
		t.Fatal(err)
	}
	consent, _ := res.LastInsertId()
	for _, q := range []string{
		`INSERT INTO consent_signers (consent_id, signer_id, position, address_key)
			SELECT c.id, c.signer_id, 1, lower(s.email) FROM consents c JOIN signers s ON s.id = c.signer_id WHERE c.id = ?`,
		`INSERT INTO consent_signatures (consent_id, signer_id, address, address_key, terms_sha256, typed_name, signature_png, signed_at, signed_tz, signed_ip, signed_ua, method)
			SELECT c.id, c.signer_id, s.email, lower(s.email), c.terms_sha256, c.typed_name, c.signature_png, c.signed_at, c.signed_tz, c.signed_ip, c.signed_ua, c.method
			FROM consents c JOIN signers s ON s.id = c.signer_id WHERE c.id = ?`,
		`UPDATE consents SET status = 'signed' WHERE id = ?`,
	} {
		if _, err := w.Exec(q, consent); err != nil {
			t.Fatal(err)
		}
	}
	res, err = w.Exec(`INSERT INTO devices (building_id, vendor, model, serial, location, consent_id, origin, created_at)
		VALUES (?, 'Acme', 'K1', 'SN-1', 'lobby panel', ?, 'consent_request', ?)`, b.ID, consent, formatTime(past))
	if err != nil {
		t.Fatal(err)
	}
	device, _ := res.LastInsertId()

	// Go's check, by the test clock, finds the consent active...
	tx, err := db.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	active, err := tx.consentActive(ctx, device)
	tx.Rollback()
	if err != nil || !active {
		t.Fatalf("consent active by the test clock = %v, %v; want true (the test is not testing the trigger)", active, err)
	}
	// ...and the database refuses the enable by its own.
	_, err = NewDeviceService(db).SetDesiredState(ctx, device, doorledger.StateEnabled, "")
	if err == nil {
		t.Fatal("enabled a device under a consent expired by SQLite's clock, with the DB's clock in the past")
	}
	if !isRefusal(err, "no device is enabled without an active consent") {
		t.Errorf("refused by %v, want the enable trigger's refusal", err)
	}
	var state string
	if err := db.Reader().QueryRow(`SELECT desired_state FROM devices WHERE id = ?`, device).Scan(&state); err != nil || state != "disabled" {
		t.Errorf("device desired_state = %q, %v; want disabled", state, err)
	}
}
