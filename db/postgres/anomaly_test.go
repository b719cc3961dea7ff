package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/postgres"
)

// unlockBuilding is a building with a manager and the unlock service, made
// through the services (no device needed: events of a device the building
// does not know are anomalies).
type unlockBuilding struct {
	d        *postgres.DB
	now      *time.Time
	unlocks  *postgres.UnlockService
	building int64
	mgr      *doorledger.User
}

func newUnlockBuilding(t *testing.T) *unlockBuilding {
	t.Helper()
	d, now := MustOpenDB(t)
	b, err := postgres.NewBuildingService(d).CreateBuilding(sys(), doorledger.BuildingInput{Name: "Alder Court", Address: "1 Alder Court", Timezone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := postgres.NewUserService(d).CreateUser(sys(), doorledger.NewUser{Email: "m@example.com", Name: "M", Role: doorledger.RoleManager, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.NewBuildingService(d).GrantAccess(sys(), b.ID, mgr.ID); err != nil {
		t.Fatal(err)
	}
	return &unlockBuilding{d: d, now: now, unlocks: postgres.NewUnlockService(d), building: b.ID, mgr: mgr}
}

// ghost records an event of an unknown device at t and returns its id.
func (w *unlockBuilding) ghost(t *testing.T, id string, at time.Time) int64 {
	t.Helper()
	ev := doorledger.UnlockEvent{BuildingID: w.building, DeviceRef: "GHOST-7", EventID: id, OccurredAt: at, ReceivedAt: at,
		Method: doorledger.MethodKeypad, ActorRef: "pkg-" + id, Result: doorledger.UnlockGranted}
	if err := w.unlocks.RecordUnlocks(context.Background(), []doorledger.UnlockEvent{ev}); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := w.d.Pool().QueryRow(context.Background(), `SELECT id FROM unlock_events WHERE event_id = $1`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Acknowledgements are never changed or deleted, not even by TRUNCATE
// (which fires no row trigger); nor are redaction records; the service's
// rows pass, the purge of an acknowledged event keeps its acknowledgement.
func TestAnomalyAcksAppendOnly(t *testing.T) {
	w := newUnlockBuilding(t)
	ctx := context.Background()
	gh1, gh2 := w.ghost(t, "gh-1", w.now.Add(-time.Minute)), w.ghost(t, "gh-2", w.now.Add(-time.Minute))
	ghOld := w.ghost(t, "gh-old", w.now.AddDate(0, 0, -40))
	if _, err := w.unlocks.AcknowledgeAnomalies(dbtest.As(w.mgr), w.building, []int64{gh1, ghOld}, "courier's account reported"); err != nil {
		t.Fatal(err)
	}
	exec := func(sql string, args ...any) error {
		_, err := w.d.Pool().Exec(ctx, sql, args...)
		return err
	}
	insert := `INSERT INTO anomaly_acks (event_id, building_id, acked_at, actor, note) VALUES ($1, $2, now(), 'sql', 'x')`
	wantRefused(t, "change a note", exec(`UPDATE anomaly_acks SET note = 'nothing happened' WHERE event_id = $1`, gh1), "anomaly acknowledgements are never changed")
	wantRefused(t, "delete one", exec(`DELETE FROM anomaly_acks WHERE event_id = $1`, gh1), "anomaly acknowledgements are never deleted")
	wantRefused(t, "truncate them", exec(`TRUNCATE anomaly_acks`), "anomaly acknowledgements are never deleted")
	wantRefused(t, "one for an event that does not exist", exec(insert, gh1+1000, w.building), "only an anomalous unlock event of the building can be acknowledged")
	if err := exec(insert, gh1, w.building); err == nil {
		t.Error("a second acknowledgement of an event: allowed")
	}
	if err := exec(`INSERT INTO anomaly_acks (event_id, building_id, acked_at, actor, note) VALUES ($1, $2, now(), 'sql', '  ')`, gh2, w.building); err == nil {
		t.Error("an empty note: allowed")
	}
	wantRefused(t, "truncate unlock events", exec(`TRUNCATE unlock_events CASCADE`), "unlock events are deleted only by the retention purge, once past the building's retention")
	if err := exec(`INSERT INTO unlock_redactions (unlock_id, redaction_id, leaf, redacted) VALUES ($1, 1, '\x`+zeros32+`', '\x`+zeros32+`')`, gh2); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "change a redaction record", exec(`UPDATE unlock_redactions SET redaction_id = 2`), "redaction records are never changed")
	wantRefused(t, "delete a redaction record", exec(`DELETE FROM unlock_redactions`), "redaction records are never deleted")
	wantRefused(t, "truncate redaction records", exec(`TRUNCATE unlock_redactions`), "redaction records are never deleted")
	page, err := w.unlocks.History(sys(), doorledger.UnlockFilter{BuildingID: w.building})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range page.Events {
		if e.ID == gh1 && e.AckNote != "courier's account reported" {
			t.Errorf("note now %q", e.AckNote)
		}
		if e.ID == gh2 && !e.OpenAnomaly() {
			t.Errorf("gh-2 acknowledged behind the service's back: %+v", e)
		}
	}
	// The refusals above are the rules', not a typo's: the same insert is
	// accepted for an open anomaly of the building.
	if err := exec(insert, gh2, w.building); err != nil {
		t.Fatalf("a well-formed acknowledgement refused: %v", err)
	}

	if _, err := w.unlocks.UpdateUnlockSettings(dbtest.As(w.mgr), w.building, doorledger.UnlockSettings{RetentionDays: 30, BurstCount: 20, BurstMinutes: 10}); err != nil {
		t.Fatal(err)
	}
	if n, err := w.unlocks.Purge(sys(), *w.now); err != nil || n != 1 {
		t.Fatalf("purge: %d %v, want the old event deleted", n, err)
	}
	var events, acks int
	if err := w.d.Pool().QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM unlock_events WHERE id = $1), (SELECT COUNT(*) FROM anomaly_acks WHERE event_id IN ($1, $2))`,
		ghOld, gh1).Scan(&events, &acks); err != nil {
		t.Fatal(err)
	}
	if events != 0 || acks != 2 {
		t.Fatalf("after the purge: %d old events, %d acknowledgements; want 0 and 2", events, acks)
	}
}
