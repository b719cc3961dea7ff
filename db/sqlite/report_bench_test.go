package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
	pdfreport "github.com/doorledger/doorledger/reports"
)

// BenchmarkReportEvents measures the database side of the audit report and
// each lever tried on it, in one run: a building (America/New_York, 20
// devices) with DOORLEDGER_BENCH_EVENTS unlock events (default 100k) over
// the last year, written in time order as ingest
// leaves them (one building alone; DOORLEDGER_BENCH_OTHERS=k interleaves k
// events of another building after each), 2% flagged and a tenth of those
// acknowledged. One iteration reads one report's events:
//
//   - pdf: GatherReport and the PDF (reports.AuditReportPDF, written
//     nowhere), for the share of the database in the report;
//   - gather: GatherReport, then Events walked twice as the PDF does (count,
//     then print): the first walk reads the database and keeps a copy, the
//     second replays it;
//   - gather-1walk: the same, one walk (the database read alone);
//   - as-history, as-history-1walk: the way GatherReport read before, two
//     walks of History's 15 columns scanned by scanUnlock, and one;
//   - floor-ids: one walk of the ids alone (an index-only scan);
//   - covering-index, mmap-256M, cache-64M: the levers that change the
//     database rather than the code, each as pairs of one walk without it
//     and one with it (an index holding every column the scan reads, in
//     place of unlock_events_building; PRAGMA mmap_size or cache_size on
//     every read connection), one pair an iteration, reporting both and
//     the median ratio with/without; covering-index-writes, what that
//     index costs: the database's size after VACUUM and writing events
//     (5,000 of another building, 1,000 a transaction), in pairs too.
//
// Each reports ns/event and cpu-ns/event (the process's user+system CPU
// time, which other load on the machine inflates less than wall time),
// per event of the report.
//
//	go test ./db/sqlite -run '^$' -bench ReportEvents -benchtime 5x -count 3
func BenchmarkReportEvents(b *testing.B) {
	n := benchEvents(b, 100_000)
	others := 0
	if s := os.Getenv("DOORLEDGER_BENCH_OTHERS"); s != "" {
		var err error
		if others, err = strconv.Atoi(s); err != nil || others < 0 {
			b.Fatalf("DOORLEDGER_BENCH_OTHERS=%q: want a number >= 0", s)
		}
	}
	w, devs := benchHistoryWorld(b, 0) // its people and 20 devices
	devB, _ := w.enabledDevice(b, w.B)
	logs := sqlite.NewLogService(w.d, mustLogKey(b))
	reports := sqlite.NewReportService(w.d, logs, "https://portal.test")
	ny := mustLoc(b, "America/New_York")
	now := *w.Now
	from, to := day(now, ny, -364), day(now, ny, 0)
	start, _ := time.ParseInLocation("2006-01-02", from, ny)
	end, _ := time.ParseInLocation("2006-01-02", day(now, ny, 1), ny)
	span := now.Add(-time.Minute).Sub(start)
	rawInsert(b, w, n*(1+others), func(j int) (doorledger.UnlockEvent, int64) {
		i := j / (1 + others)
		at := start.Add(span / time.Duration(n+1) * time.Duration(i+1))
		ev := doorledger.UnlockEvent{DeviceID: devs[i%len(devs)], EventID: "r-" + strconv.Itoa(j), OccurredAt: at, ReceivedAt: at.Add(700 * time.Millisecond),
			Method: doorledger.MethodCourierApp, ActorRef: fmt.Sprintf("AMZ-%08d", 4000000+j), Result: doorledger.UnlockGranted, Source: doorledger.SourceMQTT}
		if i%10 == 3 {
			ev.Result = doorledger.UnlockDenied
		}
		if i%50 == 7 {
			ev.Anomalies = []string{doorledger.AnomalyOutsideHours}
		}
		if j%(1+others) != 0 {
			ev.DeviceID = devB
			return ev, w.B
		}
		return ev, w.A
	})
	w.exec(b, `INSERT INTO anomaly_acks (event_id, building_id, acked_at, actor, note)
		SELECT id, building_id, received_at, 'bench@example.com', 'Checked: a neighbour''s parcel.' FROM unlock_events
		WHERE building_id = ? AND anomalies <> 0 AND id % 10 = 0`, w.A)
	w.exec(b, `ANALYZE`)
	r, err := reports.RequestReport(uctx(w.MgrA), doorledger.ReportRequest{BuildingID: w.A, Format: doorledger.ReportPDF, From: from, To: to})
	if err != nil || r.Total != int64(n) {
		b.Fatalf("request: %+v, %v", r, err)
	}
	// The sequencer runs every second in the portal: the log is caught up
	// when a report is gathered, not 100k entries behind.
	if _, err := logs.SignHead(sys()); err != nil {
		b.Fatal(err)
	}

	measure := func(walk func(b *testing.B)) func(b *testing.B) {
		return func(b *testing.B) {
			cpu0 := processCPU()
			for b.Loop() {
				walk(b)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/event")
			b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N)/float64(n), "cpu-ns/event")
		}
	}
	gather := func(walks int) func(b *testing.B) {
		return measure(func(b *testing.B) {
			if err := reports.GatherReport(gen(), r.ID, func(rep *doorledger.AuditReport) error {
				for walk := range walks {
					seen := 0
					if err := rep.Events(func(*doorledger.UnlockEvent) error { seen++; return nil }); err != nil || seen != n {
						b.Fatalf("walk %d: %d events, %v", walk, seen, err)
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		})
	}
	asHistory := func(walks int) func(b *testing.B) {
		return measure(func(b *testing.B) {
			seen := 0
			if err := sqlite.WalkAsHistory(context.Background(), w.d, w.A, start, end, walks, func(*doorledger.UnlockEvent) { seen++ }); err != nil || seen != walks*n {
				b.Fatalf("%d events, %v", seen, err)
			}
		})
	}
	b.Run("pdf", measure(func(b *testing.B) {
		if err := reports.GatherReport(gen(), r.ID, func(rep *doorledger.AuditReport) error {
			return pdfreport.AuditReportPDF(io.Discard, rep)
		}); err != nil {
			b.Fatal(err)
		}
	}))
	b.Run("gather", gather(2))
	b.Run("gather-1walk", gather(1))
	b.Run("as-history", asHistory(2))
	b.Run("as-history-1walk", asHistory(1))
	b.Run("floor-ids", measure(func(b *testing.B) {
		rows, err := w.d.Reader().Query(`SELECT id FROM unlock_events WHERE building_id = ?1 AND effective_at >= ?2 AND effective_at < ?3 ORDER BY effective_at, id`,
			w.A, udb(start), udb(end))
		if err != nil {
			b.Fatal(err)
		}
		seen := 0
		for rows.Next() {
			var id int64
			rows.Scan(&id)
			seen++
		}
		rows.Close()
		if seen != n {
			b.Fatalf("floor: %d events", seen)
		}
	}))

	// Each lever against the walk without it, in pairs (without, then with,
	// then undone), as many pairs as iterations: the machine's load drifts
	// within a run. Each reports both walks' ns/event and cpu-ns/event and
	// the median over the pairs of with/without (wall, and CPU).
	oneWalk := func(b *testing.B) (wall, cpu time.Duration) {
		t, c := time.Now(), processCPU()
		if err := reports.GatherReport(gen(), r.ID, func(rep *doorledger.AuditReport) error {
			seen := 0
			err := rep.Events(func(*doorledger.UnlockEvent) error { seen++; return nil })
			if err == nil && seen != n {
				err = fmt.Errorf("%d events", seen)
			}
			return err
		}); err != nil {
			b.Fatal(err)
		}
		return time.Since(t), processCPU() - c
	}
	lever := func(name string, on, off func()) {
		b.Run(name, func(b *testing.B) {
			var sum [2][2]time.Duration // [without, with][wall, cpu]
			var ratios [2][]float64     // [wall, cpu]
			for b.Loop() {
				w0, c0 := oneWalk(b)
				on()
				w1, c1 := oneWalk(b)
				off()
				sum[0][0], sum[0][1], sum[1][0], sum[1][1] = sum[0][0]+w0, sum[0][1]+c0, sum[1][0]+w1, sum[1][1]+c1
				ratios[0] = append(ratios[0], float64(w1)/float64(w0))
				ratios[1] = append(ratios[1], float64(c1)/float64(c0))
			}
			per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N) / float64(n) }
			b.ReportMetric(per(sum[0][0]), "without-ns/event")
			b.ReportMetric(per(sum[1][0]), "with-ns/event")
			b.ReportMetric(per(sum[0][1]), "without-cpu-ns/event")
			b.ReportMetric(per(sum[1][1]), "with-cpu-ns/event")
			b.ReportMetric(median(ratios[0]), "with/without")
			b.ReportMetric(median(ratios[1]), "with/without-cpu")
		})
	}
	// The covering index replaces unlock_events_building (its first columns
	// are that index's): beside it, the planner keeps the narrower one.
	covering := func() {
		w.exec(b, `DROP INDEX unlock_events_building`)
		w.exec(b, `CREATE INDEX bench_unlock_events_report ON unlock_events (building_id, effective_at, id,
			device_id, anomalies, occurred_at, received_at, device_ref, event_id, method, actor_ref, result, source)`)
		w.exec(b, `ANALYZE`)
		freshReaders(w.d)
		if plan := reportPlan(b, w.d, w.A); !strings.Contains(plan, "COVERING INDEX bench_unlock_events_report") {
			b.Fatalf("the planner does not use the covering index: %s", plan)
		}
	}
	narrow := func() {
		w.exec(b, `DROP INDEX bench_unlock_events_report`)
		w.exec(b, `CREATE INDEX unlock_events_building ON unlock_events (building_id, effective_at, id)`)
		w.exec(b, `ANALYZE`)
		freshReaders(w.d)
	}
	lever("covering-index", covering, narrow)
	lever("mmap-256M", func() { readersPragma(b, w.d, "mmap_size = 268435456") }, func() { readersPragma(b, w.d, "mmap_size = 0") })
	lever("cache-64M", func() { readersPragma(b, w.d, "cache_size = -65536") }, func() { readersPragma(b, w.d, "cache_size = -2000") })

	// What the covering index costs: the database's size, and writing
	// events (building B's, 1,000 a transaction) without and with it, in
	// pairs as above.
	size := func() float64 {
		var pages, pageSize int64
		w.d.Reader().QueryRow(`PRAGMA page_count`).Scan(&pages)
		w.d.Reader().QueryRow(`PRAGMA page_size`).Scan(&pageSize)
		return float64(pages*pageSize) / 1e6
	}
	b.Run("covering-index-writes", func(b *testing.B) {
		const rows = 5_000
		inserted := 0
		insert := func() time.Duration {
			at := now.Add(-time.Hour)
			t := time.Now()
			rawInsert(b, w, rows, func(i int) (doorledger.UnlockEvent, int64) {
				inserted++
				return doorledger.UnlockEvent{DeviceID: devB, EventID: "w-" + strconv.Itoa(inserted), OccurredAt: at, ReceivedAt: at,
					Method: doorledger.MethodCourierApp, ActorRef: fmt.Sprintf("AMZ-%08d", inserted), Result: doorledger.UnlockGranted, Source: doorledger.SourceMQTT}, w.B
			})
			return time.Since(t)
		}
		w.exec(b, `VACUUM`)
		sizeWithout := size()
		covering()
		w.exec(b, `VACUUM`)
		sizeWith := size()
		narrow()
		var sum [2]time.Duration
		var ratios []float64
		for b.Loop() {
			t0 := insert()
			covering()
			t1 := insert()
			narrow()
			sum[0], sum[1] = sum[0]+t0, sum[1]+t1
			ratios = append(ratios, float64(t1)/float64(t0))
		}
		b.ReportMetric(float64(sum[0].Nanoseconds())/float64(b.N*rows), "without-ns/row")
		b.ReportMetric(float64(sum[1].Nanoseconds())/float64(b.N*rows), "with-ns/row")
		b.ReportMetric(median(ratios), "with/without")
		b.ReportMetric(sizeWithout, "without-db-MB")
		b.ReportMetric(sizeWith, "with-db-MB")
	})
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// reportPlan is SQLite's plan of the report's event scan.
func reportPlan(tb testing.TB, d *sqlite.DB, building int64) string {
	tb.Helper()
	rows, err := d.Reader().Query(`EXPLAIN QUERY PLAN SELECT e.id, COALESCE(e.device_id, 0), e.occurred_at, e.received_at, e.anomalies,
		e.device_ref || x'1f' || e.event_id || x'1f' || e.method || x'1f' || e.actor_ref || x'1f' || e.result || x'1f' || e.source,
		CASE WHEN a.event_id IS NULL THEN NULL ELSE a.acked_at || x'1f' || a.actor || x'1f' || a.note END
		FROM unlock_events e LEFT JOIN anomaly_acks a ON a.event_id = e.id
		WHERE e.building_id = ?1 AND e.effective_at >= ?2 AND e.effective_at < ?3 ORDER BY e.effective_at, e.id`, building, "0", "9")
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	plan := ""
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			tb.Fatal(err)
		}
		plan += detail + "; "
	}
	return plan
}

// freshReaders closes the idle read connections, so that the next ones
// plan with the schema and statistics just changed.
func freshReaders(d *sqlite.DB) {
	d.Reader().SetMaxIdleConns(0)
	d.Reader().SetMaxIdleConns(8)
}

// readersPragma runs PRAGMA p on every connection of the read pool (all 8,
// held at once so that each is a different one; kept idle afterwards).
func readersPragma(tb testing.TB, d *sqlite.DB, p string) {
	tb.Helper()
	ctx := context.Background()
	r := d.Reader()
	r.SetMaxIdleConns(8)
	var conns []*sql.Conn
	for range 8 {
		c, err := r.Conn(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := c.ExecContext(ctx, "PRAGMA "+p); err != nil {
			tb.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Close()
	}
}

// processCPU is the user and system time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
