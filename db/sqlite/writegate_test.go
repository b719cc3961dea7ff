package sqlite_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/internal/testtool"
)

// A device's confirming report and a manager's revoke take SQLite's single
// writer ahead of unlock-event batches that were waiting for it before them
// (docs/reliability.md, Load: under 1,000 events a second a revoke waited
// behind one event batch after another). The order in which the
// transactions committed is recorded by temporary triggers on the writer's
// connection, so the test does not look at any clock.
func TestWriterServesCommandsBeforeEventBatches(t *testing.T) {
	w := newDeviceWorld(t)
	unlocks := sqlite.NewUnlockService(w.d)
	unlocks.MaxBatch = 1 // each event batch a transaction of its own
	ctx := context.Background()
	reporter := w.device(t, w.A, w.inst1, w.activeConsent(t, w.A), "Acme")
	revoked := w.device(t, w.A, w.inst1, w.activeConsent(t, w.A), "Acme")
	source := w.device(t, w.A, w.inst1, w.activeConsent(t, w.A), "Acme")
	for _, id := range []int64{reporter, revoked, source} {
		c, err := w.svc.SetDesiredState(w.ctx(w.mgrA), id, enabled, "")
		if err != nil {
			t.Fatal(err)
		}
		w.report(t, id, enabled, c.Version)
	}
	// Statements are prepared on the writer at their first use: before the
	// rounds, as in a running portal.
	if err := unlocks.RecordUnlocks(ctx, []doorledger.UnlockEvent{unlockEv(source, "warm-up", w.now.Add(-time.Hour), doorledger.UnlockGranted)}); err != nil {
		t.Fatal(err)
	}
	// The writer pool has one connection: TEMP objects live on it.
	for _, q := range []string{
		`CREATE TEMP TABLE commit_order (seq INTEGER PRIMARY KEY, what TEXT NOT NULL)`,
		`CREATE TEMP TRIGGER order_event AFTER INSERT ON unlock_events BEGIN INSERT INTO commit_order (what) VALUES ('event ' || NEW.event_id); END`,
		`CREATE TEMP TRIGGER order_confirm AFTER UPDATE OF status ON commands WHEN NEW.status = 'confirmed' BEGIN INSERT INTO commit_order (what) VALUES ('confirm ' || NEW.device_id); END`,
		`CREATE TEMP TRIGGER order_command AFTER INSERT ON commands BEGIN INSERT INTO commit_order (what) VALUES ('command ' || NEW.device_id); END`,
	} {
		if _, err := w.d.Writer().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	// waitingFor waits until n write transactions wait for the writer.
	waitingFor := func(what string, n int) {
		t.Helper()
		testtool.Await(t, what, func() bool { u, b := sqlite.WritersWaiting(w.d); return u+b >= n })
	}

	const batches = 5
	state := enabled
	for round := range 5 {
		state = map[doorledger.DeviceState]doorledger.DeviceState{enabled: disabled, disabled: enabled}[state]
		cmd, err := w.svc.SetDesiredState(w.ctx(w.mgrA), reporter, state, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.d.Writer().Exec(`DELETE FROM commit_order`); err != nil {
			t.Fatal(err)
		}
		// Someone holds the writer; event batches queue for it, then the
		// device's report and a manager's revoke.
		hold, err := w.d.BeginTx(ctx)
		if err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, batches+2)
		at := w.now.Add(-time.Minute)
		for i := range batches {
			go func() {
				errs <- unlocks.RecordUnlocks(ctx, []doorledger.UnlockEvent{unlockEv(source, fmt.Sprintf("r%d-%d", round, i), at, doorledger.UnlockGranted)})
			}()
		}
		waitingFor("an event batch waits for the writer", 1)
		go func() {
			errs <- w.svc.ReportState(ctx, doorledger.ReportedState{DeviceID: reporter, State: state, Version: cmd.Version, At: time.Now()})
		}()
		waitingFor("the report waits for the writer", 2)
		go func() {
			_, err := w.svc.SetDesiredState(w.ctx(w.mgrA), revoked, state, "revoked by a manager")
			errs <- err
		}()
		waitingFor("the revoke waits for the writer", 3)
		if err := hold.Rollback(); err != nil {
			t.Fatal(err)
		}
		for range batches + 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}

		rows, err := w.d.Writer().Query(`SELECT what FROM commit_order ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			order = append(order, s)
		}
		rows.Close()
		want := []string{fmt.Sprintf("confirm %d", reporter), fmt.Sprintf("command %d", revoked)}
		if len(order) != batches+2 || strings.Join(order[:2], ", ") != strings.Join(want, ", ") {
			t.Fatalf("round %d: committed in the order %v; want %v first, then the %d event batches that waited before them", round, order, want, batches)
		}
	}
}

// Events beyond UnlockService.MaxQueued are refused at once (EUNAVAILABLE:
// the device or vendor sends them again), not held behind the writer until
// their sender times out: a device sends one message at a time, so its
// report confirming a revoke would wait behind them.
func TestIngestRefusesBeyondMaxQueued(t *testing.T) {
	w := newDeviceWorld(t)
	unlocks := sqlite.NewUnlockService(w.d)
	unlocks.MaxBatch, unlocks.MaxQueued = 1, 3
	ctx := context.Background()
	dev := w.device(t, w.A, w.inst1, w.activeConsent(t, w.A), "Acme")
	at := w.now.Add(-time.Minute)
	ev := func(ids ...string) []doorledger.UnlockEvent {
		var evs []doorledger.UnlockEvent
		for _, id := range ids {
			evs = append(evs, unlockEv(dev, id, at, doorledger.UnlockGranted))
		}
		return evs
	}
	if err := unlocks.RecordUnlocks(ctx, ev("warm-up")); err != nil { // statements prepared
		t.Fatal(err)
	}

	hold, err := w.d.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	go func() { errs <- unlocks.RecordUnlocks(ctx, ev("a")) }()
	testtool.Await(t, "the first batch waits for the writer", func() bool { u, b := sqlite.WritersWaiting(w.d); return u+b == 1 })
	for _, id := range []string{"b", "c", "d"} {
		go func() { errs <- unlocks.RecordUnlocks(ctx, ev(id)) }()
	}
	testtool.Await(t, "three batches queued behind it", func() bool { return sqlite.IngestQueued(unlocks) == 3 })

	refused := make(chan error, 1)
	go func() { refused <- unlocks.RecordUnlocks(ctx, ev("e")) }()
	select {
	case err := <-refused:
		wantCode(t, "a batch beyond MaxQueued", err, doorledger.EUNAVAILABLE)
	case <-time.After(30 * time.Second):
		t.Fatal("a batch beyond MaxQueued waits for the writer instead of being refused")
	}
	if err := hold.Rollback(); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Sent again once the queue has room, it is recorded; a batch heavier
	// than MaxQueued is taken when nothing waits.
	if err := unlocks.RecordUnlocks(ctx, ev("e")); err != nil {
		t.Fatal(err)
	}
	if err := unlocks.RecordUnlocks(ctx, ev("f1", "f2", "f3", "f4", "f5")); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := w.d.Reader().QueryRow(`SELECT COUNT(*) FROM unlock_events WHERE device_id = ? AND event_id <> 'warm-up'`, dev).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 10 {
		t.Errorf("%d events stored, want 10 (a–e and f1–f5, each once)", n)
	}
}
