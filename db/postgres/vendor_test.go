package postgres_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/postgres"
)

// The vendor service's behaviour is dbtest's group vendors; here are the
// rules of PostgreSQL's tables.

// TestVendorKeysSealed: keys are sealed, so no column holds one in clear
// and another seal key does not open them; an integration is retired, never
// deleted; a device's integration covers its building.
func TestVendorKeysSealed(t *testing.T) {
	s, d := openServices(t)
	w := dbtest.NewUnlockWorld(t, s, "UTC", time.Time{})
	ctx := context.Background()
	v, k1 := dbtest.CreateVendor(t, w, "Acme Cloud", w.A)
	k2, err := w.Vendors.RotateVendorKey(dbtest.As(w.Admin), v.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{k1, k2} {
		var n int
		if err := d.Pool().QueryRow(ctx, `SELECT COUNT(*) FROM vendor_integrations
			WHERE position($1::bytea IN key_sealed) > 0 OR position($1::bytea IN COALESCE(prev_key_sealed, '')) > 0
			OR position($2 IN key_fp || prev_key_fp || name || webhook_url) > 0`, []byte(k), k).Scan(&n); err != nil || n != 0 {
			t.Errorf("key %s… stored in clear (%d rows, %v)", k[:10], n, err)
		}
	}
	other, err := postgres.NewVendorService(d, postgres.NewUnlockService(d), bytes.Repeat([]byte{8}, postgres.SealKeySize))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.VendorKeys(ctx, v.ID); err == nil || doorledger.ErrorCode(err) != doorledger.EINTERNAL {
		t.Errorf("another seal key opened the keys: %v", err)
	}
	if _, err := postgres.NewVendorService(d, postgres.NewUnlockService(d), []byte("short")); err == nil {
		t.Error("a short seal key was accepted")
	}
	_, err = d.Pool().Exec(ctx, `DELETE FROM vendor_integrations WHERE id = $1`, v.ID)
	wantRefused(t, "delete an integration", err, "vendor integrations are retired, never deleted")

	devB, _ := w.EnabledDevice(t, w.B)
	_, err = d.Pool().Exec(ctx, `UPDATE devices SET vendor_integration_id = $1 WHERE id = $2`, v.ID, devB)
	wantRefused(t, "a device under an integration of another building", err, "a device's vendor integration must cover its building")
}

// TestVendorRequestsExpire: the claims of signed requests are kept until
// they expire, and expired ones go as new ones arrive.
func TestVendorRequestsExpire(t *testing.T) {
	s, d := openServices(t)
	w := dbtest.NewUnlockWorld(t, s, "UTC", time.Time{})
	ctx := context.Background()
	v, _ := dbtest.CreateVendor(t, w, "Acme Cloud", w.A)
	devA, _ := w.EnabledDevice(t, w.A)
	ev := func(id string) []doorledger.UnlockEvent {
		return []doorledger.UnlockEvent{dbtest.UnlockEv(devA, id, w.Now.Add(-time.Minute), doorledger.UnlockGranted)}
	}
	claims := func() (n int) {
		t.Helper()
		if err := d.Pool().QueryRow(ctx, `SELECT COUNT(*) FROM vendor_requests`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, id := range []string{"e1", "e2"} {
		if _, err := w.Vendors.RecordVendorEvents(ctx, dbtest.VendorRequest(v.ID, id), ev(id)); err != nil {
			t.Fatal(err)
		}
	}
	if n := claims(); n != 2 {
		t.Errorf("remembered requests %d, want 2", n)
	}
	if _, err := d.Pool().Exec(ctx, `UPDATE vendor_requests SET expires_at = '2000-01-01T00:00:00Z'`); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Vendors.RecordVendorEvents(ctx, dbtest.VendorRequest(v.ID, "later"), ev("e3")); err != nil {
		t.Fatal(err)
	}
	if n := claims(); n != 1 {
		t.Errorf("remembered requests after expiry %d, want 1", n)
	}
}
