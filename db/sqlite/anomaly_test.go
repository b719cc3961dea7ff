package sqlite_test

import (
	"context"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
)

func ghostEv(building int64, id string, w *unlockWorld) doorledger.UnlockEvent {
	return dbtest.GhostEv(building, id, w.UnlockWorld)
}

// ackN acknowledges, keeping only the error.
func ackN(w *unlockWorld, ctx context.Context, building int64, ids []int64, note string) error {
	_, err := w.svc.AcknowledgeAnomalies(ctx, building, ids, note)
	return err
}

// The database itself keeps acknowledgements append-only, and accepts one
// only for an anomalous event of the same building; the retention purge still
// deletes an acknowledged event, and the acknowledgement stays.
func TestAnomalyAcksAppendOnly(t *testing.T) {
	w := newUnlockWorld(t, "UTC", time.Time{})
	dev, _ := w.enabledDevice(t, w.A)
	old := w.Now.AddDate(0, 0, -40)
	oldGhost := ghostEv(w.A, "gh-old", w)
	oldGhost.OccurredAt, oldGhost.ReceivedAt = old, old
	w.record(t, unlockEv(dev, "fine", w.Now.Add(-time.Minute), doorledger.UnlockGranted), ghostEv(w.A, "gh-1", w), ghostEv(w.A, "gh-2", w), oldGhost)
	fine, gh1, gh2, ghOld := w.EventID(t, w.A, "fine"), w.EventID(t, w.A, "gh-1"), w.EventID(t, w.A, "gh-2"), w.EventID(t, w.A, "gh-old")
	if err := ackN(w, uctx(w.MgrA), w.A, []int64{gh1, ghOld}, "courier's account reported"); err != nil {
		t.Fatal(err)
	}
	insert := `INSERT INTO anomaly_acks (event_id, building_id, acked_at, actor, note) VALUES (?, ?, '2026-01-01T00:00:00.000000Z', 'sql', 'x')`
	for _, c := range []struct {
		what  string
		query string
		args  []any
	}{
		{"change a note", `UPDATE anomaly_acks SET note = 'nothing happened' WHERE event_id = ?`, []any{gh1}},
		{"delete one", `DELETE FROM anomaly_acks WHERE event_id = ?`, []any{gh1}},
		{"a second for an event", insert, []any{gh1, w.A}},
		{"one for an event that is not anomalous", insert, []any{fine, w.A}},
		{"one for an event that does not exist", insert, []any{gh1 + 1000, w.A}},
		{"one under another building", insert, []any{gh2, w.B}},
		{"an empty note", `INSERT INTO anomaly_acks (event_id, building_id, acked_at, actor, note) VALUES (?, ?, 'x', 'sql', '  ')`, []any{gh2, w.A}},
	} {
		if _, err := w.d.Writer().Exec(c.query, c.args...); err == nil {
			t.Errorf("%s: allowed", c.what)
		}
	}
	if e := w.Event(t, w.A, "gh-1"); e.AckNote != "courier's account reported" {
		t.Errorf("note now %q", e.AckNote)
	}
	if e := w.Event(t, w.A, "gh-2"); !e.OpenAnomaly() {
		t.Errorf("gh-2 acknowledged behind the service's back: %+v", e)
	}
	// The refusals above are the triggers' and constraints', not a typo's: the
	// same insert is accepted for an open anomaly of the building.
	if _, err := w.d.Writer().Exec(insert, gh2, w.A); err != nil {
		t.Fatalf("a well-formed acknowledgement refused: %v", err)
	}

	if _, err := w.svc.UpdateUnlockSettings(uctx(w.MgrA), w.A, doorledger.UnlockSettings{RetentionDays: 30, BurstCount: 20, BurstMinutes: 10}); err != nil {
		t.Fatal(err)
	}
	if n, err := w.svc.Purge(sys(), *w.Now); err != nil || n != 1 {
		t.Fatalf("purge: %d %v, want the old event deleted", n, err)
	}
	if n := w.count(t, `SELECT COUNT(*) FROM unlock_events WHERE id = ?`, ghOld); n != 0 {
		t.Fatalf("the old acknowledged event was not purged")
	}
	if n := w.count(t, `SELECT COUNT(*) FROM anomaly_acks WHERE event_id IN (?, ?)`, gh1, ghOld); n != 2 {
		t.Fatalf("acknowledgements left: %d, want both", n)
	}
}
