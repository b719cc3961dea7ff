package sqlite_test

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/sqlite"
)

// The vendor service's behaviour is dbtest's group vendors; here are the
// rules of SQLite's tables and files.

var sealKey = bytes.Repeat([]byte{7}, sqlite.SealKeySize)

// TestVendorKeysSealed: keys are sealed, so the database file holds none of
// them in clear and another seal key does not open them; an integration is
// retired, never deleted.
func TestVendorKeysSealed(t *testing.T) {
	w := newUnlockWorld(t, "UTC", time.Time{})
	v, k1 := dbtest.CreateVendor(t, w.UnlockWorld, "Acme Cloud", w.A)
	k2, err := w.Vendors.RotateVendorKey(uctx(w.Admin), v.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{k1, k2} {
		if n := w.count(t, `SELECT COUNT(*) FROM vendor_integrations WHERE instr(key_sealed, ?) > 0 OR instr(COALESCE(prev_key_sealed, x''), ?) > 0`, []byte(k), []byte(k)); n != 0 {
			t.Errorf("key %s… stored in clear", k[:10])
		}
	}
	raw, err := os.ReadFile(w.d.Path)
	if err != nil {
		t.Fatal(err)
	}
	wal, _ := os.ReadFile(w.d.Path + "-wal")
	if bytes.Contains(append(raw, wal...), []byte(k2)) {
		t.Error("the database file holds the current key in clear")
	}
	other, _ := sqlite.NewVendorService(w.d, w.svc, bytes.Repeat([]byte{8}, sqlite.SealKeySize))
	if _, err := other.VendorKeys(context.Background(), v.ID); err == nil || doorledger.ErrorCode(err) != doorledger.EINTERNAL {
		t.Errorf("another seal key opened the keys: %v", err)
	}
	if _, err := sqlite.NewVendorService(w.d, w.svc, []byte("short")); err == nil {
		t.Error("a short seal key was accepted")
	}
	_, err = w.d.Writer().Exec(`DELETE FROM vendor_integrations WHERE id = ?`, v.ID)
	wantRefused(t, "delete an integration", err, "retired, never deleted")
}

// TestVendorDeviceOfAnotherBuilding: the database refuses a device under
// an integration that does not cover its building.
func TestVendorDeviceOfAnotherBuilding(t *testing.T) {
	w := newUnlockWorld(t, "UTC", time.Time{})
	v, _ := dbtest.CreateVendor(t, w.UnlockWorld, "Acme Cloud", w.A)
	devB, _ := w.enabledDevice(t, w.B)
	_, err := w.d.Writer().Exec(`UPDATE devices SET vendor_integration_id = ? WHERE id = ?`, v.ID, devB)
	wantRefused(t, "direct update", err, "must cover its building")
}

// TestVendorRequestsExpire: the claims of signed requests are kept until
// they expire, and expired ones go as new ones arrive.
func TestVendorRequestsExpire(t *testing.T) {
	w := newUnlockWorld(t, "UTC", time.Time{})
	v, _ := dbtest.CreateVendor(t, w.UnlockWorld, "Acme Cloud", w.A)
	devA, _ := w.enabledDevice(t, w.A)
	ev := func(id string) []doorledger.UnlockEvent {
		return []doorledger.UnlockEvent{unlockEv(devA, id, w.Now.Add(-time.Minute), doorledger.UnlockGranted)}
	}
	for _, id := range []string{"e1", "e2"} {
		if _, err := w.Vendors.RecordVendorEvents(context.Background(), dbtest.VendorRequest(v.ID, id), ev(id)); err != nil {
			t.Fatal(err)
		}
	}
	if n := w.count(t, `SELECT COUNT(*) FROM vendor_requests`); n != 2 {
		t.Errorf("remembered requests %d, want 2", n)
	}
	w.exec(t, `UPDATE vendor_requests SET expires_at = '2000-01-01T00:00:00.000000Z'`)
	if _, err := w.Vendors.RecordVendorEvents(context.Background(), dbtest.VendorRequest(v.ID, "later"), ev("e3")); err != nil {
		t.Fatal(err)
	}
	if n := w.count(t, `SELECT COUNT(*) FROM vendor_requests`); n != 1 {
		t.Errorf("remembered requests after expiry %d, want 1", n)
	}
}
