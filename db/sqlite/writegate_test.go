package sqlite_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
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
		deadline := time.Now().Add(30 * time.Second)
		for u, b := sqlite.WritersWaiting(w.d); u+b < n; u, b = sqlite.WritersWaiting(w.d) {
			if time.Now().After(deadline) {
				t.Fatalf("never: %s", what)
			}
			time.Sleep(time.Millisecond)
		}
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
