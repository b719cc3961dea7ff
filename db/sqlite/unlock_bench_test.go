package sqlite_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

// Benchmarks of unlock ingest and history. Every iteration is bounded (one
// event, one page, one export), so they run behind no tag:
//
//	go test ./db/sqlite/ -run '^$' -bench 'IngestGroupCommit|RawBatchInsert' -benchtime 3x -count 1   # smoke
//	go test ./db/sqlite/ -run '^$' -bench 'IngestGroupCommit|RawBatchInsert' -benchtime 100000x       # figures
//	go test ./db/sqlite/ -run '^$' -bench '^BenchmarkIngestVsRaw$' -benchtime 100000x -count 3      # the ratio, in process
//	go test ./db/sqlite/ -run '^$' -bench 'MQTTIngestVsRaw' -benchtime 100000x -count 3              # the ratio over MQTT
//	go test ./db/sqlite/ -run '^$' -bench 'DeviceIndexReads' -benchtime 200x                         # why the per-device index stays
//	go test ./db/sqlite/ -run '^$' -bench 'History' -benchtime 2000x                                  # 200k events
//	DOORLEDGER_BENCH_EVENTS=5000000 go test ./db/sqlite/ -run '^$' -bench 'History' -benchtime 2000x -timeout 60m
//	DOORLEDGER_BENCH_EVENTS=1000000 go test ./db/sqlite/ -run '^$' -bench 'ExportCSV' -benchtime 1x -timeout 30m
//
// The default is 200k events so that a run takes seconds (the target sizes
// and figures are in docs/benchmarks.md). DOORLEDGER_BENCH_EVENTS sets it.

const benchDevices = 100

// benchIngestWorld is 10 buildings with 10 enabled, consented devices each.
func benchIngestWorld(b *testing.B) (*unlockWorld, []int64) {
	b.Helper()
	w := newUnlockWorld(b, "UTC", time.Time{})
	buildings := []int64{w.A, w.B}
	bs := sqlite.NewBuildingService(w.d)
	for len(buildings) < 10 {
		bld, err := bs.CreateBuilding(sys(), doorledger.BuildingInput{Name: fmt.Sprintf("Bench %d", len(buildings)), Address: "1 Bench St", Timezone: "America/New_York"})
		if err != nil {
			b.Fatal(err)
		}
		// A signer on its roster: the database refuses a signature by anyone
		// else (migration 015).
		if _, err := bs.AddSigner(sys(), bld.ID, doorledger.SignerInput{Name: "Pat Owner", Title: "Board president", Email: fmt.Sprintf("pat%d@example.com", bld.ID)}); err != nil {
			b.Fatal(err)
		}
		buildings = append(buildings, bld.ID)
	}
	devs := make([]int64, benchDevices)
	for i := range devs {
		devs[i], _ = w.enabledDevice(b, buildings[i%len(buildings)])
	}
	// The daily counts current, as the portal's job leaves them within
	// seconds: each insert then pays their trigger in full (migration 050).
	if _, err := w.svc.CountDays(sys()); err != nil {
		b.Fatal(err)
	}
	return w, devs
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
// (synchronous=FULL). Compare its events/s with BenchmarkRawBatchInsert's, or
// run BenchmarkIngestVsRaw, which alternates the two and reports the ratio.
func BenchmarkIngestGroupCommit(b *testing.B) {
	w, devs := benchIngestWorld(b)
	b.ResetTimer()
	groupCommitRun(b, w, devs, 0, b.N, b.N)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if groups, events := w.svc.Stats(); groups > 0 {
		b.ReportMetric(float64(events)/float64(groups), "events/commit")
	}
	if n := w.count(b, `SELECT COUNT(*) FROM unlock_events WHERE anomalies <> 0`); n != 0 {
		b.Fatalf("%d events flagged: the benchmark should record ordinary events", n)
	}
}

// groupCommitRun records events [start, start+n) of total through
// RecordUnlocks from benchDevices goroutines, one event per call.
func groupCommitRun(b *testing.B, w *unlockWorld, devs []int64, start, n, total int) {
	now := *w.Now
	var next atomic.Int64
	next.Store(int64(start))
	var wg sync.WaitGroup
	for g := 0; g < benchDevices; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(start+n) {
					return
				}
				if err := w.svc.RecordUnlocks(context.Background(), []doorledger.UnlockEvent{benchEvent(now, devs[g], i, int64(total))}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkRawBatchInsert is the floor: the same rows into the same table and
// indexes, 1,000 per transaction with a prepared statement, no group commit,
// no anomaly checks.
func BenchmarkRawBatchInsert(b *testing.B) {
	w, devs := benchIngestWorld(b)
	bld := deviceBuildings(b, w)
	now := *w.Now
	b.ResetTimer()
	rawInsert(b, w, b.N, func(i int) (doorledger.UnlockEvent, int64) {
		ev := benchEvent(now, devs[i%benchDevices], int64(i), int64(b.N))
		return ev, bld[ev.DeviceID]
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkIngestVsRaw alternates the two above, rounds of 10,000 events, so
// that both see the same machine load: group commit into one database, then
// the same rows (read back) inserted raw into a second one in transactions of
// the size the round's group commits reached, and into a third in
// transactions of 1,000 rows. It reports both rates, the median of the
// rounds' ratios and the ratio against 1,000
// rows a transaction. BenchmarkMQTTIngestVsRaw is the same over MQTT.
func BenchmarkIngestVsRaw(b *testing.B) {
	wg, devs := benchIngestWorld(b)
	f := newRawFloors(b, devs)
	const round = 10000
	var tg time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; done += round {
		n := min(round, b.N-done)
		groups0, events0 := wg.svc.Stats()
		t := time.Now()
		groupCommitRun(b, wg, devs, done, n, b.N)
		d := time.Since(t)
		tg += d
		groups1, events1 := wg.svc.Stats()
		f.round(b, wg, n, d, float64(events1-events0)/float64(groups1-groups0))
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/tg.Seconds(), "group-events/s")
	f.report(b, "group", tg)
	if groups, events := wg.svc.Stats(); groups > 0 {
		b.ReportMetric(float64(events)/float64(groups), "events/commit")
	}
}

// rawFloors is the floor of an ingest benchmark: after each round, the rows
// the round committed are read back and inserted, by a prepared INSERT and
// nothing else, into two more databases of the same schema, seeding and
// pragmas (synchronous=FULL): one transaction per batch of the size the
// round's group commits reached, and one per 1,000 rows.
type rawFloors struct {
	same, thousand *unlockWorld
	after          int64 // the last row of the source read back
	tSame, t1k     time.Duration
	ratios         []float64 // per round: ingest rate / raw rate at the same batch size
	log            []string
}

func newRawFloors(b *testing.B, devs []int64) *rawFloors {
	b.Helper()
	same, devsSame := benchIngestWorld(b)
	thousand, devs1k := benchIngestWorld(b)
	if !slices.Equal(devs, devsSame) || !slices.Equal(devs, devs1k) {
		b.Fatalf("seeding gave different device ids: %v / %v / %v", devs, devsSame, devs1k)
	}
	return &rawFloors{same: same, thousand: thousand}
}

// round inserts the n rows src committed since the last round, which took d
// at perCommit events a commit, and returns how long the same-size floor took.
func (f *rawFloors) round(b *testing.B, src *unlockWorld, n int, d time.Duration, perCommit float64) time.Duration {
	b.StopTimer()
	rows := committedRows(b, src, f.after, n)
	f.after = rows[len(rows)-1].id
	b.StartTimer()
	batch := max(1, int(perCommit+0.5))
	t := time.Now()
	insertRows(b, f.same, rows, batch)
	dSame := time.Since(t)
	t = time.Now()
	insertRows(b, f.thousand, rows, 1000)
	d1k := time.Since(t)
	f.tSame, f.t1k = f.tSame+dSame, f.t1k+d1k
	f.ratios = append(f.ratios, dSame.Seconds()/d.Seconds())
	f.log = append(f.log, fmt.Sprintf("%.0f/%.0f@%d=%.2f(1k %.0f=%.2f)", float64(n)/d.Seconds(), float64(n)/dSame.Seconds(), batch,
		dSame.Seconds()/d.Seconds(), float64(n)/d1k.Seconds(), d1k.Seconds()/d.Seconds()))
	return dSame
}

// report reports the raw rate, the median of the rounds' ratios, the ratio
// over the whole run, and the ratio against 1,000 rows a transaction; and
// logs each round: ingest/s / raw/s @ batch = ratio (1k: raw/s = ratio).
func (f *rawFloors) report(b *testing.B, ingest string, t time.Duration) {
	ratios := slices.Clone(f.ratios)
	slices.Sort(ratios)
	b.ReportMetric(float64(b.N)/f.tSame.Seconds(), "raw-events/s")
	b.ReportMetric(ratios[len(ratios)/2], "median-ratio")
	b.ReportMetric(f.tSame.Seconds()/t.Seconds(), "ratio")
	b.ReportMetric(f.t1k.Seconds()/t.Seconds(), "ratio-vs-1k")
	if len(f.log) > 1 {
		b.Logf("rounds (%s/s / raw/s @ batch = ratio): %s", ingest, strings.Join(f.log, " "))
	}
}

// storedUnlock is a row of unlock_events as stored.
type storedUnlock struct {
	id, building, device                            int64
	ref, eventID, occurred, received, method, actor string
	result                                          string
	anomalies                                       int64
	source, effective                               string
}

// committedRows reads the n rows recorded after id after.
func committedRows(b *testing.B, w *unlockWorld, after int64, n int) []storedUnlock {
	b.Helper()
	rows, err := w.d.Reader().Query(`SELECT id, building_id, device_id, device_ref, event_id, occurred_at, received_at, method, actor_ref, result, anomalies, source, effective_at
		FROM unlock_events WHERE id > ? ORDER BY id`, after)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	out := make([]storedUnlock, 0, n)
	for rows.Next() {
		var r storedUnlock
		if err := rows.Scan(&r.id, &r.building, &r.device, &r.ref, &r.eventID, &r.occurred, &r.received, &r.method, &r.actor,
			&r.result, &r.anomalies, &r.source, &r.effective); err != nil {
			b.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	if len(out) != n {
		b.Fatalf("read back %d rows, want %d", len(out), n)
	}
	return out
}

// insertRows inserts rows into unlock_events, batch rows per transaction,
// with one prepared statement per transaction.
func insertRows(b *testing.B, w *unlockWorld, rows []storedUnlock, batch int) {
	b.Helper()
	for start := 0; start < len(rows); start += batch {
		tx, err := w.d.Writer().Begin()
		if err != nil {
			b.Fatal(err)
		}
		st, err := tx.Prepare(`INSERT INTO unlock_events (building_id, device_id, device_ref, event_id, occurred_at, received_at, method, actor_ref, result, anomalies, source, effective_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range rows[start:min(len(rows), start+batch)] {
			if _, err := st.Exec(r.building, r.device, r.ref, r.eventID, r.occurred, r.received, r.method, r.actor, r.result, r.anomalies, r.source, r.effective); err != nil {
				b.Fatal(err)
			}
		}
		st.Close()
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

func deviceBuildings(b *testing.B, w *unlockWorld) map[int64]int64 {
	bld := map[int64]int64{}
	rows, err := w.d.Reader().Query(`SELECT id, building_id FROM devices`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var d, bl int64
		rows.Scan(&d, &bl)
		bld[d] = bl
	}
	return bld
}

// rawInsert writes n rows, 1,000 per transaction, straight into unlock_events.
func rawInsert(tb testing.TB, w *unlockWorld, n int, row func(i int) (doorledger.UnlockEvent, int64)) {
	tb.Helper()
	for start := 0; start < n; start += 1000 {
		tx, err := w.d.Writer().Begin()
		if err != nil {
			tb.Fatal(err)
		}
		st, err := tx.Prepare(`INSERT INTO unlock_events (building_id, device_id, device_ref, event_id, occurred_at, received_at, method, actor_ref, result, anomalies, source, effective_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
		if err != nil {
			tb.Fatal(err)
		}
		for i := start; i < min(n, start+1000); i++ {
			ev, building := row(i)
			var bits int64
			if len(ev.Anomalies) > 0 {
				bits = 8
			}
			if _, err := st.Exec(building, ev.DeviceID, ev.DeviceRef, ev.EventID, udb(ev.OccurredAt), udb(ev.ReceivedAt), ev.Method, ev.ActorRef, ev.Result, bits, ev.Source, udb(ev.OccurredAt)); err != nil {
				tb.Fatal(err)
			}
		}
		st.Close()
		if err := tx.Commit(); err != nil {
			tb.Fatal(err)
		}
	}
}

// benchEvents is DOORLEDGER_BENCH_EVENTS, or def.
func benchEvents(b *testing.B, def int) int {
	n := def
	if s := os.Getenv("DOORLEDGER_BENCH_EVENTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1000 {
			b.Fatalf("DOORLEDGER_BENCH_EVENTS=%q: want a number >= 1000", s)
		}
	}
	return n
}

// benchHistoryWorld is building A (America/New_York) with n events of 20
// devices over three years, three per timestamp (pages cut through ties),
// 10% denied, 1% flagged, loaded straight into the table.
func benchHistoryWorld(b *testing.B, n int) (*unlockWorld, []int64) {
	b.Helper()
	w := newUnlockWorld(b, "America/New_York", time.Time{})
	devs := make([]int64, 20)
	for i := range devs {
		devs[i], _ = w.enabledDevice(b, w.A)
	}
	now := *w.Now
	span := 3 * 365 * 24 * time.Hour
	methods := []string{doorledger.MethodCourierApp, doorledger.MethodKeypad, doorledger.MethodRemote}
	t0 := time.Now()
	rawInsert(b, w, n, func(i int) (doorledger.UnlockEvent, int64) {
		at := now.Add(-time.Duration(int64(span) / int64(n) * int64(i/3*3)))
		ev := doorledger.UnlockEvent{DeviceID: devs[i%len(devs)], EventID: "h-" + strconv.Itoa(i), OccurredAt: at, ReceivedAt: at,
			Method: methods[i%3], ActorRef: "pkg-" + strconv.Itoa(i), Result: doorledger.UnlockGranted, Source: doorledger.SourceMQTT}
		if i%10 == 0 {
			ev.Result = doorledger.UnlockDenied
		}
		if i%100 == 0 {
			ev.Anomalies = []string{doorledger.AnomalyOutsideHours}
		}
		return ev, w.A
	})
	if _, err := w.d.Writer().Exec(`ANALYZE`); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d events loaded in %s", n, time.Since(t0).Round(time.Millisecond))
	return w, devs
}

// BenchmarkHistory: a building with DOORLEDGER_BENCH_EVENTS events (default
// 200k). Sub-benchmarks, one History call (50
// events, through the access check, as a board member) per iteration: the
// first page, a deep page (90% down), a deep page of one device, the first
// page of anomalies only; each reports p50 and p95 in µs.
func BenchmarkHistory(b *testing.B) {
	n := benchEvents(b, 200000)
	w, devs := benchHistoryWorld(b, n)
	board := uctx(w.BoardA)
	cursorAt := func(f doorledger.UnlockFilter, depth int) doorledger.UnlockCursor {
		q := `SELECT effective_at, id FROM unlock_events WHERE building_id = ? ORDER BY effective_at DESC, id DESC LIMIT 1 OFFSET ?`
		args := []any{w.A, depth}
		if f.DeviceID != 0 {
			q = `SELECT effective_at, id FROM unlock_events WHERE device_id = ? ORDER BY effective_at DESC, id DESC LIMIT 1 OFFSET ?`
			args = []any{f.DeviceID, depth}
		}
		var at string
		var id int64
		if err := w.d.Reader().QueryRow(q, args...).Scan(&at, &id); err != nil {
			b.Fatal(err)
		}
		t, _ := time.Parse("2006-01-02T15:04:05.000000Z", at)
		return doorledger.UnlockCursor{At: t, ID: id}
	}
	deep := doorledger.UnlockFilter{BuildingID: w.A}
	deep.After = cursorAt(deep, n*9/10)
	deepDevice := doorledger.UnlockFilter{BuildingID: w.A, DeviceID: devs[3]}
	deepDevice.After = cursorAt(deepDevice, n/len(devs)*9/10)
	for _, c := range []struct {
		name string
		f    doorledger.UnlockFilter
	}{
		{"first_page", doorledger.UnlockFilter{BuildingID: w.A}},
		{"deep_page", deep},
		{"deep_page_device", deepDevice},
		{"first_page_anomalies", doorledger.UnlockFilter{BuildingID: w.A, AnomaliesOnly: true}},
	} {
		b.Run(c.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				t := time.Now()
				page, err := w.svc.History(board, c.f)
				lat = append(lat, time.Since(t))
				if err != nil || len(page.Events) != 50 {
					b.Fatalf("page: %d events, %v", len(page.Events), err)
				}
			}
			slices.Sort(lat)
			us := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
			b.ReportMetric(us(0.50), "p50-µs")
			b.ReportMetric(us(0.95), "p95-µs")
		})
	}
}

// BenchmarkExportCSV: one iteration exports every event of a building of
// DOORLEDGER_BENCH_EVENTS events (default 200k) to io.Discard. Reports rows/s, the process's peak
// RSS during the exports (Linux) and the Go heap in use after. Run it with
// -benchtime 1x or a few x: each iteration is a whole export.
func BenchmarkExportCSV(b *testing.B) {
	n := benchEvents(b, 200000)
	w, _ := benchHistoryWorld(b, n)
	board := uctx(w.BoardA)
	runtime.GC()
	resetPeakRSS()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rows, err := w.svc.ExportCSV(board, doorledger.UnlockFilter{BuildingID: w.A}, io.Discard)
		if err != nil || rows != int64(n) {
			b.Fatalf("export: %d rows, %v", rows, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	if mb := peakRSSMB(); mb > 0 {
		b.ReportMetric(mb, "peak-rss-MB")
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-inuse-MB")
}

// resetPeakRSS resets the kernel's record of the process's peak RSS (Linux),
// so that peakRSSMB reports the peak since.
func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSSMB reads VmHWM, the process's peak RSS, in MB (0 where unknown).
func peakRSSMB() float64 {
	buf, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(buf), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return float64(kb) / 1024
		}
	}
	return 0
}

// BenchmarkDeviceIndexReads is the evidence for keeping the per-device
// index unlock_events_device (device_id, effective_at, id), although it costs
// ingest a page written per event: a group commit holds about one event per
// device, so each event lands on its own device's leaf page (so does the
// idempotency index (device_id, event_id); any index that serves a device's
// history in time order, such as (building_id, device_id, effective_at), is
// ordered by device first and costs the same). Building A holds
// DOORLEDGER_BENCH_EVENTS events (default 200k) over three years from 100
// devices, one of them rare (one event in 1,000). Measured: the device
// page's reads, as a board member — the first history page of a busy and of
// the rare device, a deep page (90% down) of the rare one, its 30-day chart
// (DailyCounts) — with the index, then after dropping it. Each reports p50
// and p95 in µs and logs SQLite's plan (without the index: every event of
// the device through the idempotency index, then a sort).
func BenchmarkDeviceIndexReads(b *testing.B) {
	n := benchEvents(b, 200000)
	w := newUnlockWorld(b, "America/New_York", time.Time{})
	devs := make([]int64, 100)
	for i := range devs {
		devs[i], _ = w.enabledDevice(b, w.A)
	}
	busy, rare := devs[1], devs[0]
	now := *w.Now
	span := 3 * 365 * 24 * time.Hour
	rawInsert(b, w, n, func(i int) (doorledger.UnlockEvent, int64) {
		dev := devs[1+i%(len(devs)-1)]
		if i%1000 == 0 {
			dev = rare
		}
		at := now.Add(-time.Duration(int64(span) / int64(n) * int64(i)))
		return doorledger.UnlockEvent{DeviceID: dev, EventID: "d-" + strconv.Itoa(i), OccurredAt: at, ReceivedAt: at,
			Method: doorledger.MethodKeypad, Result: doorledger.UnlockGranted, Source: doorledger.SourceMQTT}, w.A
	})
	if _, err := w.d.Writer().Exec(`ANALYZE`); err != nil {
		b.Fatal(err)
	}
	var deepAt string
	var deepID int64
	if err := w.d.Reader().QueryRow(`SELECT effective_at, id FROM unlock_events WHERE device_id = ? ORDER BY effective_at DESC, id DESC LIMIT 1 OFFSET ?`,
		rare, n/1000*9/10).Scan(&deepAt, &deepID); err != nil {
		b.Fatal(err)
	}
	deepT, _ := time.Parse("2006-01-02T15:04:05.000000Z", deepAt)
	board := uctx(w.BoardA)
	pages := []struct {
		name string
		f    doorledger.UnlockFilter
	}{
		{"first_page_busy", doorledger.UnlockFilter{BuildingID: w.A, DeviceID: busy}},
		{"first_page_rare", doorledger.UnlockFilter{BuildingID: w.A, DeviceID: rare}},
		{"deep_page_rare", doorledger.UnlockFilter{BuildingID: w.A, DeviceID: rare, After: doorledger.UnlockCursor{At: deepT, ID: deepID}}},
	}
	measure := func(b *testing.B, call func() error) {
		lat := make([]time.Duration, 0, b.N)
		for i := 0; i < b.N; i++ {
			t := time.Now()
			if err := call(); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t))
		}
		slices.Sort(lat)
		us := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
		b.ReportMetric(us(0.50), "p50-µs")
		b.ReportMetric(us(0.95), "p95-µs")
	}
	for _, variant := range []string{"with_index", "without_index"} {
		if variant == "without_index" {
			if _, err := w.d.Writer().Exec(`DROP INDEX unlock_events_device`); err != nil {
				b.Fatal(err)
			}
			if _, err := w.d.Writer().Exec(`ANALYZE`); err != nil {
				b.Fatal(err)
			}
		}
		for _, p := range pages {
			plan, err := w.svc.ExplainHistory(sys(), p.f)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(variant+"/"+p.name, func(b *testing.B) {
				b.Logf("plan: %s", strings.Join(plan, "; "))
				measure(b, func() error {
					page, err := w.svc.History(board, p.f)
					if err == nil && len(page.Events) == 0 {
						err = fmt.Errorf("empty page")
					}
					return err
				})
			})
		}
		b.Run(variant+"/chart_30_days_rare", func(b *testing.B) {
			measure(b, func() error {
				_, err := w.svc.DailyCounts(board, w.A, rare, 30)
				return err
			})
		})
	}
}

// BenchmarkRawInsertLevers measures schema and pragma levers on the floor
// itself: the benchmark events inserted raw, 40 rows a transaction (the size
// group commits reach over MQTT), into databases that differ by one change
// each, alternating rounds of 5,000 rows. For each it logs the median rate
// and the median of its per-round ratios to the unchanged schema. These
// costs are shared by ingest and the floor: a lever here speeds both.
//
//	go test ./db/sqlite/ -run '^$' -bench RawInsertLevers -benchtime 100000x
func BenchmarkRawInsertLevers(b *testing.B) {
	const batch, round = 40, 5000
	levers := []struct{ name, sql string }{
		{"as_is", ``},
		{"wal_autocheckpoint_10000", `PRAGMA wal_autocheckpoint = 10000`},
		{"building_index_with_result", `DROP INDEX unlock_events_granted; DROP INDEX unlock_events_building;
			CREATE INDEX unlock_events_building ON unlock_events (building_id, effective_at, id, result)`},
		{"without_device_index", `DROP INDEX unlock_events_device`},
		// The price of checking effective_at at insert (migrations/012).
		{"without_effective_at_check", `DROP TRIGGER unlock_events_effective_at`},
		// The price of the statement journal each insert opens, with the
		// work of the triggers that make it open one (a statement that
		// fires a trigger may write several rows, and these may abort).
		{"without_insert_triggers", `DROP TRIGGER unlock_events_effective_at; DROP TRIGGER building_open_anomalies_event;
			DROP TRIGGER unlock_daily_insert`},
		// The statement journal in memory whatever its size (by default a
		// temporary file past 64 KiB).
		{"temp_store_memory", `PRAGMA temp_store = MEMORY`},
	}
	ws := make([]*unlockWorld, len(levers))
	var devs []int64
	for i, l := range levers {
		ws[i], devs = benchIngestWorld(b)
		if l.sql != "" {
			if _, err := ws[i].d.Writer().Exec(l.sql); err != nil {
				b.Fatal(err)
			}
		}
	}
	bld := deviceBuildings(b, ws[0])
	now := *ws[0].Now
	rates := make([][]float64, len(levers))
	b.ResetTimer()
	for r, done := 0, 0; done < b.N; r, done = r+1, done+round {
		n := min(round, b.N-done)
		rows := make([]storedUnlock, n)
		for i := range rows {
			ev := benchEvent(now, devs[(done+i)%len(devs)], int64(done+i), int64(b.N))
			rows[i] = storedUnlock{building: bld[ev.DeviceID], device: ev.DeviceID, eventID: ev.EventID, occurred: udb(ev.OccurredAt),
				received: udb(ev.ReceivedAt), method: ev.Method, actor: ev.ActorRef, result: string(ev.Result), source: ev.Source,
				effective: udb(ev.OccurredAt)}
		}
		for k := range levers {
			v := (k + r) % len(levers)
			t := time.Now()
			insertRows(b, ws[v], rows, batch)
			rates[v] = append(rates[v], float64(n)/time.Since(t).Seconds())
		}
	}
	b.StopTimer()
	if b.N < round {
		return // the framework's first, one-row run
	}
	median := func(x []float64) float64 {
		x = slices.Clone(x)
		slices.Sort(x)
		return x[len(x)/2]
	}
	for v, l := range levers {
		rel := make([]float64, len(rates[v]))
		for i := range rel {
			rel[i] = rates[v][i] / rates[0][i]
		}
		b.Logf("%-28s %6.0f rows/s, %.2f× as_is (median of paired rounds)", l.name, median(rates[v]), median(rel))
	}
}
