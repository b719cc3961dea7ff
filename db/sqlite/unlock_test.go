package sqlite_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/sqlite"
)

// unlockWorld is the suite's unlock world (two buildings with their people)
// with the database under it. Its consents and devices are written directly,
// so the tests here depend only on the schema, not on the other services'
// code paths.
type unlockWorld struct {
	*dbtest.UnlockWorld
	d      *sqlite.DB
	svc    *sqlite.UnlockService
	serial int
}

// newUnlockWorld builds the world with building A in time zone tzA (B is UTC),
// the clock at start if set (dbtest.NewUnlockWorld).
func newUnlockWorld(tb testing.TB, tzA string, start time.Time) *unlockWorld {
	tb.Helper()
	s, d := openServices(tb)
	return &unlockWorld{UnlockWorld: dbtest.NewUnlockWorld(tb, s, tzA, start), d: d, svc: s.Unlocks.(*sqlite.UnlockService)}
}

func uctx(u *doorledger.User) context.Context { return dbtest.As(u) }

var unlockEv = dbtest.UnlockEv

func udb(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

func (w *unlockWorld) exec(tb testing.TB, query string, args ...any) int64 {
	tb.Helper()
	res, err := w.d.Writer().Exec(query, args...)
	if err != nil {
		tb.Fatalf("%s: %v", strings.Fields(query)[0], err)
	}
	id, _ := res.LastInsertId()
	return id
}

func (w *unlockWorld) count(tb testing.TB, query string, args ...any) int {
	tb.Helper()
	var n int
	if err := w.d.Reader().QueryRow(query, args...).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// enabledDevice makes a device enabled for the last 20 days under a consent
// signed then, valid for a year.
func (w *unlockWorld) enabledDevice(tb testing.TB, building int64) (deviceID, consentID int64) {
	tb.Helper()
	return w.enabledDeviceUntil(tb, building, w.Now.AddDate(1, 0, 0))
}

// enabledDeviceUntil is enabledDevice with a consent that expires at expires.
func (w *unlockWorld) enabledDeviceUntil(tb testing.TB, building int64, expires time.Time) (deviceID, consentID int64) {
	tb.Helper()
	signer := w.SignerA
	if building == w.B {
		signer = w.SignerB
	} else if building != w.A { // a building of a benchmark: its first signer
		if err := w.d.Reader().QueryRow(`SELECT id FROM signers WHERE building_id = ? ORDER BY id LIMIT 1`, building).Scan(&signer); err != nil {
			tb.Fatalf("a signer of building %d: %v", building, err)
		}
	}
	since := udb(w.Now.AddDate(0, 0, -20))
	consentID = w.exec(tb, `INSERT INTO consents (building_id, installer_id, signer_id, vendor, model, serial, location, opens, mode, requested_at, status, status_at,
		terms, terms_sha256, typed_name, signature_png, signed_at, signed_tz, signed_ip, signed_ua, method, expires_at)
		VALUES (?, ?, ?, 'Acme', 'K1', 'C-1', 'lobby', 'front door', 'link', ?, 'awaiting_signature', ?,
		'the terms', 'abc123', 'Pat Owner', x'89504e47', ?, 'UTC', '192.0.2.1', 'test', 'link', ?)`,
		building, w.InstA.ID, signer, since, since, since, udb(expires))
	signDirectly(tb, w.d.Writer(), consentID, "signed")
	w.serial++
	deviceID = w.exec(tb, `INSERT INTO devices (building_id, vendor, model, serial, location, installer_id, consent_id, origin,
		desired_state, desired_version, created_at) VALUES (?, 'Acme', 'K1', ?, 'lobby panel', ?, ?, 'consent_request', 'enabled', 1, ?)`,
		building, fmt.Sprintf("SN-%05d", w.serial), w.InstA.ID, consentID, since)
	w.exec(tb, `INSERT INTO commands (device_id, building_id, state, version, reason, requested_by, requested_at, status, confirmed_at)
		VALUES (?, ?, 'enabled', 1, 'consented', 'test', ?, 'confirmed', ?)`, deviceID, building, since, since)
	return deviceID, consentID
}

// revoke withdraws the consent and disables the device at the given time, as
// the consent service does (device first: the database insists).
func (w *unlockWorld) revoke(tb testing.TB, deviceID, consentID int64, at time.Time) {
	tb.Helper()
	w.exec(tb, `UPDATE devices SET desired_state = 'disabled', desired_version = 2 WHERE id = ?`, deviceID)
	w.exec(tb, `INSERT INTO commands (device_id, building_id, state, version, reason, requested_by, requested_at, status)
		SELECT id, building_id, 'disabled', 2, 'consent withdrawn', 'test', ?, 'sent' FROM devices WHERE id = ?`, udb(at), deviceID)
	w.exec(tb, `UPDATE consents SET status = 'withdrawn', status_at = ? WHERE id = ?`, udb(at), consentID)
}

func (w *unlockWorld) record(tb testing.TB, events ...doorledger.UnlockEvent) *doorledger.ImportResult {
	tb.Helper()
	res, err := w.svc.RecordUnlocksResult(context.Background(), events)
	if err != nil {
		tb.Fatalf("record: %v", err)
	}
	return res
}

// Without consent only: enabled, but its consent had run out by then (the
// lapse job not yet run). Written around the services: a consent that ends
// in an hour. (The other anomalies: dbtest's UnlockAnomalies.)
func TestUnlockAnomalyLapsedConsent(t *testing.T) {
	w := newUnlockWorld(t, "America/New_York", time.Time{})
	now := *w.Now
	// An event two hours ahead: not far enough to be skew.
	lapsing, _ := w.enabledDeviceUntil(t, w.A, now.Add(time.Hour))
	w.record(t, unlockEv(lapsing, "lapsed", now.Add(2*time.Hour), doorledger.UnlockGranted))
	if got := w.Event(t, w.A, "lapsed").Anomalies; !slices.Equal(got, []string{doorledger.AnomalyWithoutConsent}) {
		t.Errorf("lapsed: anomalies %v, want without_consent", got)
	}
}

func TestUnlockRetentionPurge(t *testing.T) {
	w := newUnlockWorld(t, "UTC", time.Time{})
	dev, _ := w.enabledDevice(t, w.A)
	devB, _ := w.enabledDevice(t, w.B)
	now := *w.Now
	old := now.AddDate(0, 0, -40)
	if _, err := w.svc.UpdateUnlockSettings(uctx(w.MgrA), w.A, doorledger.UnlockSettings{RetentionDays: 30, BurstCount: 20, BurstMinutes: 10}); err != nil {
		t.Fatal(err)
	}
	oldEv := func(d int64, id string) doorledger.UnlockEvent {
		e := unlockEv(d, id, old, doorledger.UnlockGranted)
		e.ReceivedAt = old
		return e
	}
	w.record(t, oldEv(dev, "old-1"), oldEv(dev, "old-2"), oldEv(devB, "old-b"),
		unlockEv(dev, "skewed-old", old, doorledger.UnlockGranted), // received now: kept until that is old too
		unlockEv(dev, "recent", now.AddDate(0, 0, -10), doorledger.UnlockGranted))
	// Nothing else may delete or change an event.
	for _, stmt := range []string{`DELETE FROM unlock_events WHERE event_id = 'recent'`, `DELETE FROM unlock_events WHERE event_id = 'skewed-old'`,
		`UPDATE unlock_events SET result = 'denied' WHERE event_id = 'old-1'`} {
		if _, err := w.d.Writer().Exec(stmt); err == nil {
			t.Errorf("%s: allowed", stmt)
		}
	}
	n, err := w.svc.Purge(sys(), now)
	if err != nil || n != 2 {
		t.Fatalf("purged %d, %v; want 2", n, err)
	}
	var left []string
	rows, _ := w.d.Reader().Query(`SELECT event_id FROM unlock_events ORDER BY event_id`)
	for rows.Next() {
		var s string
		rows.Scan(&s)
		left = append(left, s)
	}
	rows.Close()
	if !slices.Equal(left, []string{"old-b", "recent", "skewed-old"}) {
		t.Fatalf("left: %q", left)
	}
	if detail := w.JournalEntry(t, w.A, "unlocks.purge").Detail; !strings.Contains(detail, `"deleted":2`) || !strings.Contains(detail, `"retention_days":30`) {
		t.Fatalf("purge audit: %q", detail)
	}
	if n, err := w.svc.Purge(sys(), now); err != nil || n != 0 {
		t.Fatalf("second purge: %d %v", n, err)
	}
	if c := w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE action = 'unlocks.purge'`); c != 1 {
		t.Fatalf("purge audit entries: %d", c)
	}
}

// The committer caches devices and buildings between transactions; changes
// made by any other code path, even in plain SQL, must show in the next flags.
func TestUnlockAnomaliesFollowChanges(t *testing.T) {
	w := newUnlockWorld(t, "UTC", time.Time{})
	now := *w.Now
	dev, consent := w.enabledDevice(t, w.A)
	dev2, consent2 := w.enabledDevice(t, w.A)
	at := func(d time.Duration) time.Time { return now.Add(d) }
	w.record(t, unlockEv(dev, "1", at(-5*time.Minute), doorledger.UnlockGranted), unlockEv(dev2, "1", at(-5*time.Minute), doorledger.UnlockGranted))
	w.revoke(t, dev, consent, at(-4*time.Minute))
	w.record(t, unlockEv(dev, "2", at(-3*time.Minute), doorledger.UnlockGranted))
	if e := w.Event(t, w.A, "2"); !e.HasAnomaly(doorledger.AnomalyAfterRevocation) || !e.HasAnomaly(doorledger.AnomalyWithoutConsent) {
		t.Fatalf("after a revocation made elsewhere: %v", e.Anomalies)
	}
	// Disabled by a manager (consent still signed), then the consent withdrawn
	// with no change to the device.
	w.exec(t, `UPDATE devices SET desired_state = 'disabled', desired_version = 2 WHERE id = ?`, dev2)
	w.exec(t, `INSERT INTO commands (device_id, building_id, state, version, reason, requested_by, requested_at) VALUES (?, ?, 'disabled', 2, 'x', 'test', ?)`,
		dev2, w.A, udb(at(-3*time.Minute)))
	w.record(t, unlockEv(dev2, "3", at(-2*time.Minute), doorledger.UnlockGranted))
	if e := w.Event(t, w.A, "3"); !slices.Equal(e.Anomalies, []string{doorledger.AnomalyAfterRevocation}) {
		t.Fatalf("disabled, consented: %v", e.Anomalies)
	}
	w.exec(t, `UPDATE consents SET status = 'withdrawn', status_at = ? WHERE id = ?`, udb(at(-90*time.Second)), consent2)
	w.record(t, unlockEv(dev2, "4", at(-time.Minute), doorledger.UnlockGranted))
	if e := w.Event(t, w.A, "4"); !e.HasAnomaly(doorledger.AnomalyWithoutConsent) {
		t.Fatalf("after the consent was withdrawn: %v", e.Anomalies)
	}
	// Delivery hours changed in plain SQL.
	dev3, _ := w.enabledDevice(t, w.A)
	w.record(t, unlockEv(dev3, "5", at(-time.Minute), doorledger.UnlockGranted))
	w.exec(t, `UPDATE buildings SET delivery_hours = 'never' WHERE id = ?`, w.A)
	w.record(t, unlockEv(dev3, "6", at(-time.Minute), doorledger.UnlockGranted))
	if e := w.Event(t, w.A, "5"); len(e.Anomalies) != 0 {
		t.Fatalf("before: %v", e.Anomalies)
	}
	if e := w.Event(t, w.A, "6"); !slices.Equal(e.Anomalies, []string{doorledger.AnomalyOutsideHours}) {
		t.Fatalf("after the hours changed: %v", e.Anomalies)
	}
	// A device registered after the cache was filled is found by its serial.
	var serial string
	w.d.Reader().QueryRow(`SELECT serial FROM devices WHERE id = ?`, dev3).Scan(&serial)
	w.record(t, doorledger.UnlockEvent{DeviceRef: "LATE-1", BuildingID: w.A, EventID: "7", OccurredAt: at(0), Method: "keypad", Result: doorledger.UnlockDenied})
	late := w.exec(t, `INSERT INTO devices (building_id, vendor, model, serial, location, origin, unconsented, created_at) VALUES (?, 'V', '', 'LATE-1', 'x', 'found', 1, ?)`, w.A, udb(now))
	w.record(t, doorledger.UnlockEvent{DeviceRef: "LATE-1", BuildingID: w.A, EventID: "8", OccurredAt: at(0), Method: "keypad", Result: doorledger.UnlockDenied})
	if e := w.Event(t, w.A, "7"); e.DeviceID != 0 {
		t.Fatalf("before registration: %+v", e)
	}
	if e := w.Event(t, w.A, "8"); e.DeviceID != late {
		t.Fatalf("after registration: %+v, want device %d", e, late)
	}
}
