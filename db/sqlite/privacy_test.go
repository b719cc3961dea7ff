package sqlite_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

var fullDisclosure = doorledger.VendorDisclosureInput{LegalName: "Acme Access Systems LLC", DataCollected: "time of each door opening, courier app account id",
	Purpose: "let couriers deliver parcels into the lobby", Retention: "12 months", PolicyURL: "https://acme.example/privacy"}

// Under the profile, the database refuses to enable a device whose vendor
// disclosure record is missing or incomplete, whichever path writes the row;
// the service says why first. Buildings without the profile are unchanged.
func TestPrivacyEnableNeedsDisclosure(t *testing.T) {
	w := newUnlockWorld(t, "UTC", time.Time{})
	dev, _ := w.enabledDevice(t, w.A)
	devB, _ := w.enabledDevice(t, w.B)
	privacy, devices := sqlite.NewPrivacyService(w.d), sqlite.NewDeviceService(w.d)
	w.exec(t, `UPDATE devices SET desired_state = 'disabled', desired_version = 2 WHERE id IN (?, ?)`, dev, devB)
	if err := privacy.SetPrivacyProfile(uctx(w.BoardA), w.A, doorledger.PrivacyProfileTDPA); doorledger.ErrorCode(err) == "" {
		t.Fatalf("the board set the profile: %v", err)
	}
	if err := privacy.SetPrivacyProfile(uctx(w.MgrA), w.A, doorledger.PrivacyProfileTDPA); err != nil {
		t.Fatal(err)
	}
	refused := func(stmt string, args ...any) {
		t.Helper()
		if _, err := w.d.Writer().Exec(stmt, args...); err == nil || !strings.Contains(err.Error(), "vendor disclosure") {
			t.Errorf("%s: %v, want refused by the database", stmt, err)
		}
	}
	enable := `UPDATE devices SET desired_state = 'enabled', desired_version = 3 WHERE id = ?`
	refused(enable, dev)
	_, err := devices.SetDesiredState(uctx(w.MgrA), dev, doorledger.StateEnabled, "")
	if doorledger.ErrorCode(err) != doorledger.ECONFLICT || !strings.Contains(doorledger.ErrorMessage(err), "vendor disclosure record") {
		t.Fatalf("enable without disclosure: %v", err)
	}
	// An incomplete record (written around the form) does not do either.
	incomplete := w.exec(t, `INSERT INTO vendor_disclosures (building_id, legal_name, data_collected, purpose, retention, policy_url, created_at, updated_at)
		VALUES (?, 'Acme Access Systems LLC', 'door openings', 'deliveries', '', 'https://acme.example/privacy', 'x', 'x')`, w.A)
	w.exec(t, `UPDATE devices SET vendor_disclosure_id = ? WHERE id = ?`, incomplete, dev)
	refused(enable, dev)
	if _, err := devices.SetDesiredState(uctx(w.MgrA), dev, doorledger.StateEnabled, ""); doorledger.ErrorCode(err) != doorledger.ECONFLICT ||
		!strings.Contains(doorledger.ErrorMessage(err), "lacks retention") {
		t.Fatalf("enable with an incomplete disclosure: %v", err)
	}
	// Nor one of another building.
	other, err := privacy.SaveVendorDisclosure(uctx(w.MgrB), w.B, 0, fullDisclosure)
	if err != nil {
		t.Fatal(err)
	}
	refused(`UPDATE devices SET vendor_disclosure_id = ? WHERE id = ?`, other.ID, dev)
	if err := privacy.SetDeviceDisclosure(uctx(w.MgrA), w.A, dev, other.ID); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("another building's record: %v", err)
	}
	// The form wants every field.
	if _, err := privacy.SaveVendorDisclosure(uctx(w.MgrA), w.A, 0, doorledger.VendorDisclosureInput{LegalName: "Acme"}); doorledger.ErrorCode(err) != doorledger.EINVALID {
		t.Fatalf("incomplete form: %v", err)
	}
	full, err := privacy.SaveVendorDisclosure(uctx(w.MgrA), w.A, 0, fullDisclosure)
	if err != nil {
		t.Fatal(err)
	}
	if err := privacy.SetDeviceDisclosure(uctx(w.MgrA), w.A, dev, full.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := devices.SetDesiredState(uctx(w.MgrA), dev, doorledger.StateEnabled, ""); err != nil {
		t.Fatalf("enable with a complete disclosure: %v", err)
	}
	// Its record stays complete, and it cannot drop it while enabled.
	refused(`UPDATE vendor_disclosures SET policy_url = '' WHERE id = ?`, full.ID)
	if err := privacy.SetDeviceDisclosure(uctx(w.MgrA), w.A, dev, 0); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("dropping the record of an enabled device: %v", err)
	}
	refused(`UPDATE devices SET vendor_disclosure_id = NULL WHERE id = ?`, dev)
	// Building B has no profile: its device enables as before.
	if _, err := devices.SetDesiredState(uctx(w.MgrB), devB, doorledger.StateEnabled, ""); err != nil {
		t.Fatalf("building without the profile: %v", err)
	}
	st, err := privacy.PrivacyStatus(uctx(w.BoardA), w.A)
	if err != nil || st.Profile != doorledger.PrivacyProfileTDPA || !st.Holds() || len(st.Checks) != 2 {
		t.Fatalf("status: %+v %v", st, err)
	}
}

// The retention job removes the identifiable field of events older than 90
// days in buildings under the profile, under a journal entry; the database
// allows that change alone; counts and anomaly flags stay; the log verifies,
// also after the redacted events are purged, and names a redacted row changed.
func TestPrivacyRedaction(t *testing.T) {
	w := newUnlockWorld(t, "UTC", time.Time{})
	dev, _ := w.enabledDevice(t, w.A)
	devB, _ := w.enabledDevice(t, w.B)
	logs := sqlite.NewLogService(w.d, mustLogKey(t))
	privacy := sqlite.NewPrivacyService(w.d)
	now := *w.Now
	old := now.AddDate(0, 0, -100)
	oldEv := func(d int64, id string, result doorledger.UnlockResult) doorledger.UnlockEvent {
		e := unlockEv(d, id, old, result)
		e.ReceivedAt = old
		return e
	}
	w.record(t, oldEv(dev, "old-1", doorledger.UnlockGranted), oldEv(dev, "old-2", doorledger.UnlockDenied), oldEv(dev, "old-3", doorledger.UnlockGranted),
		oldEv(devB, "old-b", doorledger.UnlockGranted),
		unlockEv(dev, "recent", now.AddDate(0, 0, -10), doorledger.UnlockGranted))
	if _, err := logs.SignHead(sys()); err != nil {
		t.Fatal(err)
	}
	type row struct {
		eventID, actor, result string
		anomalies              int64
		redacted               bool
	}
	rows := func() []row {
		t.Helper()
		var out []row
		rs, err := w.d.Reader().Query(`SELECT event_id, actor_ref, result, anomalies, redaction_id IS NOT NULL FROM unlock_events ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		for rs.Next() {
			var r row
			if err := rs.Scan(&r.eventID, &r.actor, &r.result, &r.anomalies, &r.redacted); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		return out
	}
	before := rows()
	if before[0].anomalies == 0 {
		t.Fatalf("want the old events flagged (before their consent): %+v", before)
	}
	// Without the profile nothing is redacted, and nothing may change an event.
	if n, err := privacy.RedactUnlocks(sys(), now); err != nil || n != 0 {
		t.Fatalf("redacted %d, %v without the profile", n, err)
	}
	for _, stmt := range []string{`UPDATE unlock_events SET actor_ref = '' WHERE event_id = 'old-1'`,
		`UPDATE unlock_events SET actor_ref = '', redaction_id = 1, redacted_at = 'x' WHERE event_id = 'old-1'`} {
		if _, err := w.d.Writer().Exec(stmt); err == nil {
			t.Errorf("%s: allowed", stmt)
		}
	}
	if err := privacy.SetPrivacyProfile(uctx(w.MgrA), w.A, doorledger.PrivacyProfileTDPA); err != nil {
		t.Fatal(err)
	}
	if _, err := privacy.RedactUnlocks(uctx(w.MgrA), now); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Fatalf("a manager ran the job: %v", err)
	}
	n, err := privacy.RedactUnlocks(sys(), now)
	if err != nil || n != 3 {
		t.Fatalf("redacted %d, %v; want 3", n, err)
	}
	after := rows()
	if len(after) != len(before) {
		t.Fatalf("%d events after, %d before", len(after), len(before))
	}
	for i, a := range after {
		b := before[i]
		wantRedacted := strings.HasPrefix(b.eventID, "old-") && b.eventID != "old-b"
		if a.redacted != wantRedacted || (a.actor == "") != wantRedacted || a.result != b.result || a.anomalies != b.anomalies {
			t.Errorf("%s: before %+v, after %+v", b.eventID, b, a)
		}
	}
	if n, err := privacy.RedactUnlocks(sys(), now); err != nil || n != 0 {
		t.Fatalf("second run redacted %d, %v", n, err)
	}
	if detail := w.JournalEntry(t, 0, "unlock.redact").Detail; !strings.Contains(detail, `"events":3`) || !strings.Contains(detail, `"fields":"actor_ref"`) {
		t.Fatalf("journal: %q", detail)
	}
	// A redacted event changes no further, nor does any other column with it.
	for _, stmt := range []string{`UPDATE unlock_events SET result = 'granted' WHERE event_id = 'old-2'`,
		`UPDATE unlock_events SET actor_ref = 'someone' WHERE event_id = 'old-1'`,
		`UPDATE unlock_events SET anomalies = 0 WHERE event_id = 'old-3'`,
		`UPDATE unlock_events SET actor_ref = '', redaction_id = (SELECT id FROM audit_entries WHERE action = 'unlock.redact'), redacted_at = 'x' WHERE event_id = 'recent'`,
		`UPDATE unlock_redactions SET leaf = redacted`, `DELETE FROM unlock_redactions`} {
		if _, err := w.d.Writer().Exec(stmt); err == nil {
			t.Errorf("%s: allowed", stmt)
		}
	}
	// Before the sequencer logs the redaction's entry, the redacted rows
	// check against it already.
	if v, err := logs.Verify(sys()); err != nil || !v.OK() || v.Redacted != 3 {
		t.Fatalf("verify before the redaction is logged: %+v %v", v, err)
	}
	if _, err := logs.SignHead(sys()); err != nil {
		t.Fatal(err)
	}
	v, err := logs.Verify(sys())
	if err != nil || !v.OK() || v.Redacted != 3 {
		t.Fatalf("verify after redaction: %+v %v", v, err)
	}
	st, err := privacy.PrivacyStatus(uctx(w.MgrA), w.A)
	if err != nil || st.Redacted != 3 || !st.Checks[1].Holds {
		t.Fatalf("status: %+v %v", st, err)
	}

	// A redacted row changed behind the database's back is named.
	mustExec := func(q string) {
		t.Helper()
		if _, err := w.d.Writer().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	mustExec(`DROP TRIGGER unlock_events_no_update`)
	mustExec(`UPDATE unlock_events SET result = 'granted' WHERE event_id = 'old-2'`)
	v, err = logs.Verify(sys())
	if err != nil || v.OK() || v.Problem.What != doorledger.LogChanged || v.Problem.Kind != doorledger.LogKindUnlock {
		t.Fatalf("verify after a change to a redacted row: %+v %v", v.Problem, err)
	}
	mustExec(`UPDATE unlock_events SET result = 'denied' WHERE event_id = 'old-2'`)
	// Claiming a row redacted that the redaction does not name is named too.
	mustExec(`UPDATE unlock_events SET actor_ref = '', redaction_id = (SELECT id FROM audit_entries WHERE action = 'unlock.redact') WHERE event_id = 'recent'`)
	if v, err = logs.Verify(sys()); err != nil || v.OK() {
		t.Fatalf("verify after a row claimed redacted: %+v %v", v, err)
	}
}

// A redacted event later deleted by the retention purge leaves the log
// verifying: what its redaction recorded stays.
func TestPrivacyRedactedThenPurged(t *testing.T) {
	w := newUnlockWorld(t, "UTC", time.Time{})
	dev, _ := w.enabledDevice(t, w.A)
	logs := sqlite.NewLogService(w.d, mustLogKey(t))
	privacy := sqlite.NewPrivacyService(w.d)
	now := *w.Now
	var evs []doorledger.UnlockEvent
	for i, days := range []int{120, 110, 100, 95} {
		e := unlockEv(dev, "e"+string(rune('a'+i)), now.AddDate(0, 0, -days), doorledger.UnlockGranted)
		e.ReceivedAt = e.OccurredAt
		evs = append(evs, e)
	}
	w.record(t, evs...)
	logs.SignHead(sys())
	if err := privacy.SetPrivacyProfile(uctx(w.MgrA), w.A, doorledger.PrivacyProfileTDPA); err != nil {
		t.Fatal(err)
	}
	if n, err := privacy.RedactUnlocks(sys(), now); err != nil || n != 4 {
		t.Fatalf("redacted %d %v", n, err)
	}
	if _, err := w.svc.UpdateUnlockSettings(uctx(w.MgrA), w.A, doorledger.UnlockSettings{RetentionDays: 105, BurstCount: 20, BurstMinutes: 10}); err != nil {
		t.Fatal(err)
	}
	if n, err := w.svc.Purge(sys(), now); err != nil || n != 2 {
		t.Fatalf("purged %d %v", n, err)
	}
	logs.SignHead(sys())
	v, err := logs.Verify(sys())
	if err != nil || !v.OK() || v.Redacted != 2 || v.Purged != 2 {
		t.Fatalf("verify: %+v %v", v, err)
	}
	var left []string
	rs, _ := w.d.Reader().Query(`SELECT event_id FROM unlock_events ORDER BY id`)
	for rs.Next() {
		var s string
		rs.Scan(&s)
		left = append(left, s)
	}
	rs.Close()
	if !slices.Equal(left, []string{"ec", "ed"}) {
		t.Fatalf("left %q", left)
	}
}

// Redaction goes by the event's effective time, as retention and reports
// do: an event from a device whose clock runs 400 days ahead, received 100
// days ago, is 100 days old and redacted; and the one change the database
// allows an event cannot move its effective time.
func TestPrivacyRedactionByEffectiveTime(t *testing.T) {
	w := newUnlockWorld(t, "UTC", time.Time{})
	dev, _ := w.enabledDevice(t, w.A)
	logs := sqlite.NewLogService(w.d, mustLogKey(t))
	privacy := sqlite.NewPrivacyService(w.d)
	now := *w.Now
	skewed := unlockEv(dev, "skewed", now.AddDate(0, 0, 400), doorledger.UnlockGranted)
	skewed.ReceivedAt = now.AddDate(0, 0, -100)
	w.record(t, skewed)
	logs.SignHead(sys())
	if err := privacy.SetPrivacyProfile(uctx(w.MgrA), w.A, doorledger.PrivacyProfileTDPA); err != nil {
		t.Fatal(err)
	}
	if n, err := privacy.RedactUnlocks(sys(), now); err != nil || n != 1 {
		t.Fatalf("redacted %d, %v; want the skewed event, 100 days old by the time it was received", n, err)
	}

	// A redaction record for a second old event, then its redaction with
	// the effective time moved: refused; without the move: allowed.
	old := unlockEv(dev, "old", now.AddDate(0, 0, -100), doorledger.UnlockGranted)
	old.ReceivedAt = old.OccurredAt
	w.record(t, old)
	var id, entry int64
	if err := w.d.Reader().QueryRow(`SELECT id FROM unlock_events WHERE event_id = 'old'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	entry = w.JournalEntry(t, 0, "unlock.redact").ID
	if _, err := w.d.Writer().Exec(`INSERT INTO unlock_redactions (unlock_id, redaction_id, leaf, redacted) VALUES (?, ?, zeroblob(32), zeroblob(32))`, id, entry); err != nil {
		t.Fatal(err)
	}
	redact := `UPDATE unlock_events SET actor_ref = '', redaction_id = ?, redacted_at = 'x'%s WHERE id = ?`
	if _, err := w.d.Writer().Exec(fmt.Sprintf(redact, `, effective_at = '2000-01-01T00:00:00.000000Z'`), entry, id); err == nil {
		t.Fatal("a redaction that also moved the effective time was allowed")
	}
	if _, err := w.d.Writer().Exec(fmt.Sprintf(redact, ``), entry, id); err != nil {
		t.Fatalf("the redaction itself: %v", err)
	}
}
