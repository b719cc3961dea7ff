package db_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db"
	pdfreport "github.com/doorledger/doorledger/reports"
)

// BenchmarkReportEvents measures the database side of the audit report and
// each lever tried on it, in one run: a building (America/New_York, 20
// devices) with DOORLEDGER_BENCH_EVENTS unlock events (default 100k, the
// issue's report) over the last year, written in time order as ingest
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
//   - gather-1walk+covering-index, +mmap-256M, +cache-64M: the levers
//     that change the database rather than the code, each applied for its
//     sub-benchmark only (an index holding every column the scan reads, in
//     place of unlock_events_building; PRAGMA mmap_size or cache_size on
//     every read connection).
//
// Each reports ns/event and cpu-ns/event (the process's user+system CPU
// time, which other load on the machine inflates less than wall time),
// per event of the report. gather-1walk runs again last, to show the drift.
//
//	go test ./db -run '^$' -bench ReportEvents -benchtime 5x -count 3
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
	logs := db.NewLogService(w.d, mustLogKey(b))
	reports := db.NewReportService(w.d, logs, "https://portal.test")
	ny := mustLoc(b, "America/New_York")
	now := *w.now
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
	r, err := reports.RequestReport(uctx(w.mgrA), doorledger.ReportRequest{BuildingID: w.A, Format: doorledger.ReportPDF, From: from, To: to})
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
			if err := db.WalkAsHistory(context.Background(), w.d, w.A, start, end, walks, func(*doorledger.UnlockEvent) { seen++ }); err != nil || seen != walks*n {
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
		rows, err := w.d.Reader().Query(`SELECT id FROM unlock_events WHERE building_id = ?1 AND occurred_at >= ?2 AND occurred_at < ?3 ORDER BY occurred_at, id`,
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

	// The covering index replaces unlock_events_building (its first columns
	// are that index's): beside it, the planner keeps the narrower one.
	w.exec(b, `DROP INDEX unlock_events_building`)
	w.exec(b, `CREATE INDEX bench_unlock_events_report ON unlock_events (building_id, occurred_at, id,
		device_id, anomalies, received_at, device_ref, event_id, method, actor_ref, result, source)`)
	w.exec(b, `ANALYZE`)
	freshReaders(w.d)
	if plan := reportPlan(b, w.d, w.A); !strings.Contains(plan, "COVERING INDEX bench_unlock_events_report") {
		b.Fatalf("the planner does not use the covering index: %s", plan)
	}
	b.Run("gather-1walk+covering-index", gather(1))
	w.exec(b, `DROP INDEX bench_unlock_events_report`)
	w.exec(b, `CREATE INDEX unlock_events_building ON unlock_events (building_id, occurred_at, id)`)
	w.exec(b, `ANALYZE`)
	freshReaders(w.d)

	readersPragma(b, w.d, "mmap_size = 268435456")
	b.Run("gather-1walk+mmap-256M", gather(1))
	readersPragma(b, w.d, "mmap_size = 0")
	readersPragma(b, w.d, "cache_size = -65536")
	b.Run("gather-1walk+cache-64M", gather(1))
	readersPragma(b, w.d, "cache_size = -2000")
	b.Run("gather-1walk-again", gather(1))
}

// reportPlan is SQLite's plan of the report's event scan.
func reportPlan(tb testing.TB, d *db.DB, building int64) string {
	tb.Helper()
	rows, err := d.Reader().Query(`EXPLAIN QUERY PLAN SELECT e.id, COALESCE(e.device_id, 0), e.occurred_at, e.received_at, e.anomalies,
		e.device_ref || x'1f' || e.event_id || x'1f' || e.method || x'1f' || e.actor_ref || x'1f' || e.result || x'1f' || e.source,
		CASE WHEN a.event_id IS NULL THEN NULL ELSE a.acked_at || x'1f' || a.actor || x'1f' || a.note END
		FROM unlock_events e LEFT JOIN anomaly_acks a ON a.event_id = e.id
		WHERE e.building_id = ?1 AND e.occurred_at >= ?2 AND e.occurred_at < ?3 ORDER BY e.occurred_at, e.id`, building, "0", "9")
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
func freshReaders(d *db.DB) {
	d.Reader().SetMaxIdleConns(0)
	d.Reader().SetMaxIdleConns(8)
}

// readersPragma runs PRAGMA p on every connection of the read pool (all 8,
// held at once so that each is a different one; kept idle afterwards).
func readersPragma(tb testing.TB, d *db.DB, p string) {
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
