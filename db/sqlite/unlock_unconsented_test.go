package sqlite_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

// A device recorded as found without consent has no business at
// the door at all: each attempt through it is an anomaly, refused by the
// device or not. A device that only waits for its consent and refuses
// couriers is doing what it should.
func TestUnlockUnconsentedDeniedIsAnomaly(t *testing.T) {
	w := newUnlockWorld(t, "UTC", time.Time{})
	now := *w.Now
	found, err := sqlite.NewDeviceService(w.d).RecordFoundDevice(uctx(w.MgrA), w.A, doorledger.DeviceDetails{
		Vendor: "Unknown", Serial: "FOUND-1", Location: "behind the mailboxes"})
	if err != nil {
		t.Fatal(err)
	}
	if !found.Unconsented {
		t.Fatalf("a found device is not flagged unconsented: %+v", found)
	}
	awaiting := w.exec(t, `INSERT INTO devices (building_id, vendor, model, serial, location, installer_id, origin, created_at)
		VALUES (?, 'Acme', 'K1', 'AWAIT-1', 'lobby panel', ?, 'consent_request', ?)`, w.A, w.InstA.ID, udb(now))
	before := len(w.Alerts(t, w.MgrAEmail))

	w.record(t,
		unlockEv(found.ID, "found-denied", now.Add(-2*time.Minute), doorledger.UnlockDenied),
		unlockEv(found.ID, "found-granted", now.Add(-time.Minute), doorledger.UnlockGranted),
		unlockEv(awaiting, "awaiting-denied", now.Add(-time.Minute), doorledger.UnlockDenied),
	)
	for _, tt := range []struct {
		id   string
		want []string
	}{
		{"found-denied", []string{doorledger.AnomalyWithoutConsent}},
		{"found-granted", []string{doorledger.AnomalyAfterRevocation, doorledger.AnomalyWithoutConsent}},
		{"awaiting-denied", nil},
	} {
		if got := w.Event(t, w.A, tt.id).Anomalies; !slices.Equal(got, tt.want) {
			t.Errorf("%s: anomalies %v, want %v", tt.id, got, tt.want)
		}
	}
	var denied []string
	for _, s := range w.Alerts(t, w.MgrAEmail)[before:] {
		if strings.Contains(s, "without_consent") {
			denied = append(denied, s)
		}
	}
	if len(denied) == 0 {
		t.Errorf("no anomaly alert for the found device's attempts; alerts: %q", w.Alerts(t, w.MgrAEmail)[before:])
	}
	// The device is told to disable once, however many attempts it makes.
	if n := w.count(t, `SELECT COUNT(*) FROM commands WHERE device_id = ? AND state = 'disabled'`, found.ID); n != 1 {
		t.Errorf("%d disable commands for the found device, want 1", n)
	}
	// The anomalies filter finds the denied attempt.
	page, err := w.svc.History(sys(), doorledger.UnlockFilter{BuildingID: w.A, Result: doorledger.UnlockDenied, AnomaliesOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 || page.Events[0].EventID != "found-denied" {
		t.Errorf("denied anomalies: %d events, want found-denied only", len(page.Events))
	}
}
