package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/postgres"
)

// openInstance opens a second DB on d's database, as another portal
// instance would: its own pool, the same clock.
func openInstance(tb testing.TB, d *postgres.DB, now *time.Time) *postgres.DB {
	tb.Helper()
	o := postgres.NewDB(d.URL)
	o.Now = func() time.Time { return *now }
	if err := o.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { o.Close() })
	return o
}

// Ingest from several instances and connections at once, every event sent
// three times in batches that overlap in shuffled orders: each event is
// stored exactly once, the callers are told so (inserted + duplicates), the
// per-day counts match the rows, and the log holds every event and verifies.
func TestUnlockIngestConcurrentDuplicates(t *testing.T) {
	a, now := MustOpenDB(t)
	b := openInstance(t, a, now)
	buildings := postgres.NewBuildingService(a)
	var blds []int64
	for i := range 2 {
		bld, err := buildings.CreateBuilding(sys(), doorledger.BuildingInput{Name: fmt.Sprintf("B%d", i), Address: fmt.Sprintf("%d Elm", i), Timezone: "Europe/Zurich"})
		if err != nil {
			t.Fatal(err)
		}
		blds = append(blds, bld.ID)
	}
	const events, copies, senders = 400, 3, 8
	all := make([]doorledger.UnlockEvent, events)
	for i := range all {
		at := now.Add(-time.Duration(events-i) * time.Minute)
		all[i] = doorledger.UnlockEvent{BuildingID: blds[i%2], DeviceRef: fmt.Sprintf("relay-%d", i%5), EventID: fmt.Sprintf("e-%d", i),
			OccurredAt: at, ReceivedAt: at, Method: doorledger.MethodKeypad, ActorRef: "pkg", Result: doorledger.UnlockGranted}
	}
	var work []doorledger.UnlockEvent
	for range copies {
		work = append(work, all...)
	}
	rand.Shuffle(len(work), func(i, j int) { work[i], work[j] = work[j], work[i] })
	// Each instance has its own committer; several services per instance
	// make several committers, so several transactions run at once.
	var services []*postgres.UnlockService
	for _, d := range []*postgres.DB{a, b, a, b} {
		services = append(services, postgres.NewUnlockService(d))
	}
	var next atomic.Int64
	var inserted, duplicates atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc := services[s%len(services)]
			for {
				lo := int(next.Add(7)) - 7
				if lo >= len(work) {
					return
				}
				res, err := svc.RecordUnlocksResult(context.Background(), work[lo:min(lo+7, len(work))])
				if err != nil {
					errs <- err
					return
				}
				inserted.Add(int64(res.Inserted))
				duplicates.Add(int64(res.Duplicates))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got, want := inserted.Load(), int64(events); got != want {
		t.Errorf("inserted %d, want %d", got, want)
	}
	if got, want := duplicates.Load(), int64(events*(copies-1)); got != want {
		t.Errorf("duplicates %d, want %d", got, want)
	}
	ctx := context.Background()
	var rows, distinct int
	if err := a.Pool().QueryRow(ctx, `SELECT COUNT(*), COUNT(DISTINCT event_id) FROM unlock_events`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != events || distinct != events {
		t.Errorf("%d rows of %d event ids stored, want %d of %d", rows, distinct, events, events)
	}
	var counted int
	if err := a.Pool().QueryRow(ctx, `SELECT COALESCE(SUM(granted), 0) FROM unlock_daily`).Scan(&counted); err != nil {
		t.Fatal(err)
	}
	if counted != events {
		t.Errorf("unlock_daily counts %d events, want %d", counted, events)
	}
	logs := postgres.NewLogService(a, mustLogKey(t))
	if _, err := logs.SignHead(sys()); err != nil {
		t.Fatal(err)
	}
	v, err := logs.Verify(sys())
	if err != nil || !v.OK() || v.Pending != 0 {
		t.Fatalf("verify: %+v %v", v, err)
	}
	var leaves int
	if err := a.Pool().QueryRow(ctx, `SELECT COUNT(*) FROM log_leaves WHERE kind = 'unlock'`).Scan(&leaves); err != nil {
		t.Fatal(err)
	}
	if leaves != events {
		t.Errorf("the log holds %d unlock events, want %d", leaves, events)
	}
}
