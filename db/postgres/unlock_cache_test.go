package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
)

// The committer caches devices and buildings between transactions; changes
// made by any other code path, even in plain SQL (or by another instance),
// must show in the next flags.
func TestUnlockAnomaliesFollowChanges(t *testing.T) {
	s, d := openServices(t)
	w := dbtest.NewUnlockWorld(t, s, "UTC", time.Time{})
	ctx := context.Background()
	exec := func(sql string, args ...any) int64 {
		t.Helper()
		var id int64
		rows, err := d.Pool().Query(ctx, sql, args...)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
		}
		if rows.Close(); rows.Err() != nil {
			t.Fatalf("%s: %v", sql, rows.Err())
		}
		return id
	}
	now := *w.Now
	unlockEv := dbtest.UnlockEv
	dev, consent := w.EnabledDevice(t, w.A)
	dev2, consent2 := w.EnabledDevice(t, w.A)
	at := func(d time.Duration) time.Time { return now.Add(d) }
	w.Record(t, unlockEv(dev, "1", at(-5*time.Minute), doorledger.UnlockGranted), unlockEv(dev2, "1", at(-5*time.Minute), doorledger.UnlockGranted))
	// Revoked in plain SQL: the device first, as the database insists.
	exec(`UPDATE devices SET desired_state = 'disabled', desired_version = 2 WHERE id = $1`, dev)
	exec(`INSERT INTO commands (device_id, building_id, state, version, reason, requested_by, requested_at, status)
		SELECT id, building_id, 'disabled', 2, 'consent withdrawn', 'test', $1, 'sent' FROM devices WHERE id = $2`, at(-4*time.Minute), dev)
	exec(`UPDATE consents SET status = 'withdrawn', status_at = $1 WHERE id = $2`, at(-4*time.Minute), consent)
	w.Record(t, unlockEv(dev, "2", at(-3*time.Minute), doorledger.UnlockGranted))
	if e := w.Event(t, w.A, "2"); !e.HasAnomaly(doorledger.AnomalyAfterRevocation) || !e.HasAnomaly(doorledger.AnomalyWithoutConsent) {
		t.Fatalf("after a revocation made elsewhere: %v", e.Anomalies)
	}
	// Disabled by a manager (consent still signed), then the consent withdrawn
	// with no change to the device.
	exec(`UPDATE devices SET desired_state = 'disabled', desired_version = 2 WHERE id = $1`, dev2)
	exec(`INSERT INTO commands (device_id, building_id, state, version, reason, requested_by, requested_at) VALUES ($1, $2, 'disabled', 2, 'x', 'test', $3)`,
		dev2, w.A, at(-3*time.Minute))
	w.Record(t, unlockEv(dev2, "3", at(-2*time.Minute), doorledger.UnlockGranted))
	if e := w.Event(t, w.A, "3"); !slices.Equal(e.Anomalies, []string{doorledger.AnomalyAfterRevocation}) {
		t.Fatalf("disabled, consented: %v", e.Anomalies)
	}
	exec(`UPDATE consents SET status = 'withdrawn', status_at = $1 WHERE id = $2`, at(-90*time.Second), consent2)
	w.Record(t, unlockEv(dev2, "4", at(-time.Minute), doorledger.UnlockGranted))
	if e := w.Event(t, w.A, "4"); !e.HasAnomaly(doorledger.AnomalyWithoutConsent) {
		t.Fatalf("after the consent was withdrawn: %v", e.Anomalies)
	}
	// Delivery hours changed in plain SQL.
	dev3, _ := w.EnabledDevice(t, w.A)
	w.Record(t, unlockEv(dev3, "5", at(-time.Minute), doorledger.UnlockGranted))
	exec(`UPDATE buildings SET delivery_hours = 'never' WHERE id = $1`, w.A)
	w.Record(t, unlockEv(dev3, "6", at(-time.Minute), doorledger.UnlockGranted))
	if e := w.Event(t, w.A, "5"); len(e.Anomalies) != 0 {
		t.Fatalf("before: %v", e.Anomalies)
	}
	if e := w.Event(t, w.A, "6"); !slices.Equal(e.Anomalies, []string{doorledger.AnomalyOutsideHours}) {
		t.Fatalf("after the hours changed: %v", e.Anomalies)
	}
	// A device registered after the cache was filled is found by its serial.
	w.Record(t, doorledger.UnlockEvent{DeviceRef: "LATE-1", BuildingID: w.A, EventID: "7", OccurredAt: at(0), Method: "keypad", Result: doorledger.UnlockDenied})
	late := exec(`INSERT INTO devices (building_id, vendor, model, serial, location, origin, unconsented, created_at)
		VALUES ($1, 'V', '', 'LATE-1', 'x', 'found', true, $2) RETURNING id`, w.A, now)
	w.Record(t, doorledger.UnlockEvent{DeviceRef: "LATE-1", BuildingID: w.A, EventID: "8", OccurredAt: at(0), Method: "keypad", Result: doorledger.UnlockDenied})
	if e := w.Event(t, w.A, "7"); e.DeviceID != 0 {
		t.Fatalf("before registration: %+v", e)
	}
	if e := w.Event(t, w.A, "8"); e.DeviceID != late {
		t.Fatalf("after registration: %+v, want device %d", e, late)
	}
}
