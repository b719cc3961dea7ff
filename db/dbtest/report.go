package dbtest

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

var reportTests = append([]test{
	{"ReportGatherAcknowledgements", testReportGatherAcknowledgements},
	{"ReportEventsStopEarly", testReportEventsStopEarly},
}, append(reportRegistryTests, reportGatherTests...)...)

// TestReportGatherAcknowledgements checks that the report's events carry
// their acknowledgements as the snapshot holds them: one given before the
// report started is in both walks, one given while it is being printed is in
// neither, so the PDF's two passes agree.
func testReportGatherAcknowledgements(t *testing.T, newServices NewServices) {
	w := NewReportWorld(t, newServices(t), "Europe/Zurich")
	zurich := MustLoc(t, "Europe/Zurich")
	from := Day(*w.Now, zurich, -3)
	start, _ := time.ParseInLocation("2006-01-02", from, zurich)
	ids := w.UnlocksAt(t, w.A, start.Add(time.Hour), start.Add(2*time.Hour), start.Add(3*time.Hour)) // unknown_device: anomalous
	first, second := w.EventID(t, w.A, ids[0]), w.EventID(t, w.A, ids[1])
	const note = "Курьер: ложная тревога · Ο τεχνικός αφαίρεσε τη συσκευή"
	acked, err := w.Unlocks.AcknowledgeAnomaly(As(w.MgrA), first, "  "+note+" ")
	if err != nil {
		t.Fatal(err)
	}

	r := w.Request(t, w.MgrA, w.A, doorledger.ReportPDF, from, Day(*w.Now, zurich, 0))
	w.Claim(t, r.ID)
	type ack struct {
		at       time.Time
		by, note string
	}
	walk := func(rep *doorledger.AuditReport) map[string]ack {
		got := map[string]ack{}
		if err := rep.Events(func(e *doorledger.UnlockEvent) error {
			got[e.EventID] = ack{e.AcknowledgedAt, e.AcknowledgedBy, e.AckNote}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := map[string]ack{ids[0]: {acked.AcknowledgedAt, w.MgrA.Email, note}, ids[1]: {}, ids[2]: {}}
	if err := w.Reports.GatherReport(gen(), r.ID, func(rep *doorledger.AuditReport) error {
		got := walk(rep)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("first walk %+v, want %+v", got, want)
		}
		if acked.AcknowledgedAt.IsZero() || acked.AcknowledgedAt.Location() != time.UTC {
			t.Errorf("acknowledged at %v, want a UTC time", acked.AcknowledgedAt)
		}
		// Acknowledged while the report is printed: not in this report.
		if _, err := w.Unlocks.AcknowledgeAnomaly(As(w.MgrA), second, "later"); err != nil {
			t.Fatal(err)
		}
		if again := walk(rep); !reflect.DeepEqual(again, want) {
			t.Errorf("second walk %+v, want %+v as the first", again, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The next report has it.
	if err := w.Reports.GatherReport(gen(), r.ID, func(rep *doorledger.AuditReport) error {
		if got := walk(rep)[ids[1]]; got.note != "later" || got.by != w.MgrA.Email || got.at.IsZero() {
			t.Errorf("fresh gather: %s acknowledged as %+v", ids[1], got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestReportEventsStopEarly checks that a first walk stopped by yield, by an
// error or a panic, keeps no partial copy: the next walks read every event.
func testReportEventsStopEarly(t *testing.T, newServices NewServices) {
	w := NewReportWorld(t, newServices(t), "UTC")
	from := Day(*w.Now, time.UTC, -1)
	start, _ := time.ParseInLocation("2006-01-02", from, time.UTC)
	var times []time.Time
	for i := range 700 {
		times = append(times, start.Add(time.Duration(i)*time.Minute))
	}
	w.UnlocksAt(t, w.A, times...)
	r := w.Request(t, w.MgrA, w.A, doorledger.ReportPDF, from, Day(*w.Now, time.UTC, 0))
	w.Claim(t, r.ID)
	count := func(rep *doorledger.AuditReport) int {
		n := 0
		if err := rep.Events(func(*doorledger.UnlockEvent) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	stop := fmt.Errorf("stop")
	if err := w.Reports.GatherReport(gen(), r.ID, func(rep *doorledger.AuditReport) error {
		n := 0
		if err := rep.Events(func(*doorledger.UnlockEvent) error { n++; return stop }); err != stop || n != 1 {
			t.Errorf("stopped walk: %v after %d", err, n)
		}
		for walk := 2; walk <= 3; walk++ {
			if n := count(rep); n != 700 {
				t.Errorf("walk %d: %d events, want 700", walk, n)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Errorf("recovered %v, want the panic", v)
			}
		}()
		w.Reports.GatherReport(gen(), r.ID, func(rep *doorledger.AuditReport) error {
			n := 0
			return rep.Events(func(*doorledger.UnlockEvent) error {
				if n++; n == 300 {
					panic("boom")
				}
				return nil
			})
		})
	}()
	if err := w.Reports.GatherReport(gen(), r.ID, func(rep *doorledger.AuditReport) error {
		if n := count(rep); n != 700 {
			t.Errorf("after a panic: %d events, want 700", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
