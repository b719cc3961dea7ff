package postgres_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/postgres"
)

// Benchmarks of unlock ingest on PostgreSQL, shaped as package sqlite's
// (db/sqlite/unlock_bench_test.go) so that docs/benchmarks.md can put the
// two side by side. The cluster runs durable (fsync, synchronous_commit on)
// when benchmarks run (main_test.go). Every iteration is one event:
//
//	go test ./db/postgres/ -run '^$' -bench 'IngestGroupCommit|RawBatchInsert' -benchtime 3x -count 1      # smoke
//	go test ./db/postgres/ -run '^$' -bench 'IngestGroupCommit|RawBatchInsert' -benchtime 20000x           # figures

const benchDevices = 100

// benchIngestWorld is 10 buildings with 10 enabled, consented devices each,
// made through the services.
func benchIngestWorld(b *testing.B) (*dbtest.UnlockWorld, *postgres.DB, []int64) {
	b.Helper()
	s, d := openServices(b)
	w := dbtest.NewUnlockWorld(b, s, "UTC", time.Time{})
	buildings := []int64{w.A, w.B}
	for len(buildings) < 10 {
		buildings = append(buildings, w.AddBuilding(b, fmt.Sprintf("Bench %d", len(buildings)), "America/New_York"))
	}
	devs := make([]int64, benchDevices)
	for i := range devs {
		devs[i], _ = w.EnabledDevice(b, buildings[i%len(buildings)])
	}
	// The daily counts current, as the portal's job leaves them: each
	// insert then pays their trigger in full.
	if _, err := s.Unlocks.(*postgres.UnlockService).CountDays(sys()); err != nil {
		b.Fatal(err)
	}
	return w, d, devs
}

// benchEvent is event i of n from device dev, like live traffic: events come
// in the order they happen, the n of them spread evenly over the last 19 days
// (the devices were enabled 20 days ago), so that no building sees a burst.
func benchEvent(now time.Time, dev int64, i, n int64) doorledger.UnlockEvent {
	step := 19 * 24 * time.Hour / time.Duration(n+1)
	at := now.Add(-19 * 24 * time.Hour).Add(time.Duration(i) * step)
	r := doorledger.UnlockGranted
	if i%10 == 0 {
		r = doorledger.UnlockDenied
	}
	return doorledger.UnlockEvent{DeviceID: dev, EventID: "ev-" + strconv.FormatInt(i, 10), OccurredAt: at, ReceivedAt: now,
		Method: doorledger.MethodCourierApp, ActorRef: "pkg-" + strconv.FormatInt(i, 36), Result: r, Source: doorledger.SourceMQTT}
}

// BenchmarkIngestGroupCommit: 100 goroutines, like 100 devices, each calling
// RecordUnlocks with one event at a time and waiting for it to be durable
// (fsync on). Compare its events/s with BenchmarkRawBatchInsert's, and with
// package sqlite's benchmark of the same name.
func BenchmarkIngestGroupCommit(b *testing.B) {
	w, d, devs := benchIngestWorld(b)
	svc := w.Unlocks.(*postgres.UnlockService)
	now := *w.Now
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for g := range benchDevices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := svc.RecordUnlocks(context.Background(), []doorledger.UnlockEvent{benchEvent(now, devs[g], i, int64(b.N))}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if groups, events := svc.Stats(); groups > 0 {
		b.ReportMetric(float64(events)/float64(groups), "events/commit")
	}
	var flagged int
	if err := d.Pool().QueryRow(context.Background(), `SELECT COUNT(*) FROM unlock_events WHERE anomalies <> 0`).Scan(&flagged); err != nil {
		b.Fatal(err)
	}
	if flagged != 0 {
		b.Fatalf("%d events flagged: the benchmark should record ordinary events", flagged)
	}
}

// BenchmarkRawBatchInsert is the floor: the same rows into the same table,
// indexes and triggers, 1,000 per transaction in one INSERT … SELECT FROM
// unnest, no group commit, no anomaly checks.
func BenchmarkRawBatchInsert(b *testing.B) {
	w, d, devs := benchIngestWorld(b)
	ctx := context.Background()
	now := *w.Now
	building := map[int64]int64{}
	for _, dev := range devs {
		var bld int64
		if err := d.Pool().QueryRow(ctx, `SELECT building_id FROM devices WHERE id = $1`, dev).Scan(&bld); err != nil {
			b.Fatal(err)
		}
		building[dev] = bld
	}
	b.ResetTimer()
	for start := 0; start < b.N; start += 1000 {
		n := min(1000, b.N-start)
		var blds, dids []int64
		var eids, methods, actors, results, sources []string
		var times, received []time.Time
		for i := start; i < start+n; i++ {
			ev := benchEvent(now, devs[i%len(devs)], int64(i), int64(b.N))
			blds, dids = append(blds, building[ev.DeviceID]), append(dids, ev.DeviceID)
			eids, methods, actors = append(eids, ev.EventID), append(methods, ev.Method), append(actors, ev.ActorRef)
			results, sources = append(results, string(ev.Result)), append(sources, ev.Source)
			times, received = append(times, ev.OccurredAt), append(received, ev.ReceivedAt)
		}
		if _, err := d.Pool().Exec(ctx, `INSERT INTO unlock_events
			(building_id, device_id, event_id, occurred_at, received_at, method, actor_ref, result, source, effective_at)
			SELECT b, dv, e, t, r, m, a, res, src, t FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::timestamptz[], $5::timestamptz[],
				$6::text[], $7::text[], $8::text[], $9::text[]) AS u (b, dv, e, t, r, m, a, res, src)
			ON CONFLICT DO NOTHING`, blds, dids, eids, times, received, methods, actors, results, sources); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
