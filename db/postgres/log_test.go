package postgres_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"github.com/doorledger/doorledger/db/postgres"
	"github.com/jackc/pgx/v5"
)

func mustLogKey(tb testing.TB) *auditlog.Key {
	tb.Helper()
	k, err := auditlog.LoadOrCreateKey(filepath.Join(tb.TempDir(), auditlog.KeyFile), "doorledger-test")
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// writeAudit inserts an audit entry in tx, as a service does, and returns its id.
func writeAudit(tb testing.TB, tx pgx.Tx, action string) int64 {
	tb.Helper()
	var id int64
	if err := tx.QueryRow(context.Background(), `INSERT INTO audit_entries (at, actor, action) VALUES (now(), 'test', $1) RETURNING id`,
		action).Scan(&id); err != nil {
		tb.Fatal(err)
	}
	return id
}

// logged returns the audit ids in the log, in log order.
func logged(tb testing.TB, d *postgres.DB) []int64 {
	tb.Helper()
	rows, err := d.Pool().Query(context.Background(), `SELECT ref_id FROM log_leaves WHERE kind = 'audit' ORDER BY idx`)
	if err != nil {
		tb.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		tb.Fatal(err)
	}
	return ids
}

// committed returns the ids of every audit entry, ascending.
func committed(tb testing.TB, d *postgres.DB) []int64 {
	tb.Helper()
	rows, err := d.Pool().Query(context.Background(), `SELECT id FROM audit_entries ORDER BY id`)
	if err != nil {
		tb.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		tb.Fatal(err)
	}
	return ids
}

// TestLogSequencerOutOfIDOrder: ids are not commit order on PostgreSQL. A
// transaction takes a low id and stays open while later ids commit from
// other connections and the sequencer runs; the later ones wait (logging
// them would leave the low id out for good, or out of order, which verify
// refuses); once the low id commits, all are sequenced, each once, in id
// order, and verify passes. A rolled-back id does not hold the log back.
func TestLogSequencerOutOfIDOrder(t *testing.T) {
	d, _ := MustOpenDB(t)
	logs := postgres.NewLogService(d, mustLogKey(t))
	ctx := context.Background()
	logs.SignHead(sys()) // the migrations' entries, if any
	before := len(logged(t, d))

	slow, err := d.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Rollback(ctx)
	low := writeAudit(t, slow, "test.slow")
	gone, err := d.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	writeAudit(t, gone, "test.rolled-back")
	var later []int64
	for i := 0; i < 3; i++ { // from several connections, committed at once
		tx, err := d.Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		later = append(later, writeAudit(t, tx, fmt.Sprintf("test.later.%d", i)))
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := gone.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if later[0] <= low {
		t.Fatalf("ids: low %d, later %v", low, later)
	}
	if _, err := logs.Sequence(sys()); err != nil {
		t.Fatal(err)
	}
	for _, id := range logged(t, d)[before:] {
		if id >= low {
			t.Fatalf("audit #%d was sequenced while #%d, lower, was in flight: %v", id, low, logged(t, d))
		}
	}
	if v, err := logs.Verify(sys()); err != nil || !v.OK() {
		t.Fatalf("verify while #%d is in flight: %+v %v", low, v, err)
	}

	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := logs.SignHead(sys()); err != nil {
		t.Fatal(err)
	}
	got, want := logged(t, d), committed(t, d)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the log holds %v, committed are %v", got, want)
	}
	v, err := logs.Verify(sys())
	if err != nil || !v.OK() || v.Pending != 0 || len(v.Overdue) != 0 {
		t.Fatalf("verify: %+v %v", v, err)
	}
}

// TestLogSequencerConcurrentWriters: writers commit from several
// connections, holding their transactions open for varying times, while
// two instances sequence at once; afterwards every committed row is in the
// log once, in id order, and verify passes.
func TestLogSequencerConcurrentWriters(t *testing.T) {
	a, now := MustOpenDB(t)
	b := postgres.NewDB(a.URL)
	b.Now = func() time.Time { return *now }
	if err := b.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	key := mustLogKey(t)
	instances := []*postgres.LogService{postgres.NewLogService(a, key), postgres.NewLogService(b, key)}
	ctx := context.Background()

	const writers, each = 6, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers+len(instances))
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				err := pgx.BeginFunc(ctx, a.Pool(), func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, `INSERT INTO audit_entries (at, actor, action) VALUES (now(), 'test', 'test.write')`); err != nil {
						return err
					}
					// Hold the id a while, some more than others, so
					// that commits overtake one another.
					_, err := tx.Exec(ctx, `SELECT pg_sleep($1::float8 / 1000)`, (w*7+i*3)%11)
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	var seq sync.WaitGroup
	for _, s := range instances {
		seq.Add(1)
		go func() {
			defer seq.Done()
			for {
				if _, err := s.Sequence(sys()); err != nil {
					errs <- err
					return
				}
				select {
				case <-done:
					return
				default:
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	seq.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := instances[1].SignHead(sys()); err != nil {
		t.Fatal(err)
	}
	got, want := logged(t, a), committed(t, a)
	if len(want) < writers*each || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the log holds %d entries, %d committed:\n%v\n%v", len(got), len(want), got, want)
	}
	v, err := instances[0].Verify(sys())
	if err != nil || !v.OK() || v.Pending != 0 {
		t.Fatalf("verify: %+v %v", v, err)
	}
	_ = doorledger.LogKindAudit
}

// insertUnlocks writes n events of an unknown device of building at t in
// tx, as ingest does, and returns their ids.
func insertUnlocks(tb testing.TB, tx pgx.Tx, building int64, n int, t time.Time, prefix string, anomalies int) []int64 {
	tb.Helper()
	var ids []int64
	for i := 0; i < n; i++ {
		var id int64
		if err := tx.QueryRow(context.Background(), `INSERT INTO unlock_events (building_id, device_ref, event_id, occurred_at, received_at,
			method, result, anomalies, source, effective_at) VALUES ($1, 'SN-1', $2, $3, $3, 'keypad', 'granted', $4, 'mqtt', $3) RETURNING id`,
			building, fmt.Sprintf("%s-%d", prefix, i), t.Add(time.Duration(i)*time.Second), anomalies).Scan(&id); err != nil {
			tb.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// TestLogPurgeWhileWritersInFlight: the retention purge logs the events it
// deletes (a purge record, itself logged) in its own transaction, under the
// sequencer's lock, while other transactions hold newer unlock and audit
// ids open; they are sequenced after they commit, and the log verifies with
// the purged rows accounted for.
func TestLogPurgeWhileWritersInFlight(t *testing.T) {
	d, now := MustOpenDB(t)
	logs := postgres.NewLogService(d, mustLogKey(t))
	unlocks := postgres.NewUnlockService(d)
	ctx := context.Background()
	b, err := postgres.NewBuildingService(d).CreateBuilding(sys(), doorledger.BuildingInput{Name: "Alder Court", Address: "1 Alder Court", Timezone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	if err := pgx.BeginFunc(ctx, d.Pool(), func(tx pgx.Tx) error {
		insertUnlocks(t, tx, b.ID, 30, now.AddDate(-4, 0, 0), "old", 4)
		insertUnlocks(t, tx, b.ID, 5, *now, "new", 4)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	logs.SignHead(sys())

	inflight, err := d.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer inflight.Rollback(ctx)
	// Not anomalous: an anomalous event holds its building's count of open
	// anomalies, which the purge of anomalous events waits for.
	insertUnlocks(t, inflight, b.ID, 3, *now, "inflight", 0)
	writeAudit(t, inflight, "test.inflight")
	n, err := unlocks.Purge(sys(), *now)
	if err != nil || n != 30 {
		t.Fatalf("purge: %d %v, want 30", n, err)
	}
	if err := inflight.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	logs.SignHead(sys())
	v, err := logs.Verify(sys())
	if err != nil || !v.OK() || v.Purged != 30 || v.Pending != 0 {
		t.Fatalf("verify after the purge: %+v %v", v, err)
	}
	var unlogged int
	if err := d.Pool().QueryRow(ctx, `SELECT
		(SELECT COUNT(*) FROM unlock_events u WHERE NOT EXISTS (SELECT 1 FROM log_leaves l WHERE l.kind = 'unlock' AND l.ref_id = u.id))
		+ (SELECT COUNT(*) FROM audit_entries a WHERE NOT EXISTS (SELECT 1 FROM log_leaves l WHERE l.kind = 'audit' AND l.ref_id = a.id))`).Scan(&unlogged); err != nil || unlogged != 0 {
		t.Fatalf("rows not in the log: %d %v", unlogged, err)
	}
}

// BenchmarkSequence measures the sequencer's throughput as package sqlite's
// BenchmarkSequence does: 20,000 rows committed per run (half audit
// entries, half unlock events), appended to the log, in leaves per second.
//
//	go test ./db/postgres/ -run '^$' -bench Sequence -benchtime 5x
func BenchmarkSequence(b *testing.B) {
	const perRun = 20000
	d, now := MustOpenDB(b)
	logs := postgres.NewLogService(d, mustLogKey(b))
	logs.HeadEvery = time.Hour
	bld, err := postgres.NewBuildingService(d).CreateBuilding(sys(), doorledger.BuildingInput{Name: "Alder Court", Address: "1 Alder Court", Timezone: "UTC"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var total int64
	b.ResetTimer()
	for run := range b.N {
		b.StopTimer()
		if err := pgx.BeginFunc(ctx, d.Pool(), func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO audit_entries (at, actor_id, actor, action, building_id, object_type, object_id, ip, detail)
				SELECT '2026-11-02T10:00:00Z', 1, 'admin@example.com', 'device.enable', $1, 'device', i, '10.0.0.1', '{"version":3}'
				FROM generate_series(1, $2::int) i`, bld.ID, perRun/2); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO unlock_events (building_id, device_ref, event_id, occurred_at, received_at, method, actor_ref, result, anomalies, source, effective_at)
				SELECT $1, 'SN-1', $3 || '-' || i, '2026-11-02T10:00:00Z', '2026-11-02T10:00:01Z', 'courier_app', 'pkg 1', 'granted', 4, 'mqtt', '2026-11-02T10:00:00Z'
				FROM generate_series(1, $2::int) i`, bld.ID, perRun/2, fmt.Sprint(run))
			return err
		}); err != nil {
			b.Fatal(err)
		}
		*now = now.Add(time.Second)
		b.StartTimer()
		n, err := logs.Sequence(sys())
		if err != nil {
			b.Fatal(err)
		}
		total += n
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "leaves/s")
}
