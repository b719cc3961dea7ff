package dbtest

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

var reportGatherTests = []test{
	{"ReportGatherSnapshot", testReportGatherSnapshot},
	{"ReportEventsAsHistory", testReportEventsAsHistory},
}

// TestReportGatherSnapshot checks what a report prints, through the
// services: only the building's events of the range, bounded in its time
// zone, in time order, the same on every pass and unmoved by events
// committed after the snapshot began; its devices and consents, its journal
// of the range, who asked, and a signed head covering the request. Package
// sqlite's TestReportGather adds commands and retired devices written by SQL.
func testReportGatherSnapshot(t *testing.T, newServices NewServices) {
	w := NewReportWorld(t, newServices(t), "America/New_York")
	ny := MustLoc(t, "America/New_York")
	from, to := Day(*w.Now, ny, -10), Day(*w.Now, ny, -5)
	start, _ := time.ParseInLocation("2006-01-02", from, ny)
	end, _ := time.ParseInLocation("2006-01-02", Day(*w.Now, ny, -4), ny)
	dev, consent := w.EnabledDevice(t, w.A)
	w.EnabledDevice(t, w.B)

	// Events on both sides of each boundary (midnight in New York, not UTC),
	// recorded out of order, and the same times in building B.
	// start-3h and end-2h fall on the other side of the range in UTC.
	times := []time.Time{start.Add(-time.Microsecond), start, start.Add(5 * time.Hour), start.Add(5 * time.Hour), end.Add(-time.Microsecond), end,
		start.Add(-3 * time.Hour), end.Add(-2 * time.Hour)}
	ids := w.UnlocksAt(t, w.A, times[2], times[0], times[5], times[4], times[1], times[3], times[6], times[7])
	w.UnlocksAt(t, w.B, times...)
	// In time order, equal times by id: start, the two at +5h, end-2h, end-1µs.
	want := []string{ids[4], ids[0], ids[5], ids[7], ids[3]}

	r := w.Request(t, w.BoardA, w.A, doorledger.ReportPDF, from, to)
	w.Claim(t, r.ID)
	*w.Now = w.Now.Add(1500 * time.Millisecond)
	pass := func(rep *doorledger.AuditReport) []string {
		var list []string
		var last time.Time
		if err := rep.Events(func(e *doorledger.UnlockEvent) error {
			if e.BuildingID != w.A || e.EffectiveAt().Before(last) {
				t.Errorf("event %+v out of place", e)
			}
			last = e.EffectiveAt()
			list = append(list, e.EventID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return list
	}
	var got *doorledger.AuditReport
	if err := w.Reports.GatherReport(gen(), r.ID, func(rep *doorledger.AuditReport) error {
		got = rep
		// yield's error stops the walk and comes back; the walk keeps no copy.
		stop := fmt.Errorf("stop")
		n := 0
		if err := rep.Events(func(*doorledger.UnlockEvent) error { n++; return stop }); err != stop || n != 1 {
			t.Errorf("stopped walk: %v after %d", err, n)
		}
		// Committed while the snapshot is open: not in this report, though
		// the next walk reads the database.
		w.UnlocksAt(t, w.A, start.Add(2*time.Hour), start.Add(4*time.Hour))
		first := pass(rep)
		if !slices.Equal(first, want) {
			t.Errorf("events %v, want %v", first, want)
		}
		if again := pass(rep); !slices.Equal(again, first) {
			t.Errorf("second pass %v, first %v", again, first)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := got.Events(func(*doorledger.UnlockEvent) error { return nil }); err == nil {
		t.Error("Events after GatherReport returned: no error")
	}
	if got.ID != r.ID || got.From != from || got.To != to || got.GeneratedBy != w.BoardA.Email ||
		!got.GeneratedAt.Equal(w.Now.Truncate(time.Second)) || got.GeneratedAt.Location() != time.UTC {
		t.Errorf("report %s %s..%s by %s at %v", got.ID, got.From, got.To, got.GeneratedBy, got.GeneratedAt)
	}
	if got.Building == nil || got.Building.ID != w.A || got.Building.Timezone != "America/New_York" || len(got.Building.Signers) != 1 {
		t.Errorf("building %+v", got.Building)
	}
	if len(got.Devices) != 1 || got.Devices[0].ID != dev || got.Devices[0].Serial == "" || got.Devices[0].DesiredState != doorledger.StateEnabled {
		t.Errorf("devices %+v", got.Devices)
	}
	if len(got.Consents) != 1 || got.Consents[0].ID != consent || got.Consents[0].DeviceID != dev || got.Consents[0].Signature == nil ||
		got.Consents[0].Signer.Title != "Board president" {
		t.Errorf("consents %+v", got.Consents)
	}
	for _, e := range got.AuditEntries {
		if e.BuildingID != w.A || e.At.Before(start) || !e.At.Before(end) {
			t.Errorf("journal entry out of the building or range: %+v", e)
		}
	}
	// The head is signed for the report and covers its request.
	if got.LogHead == nil || got.VerifierKey != w.Logs.VerifierKey() || got.VerifierKey == "" {
		t.Fatalf("head %+v, key %q", got.LogHead, got.VerifierKey)
	}
	req := w.Journal(t, w.A, "report.request")[0]
	if i, err := w.Logs.EntryIndex(sys(), doorledger.LogKindAudit, req.ID); err != nil || i >= got.LogHead.Size {
		t.Errorf("request entry at %d, head size %d: %v", i, got.LogHead.Size, err)
	}

	// A new gather sees the events committed since.
	if err := w.Reports.GatherReport(gen(), r.ID, func(rep *doorledger.AuditReport) error {
		if n := len(pass(rep)); n != len(want)+2 {
			t.Errorf("fresh gather: %d events, want %d", n, len(want)+2)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	WantCode(t, "unknown report", w.Reports.GatherReport(gen(), "AR-none", func(*doorledger.AuditReport) error { return nil }), doorledger.ENOTFOUND)
}

// TestReportEventsAsHistory checks that a report's events, from the
// database and then from the copy later walks replay, are exactly History's,
// acknowledged or not. Package sqlite's test of the same name adds texts
// written around the services.
func testReportEventsAsHistory(t *testing.T, newServices NewServices) {
	w := NewReportWorld(t, newServices(t), "Asia/Kolkata")
	kolkata := MustLoc(t, "Asia/Kolkata")
	from, to := Day(*w.Now, kolkata, -5), Day(*w.Now, kolkata, 0)
	start, _ := time.ParseInLocation("2006-01-02", from, kolkata)
	dev, _ := w.EnabledDevice(t, w.A)
	w.Record(t, UnlockEv(dev, "fine", start.Add(time.Hour), doorledger.UnlockGranted),
		UnlockEv(dev, "no", start.Add(2*time.Hour), doorledger.UnlockDenied))
	ids := w.UnlocksAt(t, w.A, start.Add(3*time.Hour), start.Add(3*time.Hour), start.Add(4*time.Hour+123456*time.Microsecond), start.Add(5*time.Hour))
	if _, err := w.Unlocks.AcknowledgeAnomalies(As(w.MgrA), w.A, []int64{w.EventID(t, w.A, ids[0]), w.EventID(t, w.A, ids[2])}, "Ζ: gate fixed"); err != nil {
		t.Fatal(err)
	}
	w.UnlocksAt(t, w.B, start.Add(time.Hour)) // another building's

	page, err := w.Unlocks.History(As(w.MgrA), doorledger.UnlockFilter{BuildingID: w.A, From: from, To: to, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(page.Events)
	slices.Reverse(want)
	if len(want) != 6 || !want[2].Acknowledged() {
		t.Fatalf("history %d events, the third %+v", len(want), want[2])
	}
	r := w.Request(t, w.MgrA, w.A, doorledger.ReportCSV, from, to)
	w.Claim(t, r.ID)
	if err := w.Reports.GatherReport(gen(), r.ID, func(rep *doorledger.AuditReport) error {
		for walk := 1; walk <= 3; walk++ {
			i := 0
			if err := rep.Events(func(e *doorledger.UnlockEvent) error {
				if i >= len(want) {
					t.Fatalf("walk %d: more than %d events", walk, len(want))
				}
				if !reflect.DeepEqual(e, want[i]) {
					t.Errorf("walk %d, event %d:\n got %+v\nwant %+v", walk, i, e, want[i])
				}
				i++
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if i != len(want) {
				t.Errorf("walk %d: %d events, want %d", walk, i, len(want))
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
