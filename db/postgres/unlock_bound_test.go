package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/postgres"
	"github.com/doorledger/doorledger/internal/testtool"
)

// Events beyond UnlockService.MaxQueued are refused at once
// (ErrIngestBusy: the device or vendor sends them again), not queued
// behind a cluster that fell behind until their sender times out and sends
// a copy: without the bound those copies piled up in the portal's memory
// (158 MB in the portfolio rig with the cluster stopped for 40 s).
func TestIngestRefusesBeyondMaxQueued(t *testing.T) {
	d, now := MustOpenDB(t)
	ctx := context.Background()
	bld, err := postgres.NewBuildingService(d).CreateBuilding(sys(), doorledger.BuildingInput{Name: "B", Address: "1 Elm", Timezone: "Europe/Zurich"})
	if err != nil {
		t.Fatal(err)
	}
	unlocks := postgres.NewUnlockService(d)
	unlocks.MaxBatch, unlocks.MaxQueued = 1, 3
	at := now.Add(-time.Minute)
	ev := func(ids ...string) []doorledger.UnlockEvent {
		var evs []doorledger.UnlockEvent
		for _, id := range ids {
			evs = append(evs, doorledger.UnlockEvent{BuildingID: bld.ID, DeviceRef: "relay-1", EventID: id,
				OccurredAt: at, ReceivedAt: at, Method: doorledger.MethodKeypad, ActorRef: "pkg", Result: doorledger.UnlockGranted})
		}
		return evs
	}
	if err := unlocks.RecordUnlocks(ctx, ev("warm-up")); err != nil {
		t.Fatal(err)
	}

	// The cluster "behind": a transaction holds the events' table, so the
	// committer's first group waits for it.
	hold, err := d.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback(ctx)
	if _, err := hold.Exec(ctx, `LOCK TABLE unlock_events IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	go func() { errs <- unlocks.RecordUnlocks(ctx, ev("a")) }()
	testtool.Await(t, "the first batch's group waits for the table", func() bool {
		var waiting int
		err := d.Pool().QueryRow(ctx, `SELECT COUNT(*) FROM pg_locks WHERE NOT granted AND relation = 'unlock_events'::regclass`).Scan(&waiting)
		return err == nil && waiting > 0
	})
	for _, id := range []string{"b", "c", "d"} {
		go func() { errs <- unlocks.RecordUnlocks(ctx, ev(id)) }()
	}
	testtool.Await(t, "three batches queued behind it", func() bool { return postgres.IngestQueued(unlocks) == 3 })
	if !unlocks.IngestBusy() {
		t.Error("IngestBusy is false with MaxQueued events queued")
	}

	refused := make(chan error, 1)
	go func() { refused <- unlocks.RecordUnlocks(ctx, ev("e")) }()
	select {
	case err := <-refused:
		if err != doorledger.ErrIngestBusy {
			t.Fatalf("a batch beyond MaxQueued: %v; want ErrIngestBusy", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a batch beyond MaxQueued waits for the cluster instead of being refused")
	}
	if err := hold.Rollback(ctx); err != nil {
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
	if err := d.Pool().QueryRow(ctx, `SELECT COUNT(*) FROM unlock_events WHERE event_id <> 'warm-up'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 10 {
		t.Errorf("%d events stored, want 10 (a–e and f1–f5, each once)", n)
	}
}
