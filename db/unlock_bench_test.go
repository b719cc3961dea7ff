package db_test

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
	"github.com/doorledger/doorledger/db"
)

// Benchmarks of unlock ingest and history. Every iteration is bounded (one
// event, one page, one export), so they run behind no tag:
//
//	go test ./db/ -run '^$' -bench 'IngestGroupCommit|RawBatchInsert' -benchtime 3x -count 1   # smoke
//	go test ./db/ -run '^$' -bench 'IngestGroupCommit|RawBatchInsert' -benchtime 100000x       # figures
//	go test ./db/ -run '^$' -bench 'IngestVsRaw' -benchtime 100000x -count 3                  # the ratio
//	go test ./db/ -run '^$' -bench 'History' -benchtime 2000x                                  # 200k events
//	DOORLEDGER_BENCH_EVENTS=5000000 go test ./db/ -run '^$' -bench 'History' -benchtime 2000x -timeout 60m
//	DOORLEDGER_BENCH_EVENTS=1000000 go test ./db/ -run '^$' -bench 'ExportCSV' -benchtime 1x -timeout 30m
//
// The figure for history is 5M events in one building (p95 under 5 ms
// for the first and a deep page); the default is 200k so that a run takes
// seconds. DOORLEDGER_BENCH_EVENTS sets it.

const benchDevices = 100

// benchIngestWorld is 10 buildings with 10 enabled, consented devices each.
func benchIngestWorld(b *testing.B) (*unlockWorld, []int64) {
	b.Helper()
	w := newUnlockWorld(b, "UTC", time.Time{})
	buildings := []int64{w.A, w.B}
	bs := db.NewBuildingService(w.d)
	for len(buildings) < 10 {
		bld, err := bs.CreateBuilding(sys(), doorledger.BuildingInput{Name: fmt.Sprintf("Bench %d", len(buildings)), Address: "1 Bench St", Timezone: "America/New_York"})
		if err != nil {
			b.Fatal(err)
		}
		buildings = append(buildings, bld.ID)
	}
	devs := make([]int64, benchDevices)
	for i := range devs {
		devs[i], _ = w.enabledDevice(b, buildings[i%len(buildings)])
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
	now := *w.now
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
	now := *w.now
	b.ResetTimer()
	rawInsert(b, w, b.N, func(i int) (doorledger.UnlockEvent, int64) {
		ev := benchEvent(now, devs[i%benchDevices], int64(i), int64(b.N))
		return ev, bld[ev.DeviceID]
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkIngestVsRaw alternates the two above on two databases, 10,000
// events at a time, so that both see the same machine load, and reports both
// rates and their ratio (the target: ratio >= 0.5).
func BenchmarkIngestVsRaw(b *testing.B) {
	wg, devsG := benchIngestWorld(b)
	wr, devsR := benchIngestWorld(b)
	bld := deviceBuildings(b, wr)
	now := *wr.now
	const round = 10000
	var tg, tr time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; done += round {
		n := min(round, b.N-done)
		t := time.Now()
		groupCommitRun(b, wg, devsG, done, n, b.N)
		tg += time.Since(t)
		t = time.Now()
		start := done
		rawInsert(b, wr, n, func(i int) (doorledger.UnlockEvent, int64) {
			ev := benchEvent(now, devsR[(start+i)%benchDevices], int64(start+i), int64(b.N))
			return ev, bld[ev.DeviceID]
		})
		tr += time.Since(t)
	}
	b.StopTimer()
	g, r := float64(b.N)/tg.Seconds(), float64(b.N)/tr.Seconds()
	b.ReportMetric(g, "group-events/s")
	b.ReportMetric(r, "raw-events/s")
	b.ReportMetric(g/r, "ratio")
	if groups, events := wg.svc.Stats(); groups > 0 {
		b.ReportMetric(float64(events)/float64(groups), "events/commit")
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
		st, err := tx.Prepare(`INSERT INTO unlock_events (building_id, device_id, device_ref, event_id, occurred_at, received_at, method, actor_ref, result, anomalies, source)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
		if err != nil {
			tb.Fatal(err)
		}
		for i := start; i < min(n, start+1000); i++ {
			ev, building := row(i)
			var bits int64
			if len(ev.Anomalies) > 0 {
				bits = 8
			}
			if _, err := st.Exec(building, ev.DeviceID, ev.DeviceRef, ev.EventID, udb(ev.OccurredAt), udb(ev.ReceivedAt), ev.Method, ev.ActorRef, ev.Result, bits, ev.Source); err != nil {
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
	now := *w.now
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
// 200k; the figure is 5M). Sub-benchmarks, one History call (50
// events, through the access check, as a board member) per iteration: the
// first page, a deep page (90% down), a deep page of one device, the first
// page of anomalies only; each reports p50 and p95 in µs.
func BenchmarkHistory(b *testing.B) {
	n := benchEvents(b, 200000)
	w, devs := benchHistoryWorld(b, n)
	board := uctx(w.boardA)
	cursorAt := func(f doorledger.UnlockFilter, depth int) doorledger.UnlockCursor {
		q := `SELECT occurred_at, id FROM unlock_events WHERE building_id = ? ORDER BY occurred_at DESC, id DESC LIMIT 1 OFFSET ?`
		args := []any{w.A, depth}
		if f.DeviceID != 0 {
			q = `SELECT occurred_at, id FROM unlock_events WHERE device_id = ? ORDER BY occurred_at DESC, id DESC LIMIT 1 OFFSET ?`
			args = []any{f.DeviceID, depth}
		}
		var at string
		var id int64
		if err := w.d.Reader().QueryRow(q, args...).Scan(&at, &id); err != nil {
			b.Fatal(err)
		}
		t, _ := time.Parse("2006-01-02T15:04:05.000000Z", at)
		return doorledger.UnlockCursor{OccurredAt: t, ID: id}
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
// DOORLEDGER_BENCH_EVENTS events (default 200k; the figure is 1M,
// peak RSS under 100 MB) to io.Discard. Reports rows/s, the process's peak
// RSS during the exports (Linux) and the Go heap in use after. Run it with
// -benchtime 1x or a few x: each iteration is a whole export.
func BenchmarkExportCSV(b *testing.B) {
	n := benchEvents(b, 200000)
	w, _ := benchHistoryWorld(b, n)
	board := uctx(w.boardA)
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
