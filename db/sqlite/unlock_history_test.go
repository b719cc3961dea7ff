package sqlite_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/ingest"
)

func TestUnlockHistoryQueryPlan(t *testing.T) {
	w := newUnlockWorld(t, "UTC", time.Time{})
	dev, _ := w.enabledDevice(t, w.A)
	w.record(t, unlockEv(dev, "one", w.Now.Add(-time.Minute), doorledger.UnlockGranted))
	if _, err := w.d.Writer().Exec(`ANALYZE`); err != nil {
		t.Fatal(err)
	}
	after := doorledger.UnlockCursor{At: *w.Now, ID: 1000}
	for _, tc := range []struct {
		f     doorledger.UnlockFilter
		index string
	}{
		{doorledger.UnlockFilter{BuildingID: w.A}, "unlock_events_building"},
		{doorledger.UnlockFilter{BuildingID: w.A, After: after}, "unlock_events_building"},
		{doorledger.UnlockFilter{BuildingID: w.A, After: after, From: "2026-01-01", To: "2026-12-31", Method: "keypad", Result: "granted"}, "unlock_events_granted"},
		{doorledger.UnlockFilter{BuildingID: w.A, After: after, AnomaliesOnly: true}, "unlock_events_anomalous"},
		{doorledger.UnlockFilter{BuildingID: w.A, After: after, DeviceID: dev}, "unlock_events_device"},
	} {
		plan, err := w.svc.ExplainHistory(sys(), tc.f)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.Join(plan, " | ")
		if !strings.Contains(s, "USING INDEX "+tc.index) || !strings.Contains(s, "effective_at") || strings.Contains(s, "TEMP B-TREE") {
			t.Errorf("%+v: plan %q, want a range of %s without sorting", tc.f, s, tc.index)
		}
		// SQLite (3.53) seeks on the first column of the row value and checks
		// the id on the index entries it meets: a page starts at the cursor's
		// time, whatever its depth.
		if !tc.f.After.IsZero() && !strings.Contains(s, "effective_at<?)") {
			t.Errorf("%+v: plan %q, want the cursor as the upper bound of the index range", tc.f, s)
		}
	}
}

func TestUnlockAccess(t *testing.T) {
	w := newUnlockWorld(t, "UTC", time.Time{})
	f := doorledger.UnlockFilter{BuildingID: w.A}
	for _, tc := range []struct {
		who  context.Context
		code string
	}{
		{uctx(w.Admin), ""}, {uctx(w.MgrA), ""}, {uctx(w.BoardA), ""},
		{uctx(w.InstA), doorledger.ENOTFOUND}, {uctx(w.MgrB), doorledger.ENOTFOUND},
		{context.Background(), doorledger.EUNAUTHORIZED},
	} {
		_, err := w.svc.History(tc.who, f)
		_, err2 := w.svc.ExportCSV(tc.who, f, io.Discard)
		_, err3 := w.svc.DailyCounts(tc.who, w.A, 0, 30)
		_, err4 := w.svc.UnlockSettings(tc.who, w.A)
		for _, e := range []error{err, err2, err3, err4} {
			if doorledger.ErrorCode(e) != tc.code {
				t.Errorf("%v: %v, want %q", doorledger.UserFromContext(tc.who), e, tc.code)
			}
		}
	}
	st := doorledger.UnlockSettings{RetentionDays: 400, BurstCount: 5, BurstMinutes: 5}
	for _, tc := range []struct {
		who  *doorledger.User
		code string
	}{{w.BoardA, doorledger.EFORBIDDEN}, {w.InstA, doorledger.EFORBIDDEN}, {w.MgrB, doorledger.ENOTFOUND}, {w.MgrA, ""}} {
		if _, err := w.svc.UpdateUnlockSettings(uctx(tc.who), w.A, st); doorledger.ErrorCode(err) != tc.code {
			t.Errorf("%s updates settings: %v, want %q", tc.who.Email, err, tc.code)
		}
	}
	if _, err := w.svc.ImportUnlocks(uctx(w.BoardA), doorledger.UnlockImport{BuildingID: w.A}); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Errorf("board imports: %v", err)
	}
	if _, err := w.svc.Purge(uctx(w.MgrA), *w.Now); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Errorf("manager purges: %v", err)
	}
	bad := doorledger.UnlockSettings{RetentionDays: 7, BurstCount: -1, BurstMinutes: 0, HeartbeatSeconds: -5,
		DeliveryHours: doorledger.DeliverySchedule{Restricted: true, Days: [7][]doorledger.DeliveryWindow{1: {{Start: 600, End: 500}}}}}
	fields := doorledger.ErrorFields(func() error { _, err := w.svc.UpdateUnlockSettings(uctx(w.MgrA), w.A, bad); return err }())
	for _, f := range []string{"retention_days", "burst_count", "burst_minutes", "heartbeat_seconds", "delivery_hours"} {
		if fields[f] == "" {
			t.Errorf("no message for %s: %v", f, fields)
		}
	}
	got, err := w.svc.UnlockSettings(uctx(w.BoardA), w.A)
	if err != nil || got.RetentionDays != 400 || got.BurstCount != 5 {
		t.Fatalf("settings: %+v %v", got, err)
	}
	if n := w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE action = 'building.unlock_settings' AND building_id = ?`, w.A); n != 1 {
		t.Fatalf("settings audited %d times", n)
	}
}

func TestUnlockExportCSV(t *testing.T) {
	w := newUnlockWorld(t, "America/New_York", time.Time{})
	dev, _ := w.enabledDevice(t, w.A)
	now := *w.Now
	const n = 4500 // more than one page of the export
	evs := make([]doorledger.UnlockEvent, 0, n)
	for i := 0; i < n; i++ {
		e := unlockEv(dev, fmt.Sprintf("x-%05d", i), now.Add(-time.Duration(i)*time.Second), doorledger.UnlockGranted)
		if i == 7 {
			e.ActorRef = "=HYPERLINK(\"http://evil.example\")"
		}
		evs = append(evs, e)
	}
	w.record(t, evs...)
	var buf countingWriter
	rows, err := w.svc.ExportCSV(uctx(w.BoardA), doorledger.UnlockFilter{BuildingID: w.A}, &buf)
	if err != nil || rows != n {
		t.Fatalf("export: %d rows, %v", rows, err)
	}
	if buf.writes < 3 {
		t.Errorf("export written in %d writes: not streamed page by page", buf.writes)
	}
	recs, err := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n+1 || recs[0][0] != "occurred_at" || recs[1][5] != "x-00000" || recs[n][5] != fmt.Sprintf("x-%05d", n-1) {
		t.Fatalf("export: %d records, first %q", len(recs), recs[:2])
	}
	if recs[8][7] != "'=HYPERLINK(\"http://evil.example\")" {
		t.Errorf("formula not defused: %q", recs[8][7])
	}
	if tm, err := time.Parse(time.RFC3339, recs[1][0]); err != nil || !tm.Equal(now) || !strings.HasSuffix(recs[1][0], now.In(mustLoc(t, "America/New_York")).Format("-07:00")) {
		t.Errorf("local time %q (%v)", recs[1][0], err)
	}
	// Filtered.
	buf = countingWriter{}
	rows, err = w.svc.ExportCSV(uctx(w.MgrA), doorledger.UnlockFilter{BuildingID: w.A, Result: doorledger.UnlockDenied}, &buf)
	if err != nil || rows != 0 || strings.Count(buf.String(), "\n") != 1 {
		t.Fatalf("filtered export: %d %v %q", rows, err, buf.String())
	}
	if n := w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE action = 'unlocks.export'`); n != 2 {
		t.Fatalf("exports audited %d times", n)
	}
}

func mustLoc(tb testing.TB, name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		tb.Fatal(err)
	}
	return loc
}

type countingWriter struct {
	bytes.Buffer
	writes int
}

func TestUnlockImportCSV(t *testing.T) {
	w := newUnlockWorld(t, "America/New_York", time.Time{})
	dev, _ := w.enabledDevice(t, w.A)
	devB, _ := w.enabledDevice(t, w.B)
	day := w.Now.AddDate(0, 0, -3).In(mustLoc(t, "America/New_York")).Format("2006-01-02")
	file := "Timestamp,Serial Number,Status,Type,Courier\n" +
		day + " 09:15:00,SN-00001,Success,Courier App,C-1\n" +
		day + " 09:16:00,sn-00001,Failed,Keypad,C-2\n" +
		day + " 09:17:00,UNKNOWN-9,Success,Remote,\n"
	pv, err := ingest.PreviewCSV(strings.NewReader(file), 5)
	if err != nil {
		t.Fatal(err)
	}
	imp, err := ingest.ParseCSV(strings.NewReader(file), ingest.CSVMapping{Columns: pv.Guess, Location: mustLoc(t, "America/New_York")})
	if err != nil {
		t.Fatal(err)
	}
	imp.BuildingID, imp.FileName = w.A, "export.csv"
	res, err := w.svc.ImportUnlocks(uctx(w.MgrA), *imp)
	if err != nil || res.Inserted != 3 || res.Anomalous != 1 {
		t.Fatalf("import: %+v %v", res, err)
	}
	// The same file again: nothing new (event ids derived from the rows).
	if res, err := w.svc.ImportUnlocks(uctx(w.MgrA), *imp); err != nil || res.Duplicates != 3 {
		t.Fatalf("re-import: %+v %v", res, err)
	}
	if e := w.Event(t, w.A, imp.Events[0].EventID); e.DeviceID != dev || e.Source != "csv" || e.OccurredAt.UTC().Hour() != 13 && e.OccurredAt.UTC().Hour() != 14 {
		t.Fatalf("imported: %+v", e)
	}
	// A device number of another building refuses the whole file, by line.
	imp.Events[1].DeviceID, imp.Events[2].DeviceID = devB, 424242
	imp.Events[0].EventID = "fresh"
	_, err = w.svc.ImportUnlocks(uctx(w.MgrA), *imp)
	f := doorledger.ErrorFields(err)
	if doorledger.ErrorCode(err) != doorledger.EINVALID || !strings.Contains(f["line 3"], "not in building") || !strings.Contains(f["line 4"], "no device 424242") {
		t.Fatalf("bad import: %v", err)
	}
	if c := w.count(t, `SELECT COUNT(*) FROM unlock_events WHERE event_id = 'fresh'`); c != 0 {
		t.Fatal("part of a refused import was written")
	}
	if c := w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE action = 'unlocks.import'`); c != 2 {
		t.Fatalf("imports audited %d times", c)
	}
}

// FuzzUnlockCursor: any string parses to a cursor that prints back the same, or is refused.
func FuzzUnlockCursor(f *testing.F) {
	f.Add("1763778000000000.42")
	f.Add("")
	f.Add("-62135596800000000.1")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := doorledger.ParseUnlockCursor(s)
		if err != nil {
			if doorledger.ErrorCode(err) != doorledger.EINVALID {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		c2, err := doorledger.ParseUnlockCursor(c.String())
		if err != nil || c2 != c {
			t.Fatalf("%q → %+v → %q → %+v, %v", s, c, c.String(), c2, err)
		}
	})
}

// FuzzUnlockSchedule: a schedule that parses prints in a form that parses to
// the same schedule, and Allows never panics.
func FuzzUnlockSchedule(f *testing.F) {
	f.Add("mon-fri 08:00-20:00; sat 09:00-12:00,14:00-17:00")
	f.Add("never")
	f.Add("fri-mon 00:00-24:00")
	f.Fuzz(func(t *testing.T, s string) {
		sch, err := doorledger.ParseDeliverySchedule(s)
		if err != nil {
			if doorledger.ErrorCode(err) != doorledger.EINVALID {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		again, err := doorledger.ParseDeliverySchedule(sch.String())
		if err != nil || again.String() != sch.String() || again.Restricted != sch.Restricted {
			t.Fatalf("%q → %q → %q, %v", s, sch.String(), again.String(), err)
		}
		for d := 0; d < 7; d++ {
			for _, win := range sch.Days[d] {
				if win.Start < 0 || win.End > 1440 || win.Start >= win.End {
					t.Fatalf("%q: bad window %+v", s, win)
				}
			}
		}
		sch.Allows(time.Unix(int64(len(s))*7919, 0), time.UTC)
	})
}

func (c *countingWriter) Write(p []byte) (int, error) { c.writes++; return c.Buffer.Write(p) }
