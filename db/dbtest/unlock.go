package dbtest

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/ingest"
)

var unlockTests = []test{
	{"UnlockHistoryKeyset", testUnlockHistoryKeyset},
	{"UnlockHistoryTimezoneDST", testUnlockHistoryTimezoneDST},
	{"UnlockLastUnlocks", testUnlockLastUnlocks},
	{"AnomalyAckInExport", testAnomalyAckInExport},
	{"UnlockAccess", testUnlockAccess},
	{"UnlockExportCSV", testUnlockExportCSV},
	{"UnlockImportCSV", testUnlockImportCSV},
	{"UnlockOfflineDevices", testUnlockOfflineDevices},
	{"UnlockOfflineAlertText", testUnlockOfflineAlertText},
	{"AnomalyAckRegisteredDevice", testAnomalyAckRegisteredDevice},
	{"UnlockSettingsJournal", testUnlockSettingsJournal},
	{"UnlockPurgeByEffectiveTime", testUnlockPurgeByEffectiveTime},
}

// ack1 acknowledges one anomalous event, keeping only the error.
func ack1(w *UnlockWorld, ctx context.Context, id int64, note string) error {
	_, err := w.Unlocks.AcknowledgeAnomaly(ctx, id, note)
	return err
}

func testUnlockHistoryKeyset(t *testing.T, newServices NewServices) {
	w := NewUnlockWorld(t, newServices(t), "UTC", time.Time{})
	dev, _ := w.EnabledDevice(t, w.A)
	dev2, _ := w.EnabledDevice(t, w.A)
	now := *w.Now
	// 250 events on 10 distinct times: pages must cut through equal times.
	var evs []doorledger.UnlockEvent
	for i := 0; i < 250; i++ {
		d, r, m := dev, doorledger.UnlockGranted, doorledger.MethodCourierApp
		if i%5 == 0 {
			d = dev2
		}
		if i%7 == 0 {
			r = doorledger.UnlockDenied
		}
		if i%3 == 0 {
			m = doorledger.MethodKeypad
		}
		evs = append(evs, doorledger.UnlockEvent{DeviceID: d, EventID: fmt.Sprintf("k-%03d", i), OccurredAt: now.Add(-time.Duration(i%10) * time.Minute),
			Method: m, Result: r})
	}
	// Shuffle the arrival so ids do not follow times.
	for i := range evs {
		j := (i * 97) % len(evs)
		evs[i], evs[j] = evs[j], evs[i]
	}
	w.Record(t, evs...)
	w.Record(t, doorledger.UnlockEvent{DeviceID: dev, EventID: "flagged", OccurredAt: now.AddDate(0, 0, -40), Method: "keypad", Result: doorledger.UnlockDenied})

	collect := func(f doorledger.UnlockFilter) []*doorledger.UnlockEvent {
		t.Helper()
		var all []*doorledger.UnlockEvent
		for pages := 0; ; pages++ {
			page, err := w.Unlocks.History(As(w.BoardA), f)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Events) > f.Limit || pages > 100 {
				t.Fatalf("page of %d", len(page.Events))
			}
			all = append(all, page.Events...)
			if page.Next.IsZero() {
				return all
			}
			// Through the URL form and back.
			if f.After, err = doorledger.ParseUnlockCursor(page.Next.String()); err != nil {
				t.Fatal(err)
			}
		}
	}
	all := collect(doorledger.UnlockFilter{BuildingID: w.A, Limit: 7})
	if len(all) != 251 {
		t.Fatalf("paged through %d events, want 251", len(all))
	}
	seen := map[int64]bool{}
	for i, e := range all {
		if seen[e.ID] {
			t.Fatalf("event %d twice", e.ID)
		}
		seen[e.ID] = true
		if i > 0 {
			p := all[i-1]
			// By effective time: the event dated 40 days back by a
			// skewed clock counts at the time received, so it comes first.
			if e.EffectiveAt().After(p.EffectiveAt()) || e.EffectiveAt().Equal(p.EffectiveAt()) && e.ID > p.ID {
				t.Fatalf("not newest first at %d: %v/%d after %v/%d", i, e.EffectiveAt(), e.ID, p.EffectiveAt(), p.ID)
			}
		}
	}
	for _, tc := range []struct {
		name string
		f    doorledger.UnlockFilter
		want func(e *doorledger.UnlockEvent) bool
	}{
		{"device", doorledger.UnlockFilter{DeviceID: dev2}, func(e *doorledger.UnlockEvent) bool { return e.DeviceID == dev2 }},
		{"method", doorledger.UnlockFilter{Method: "Keypad"}, func(e *doorledger.UnlockEvent) bool { return e.Method == "keypad" }},
		{"result", doorledger.UnlockFilter{Result: doorledger.UnlockDenied}, func(e *doorledger.UnlockEvent) bool { return e.Result == "denied" }},
		{"anomalies", doorledger.UnlockFilter{AnomaliesOnly: true}, func(e *doorledger.UnlockEvent) bool { return len(e.Anomalies) > 0 }},
		{"kind", doorledger.UnlockFilter{Anomaly: doorledger.AnomalyClockSkew}, func(e *doorledger.UnlockEvent) bool { return e.HasAnomaly("clock_skew") }},
		{"device and result", doorledger.UnlockFilter{DeviceID: dev, Result: doorledger.UnlockGranted, Method: "courier_app"}, func(e *doorledger.UnlockEvent) bool {
			return e.DeviceID == dev && e.Result == "granted" && e.Method == "courier_app"
		}},
	} {
		tc.f.BuildingID, tc.f.Limit = w.A, 9
		got := collect(tc.f)
		n := 0
		for _, e := range all {
			if tc.want(e) {
				n++
			}
		}
		if len(got) != n || n == 0 {
			t.Errorf("%s: %d events, want %d", tc.name, len(got), n)
		}
		for _, e := range got {
			if !tc.want(e) {
				t.Errorf("%s: %+v", tc.name, e)
			}
		}
	}
	if _, err := w.Unlocks.History(As(w.BoardA), doorledger.UnlockFilter{BuildingID: w.A, From: "2026-02-30"}); doorledger.ErrorFields(err)["from"] == "" {
		t.Errorf("bad date: %v", err)
	}
	if _, err := doorledger.ParseUnlockCursor("12.x"); doorledger.ErrorCode(err) != doorledger.EINVALID {
		t.Errorf("bad cursor: %v", err)
	}
}

func testUnlockHistoryTimezoneDST(t *testing.T, newServices NewServices) {
	// The clock is moved ahead to a week after DST begins in 2027 (March 14).
	start := time.Date(2027, 3, 21, 16, 0, 0, 0, time.UTC)
	w := NewUnlockWorld(t, newServices(t), "America/New_York", start)
	ny, _ := time.LoadLocation("America/New_York")
	at := func(s string) time.Time {
		t.Helper()
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, ny)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	var evs []doorledger.UnlockEvent
	for _, s := range []string{"2027-03-13 23:30", "2027-03-14 00:30", "2027-03-14 01:59", "2027-03-14 03:01", "2027-03-14 23:30", "2027-03-15 00:30",
		"2027-03-20 23:59", "2027-03-21 00:00"} {
		evs = append(evs, doorledger.UnlockEvent{DeviceRef: "X1", BuildingID: w.A, EventID: s, OccurredAt: at(s), Method: "keypad", Result: doorledger.UnlockDenied})
	}
	w.Record(t, evs...)
	for _, tc := range []struct {
		from, to string
		want     []string
	}{
		{"2027-03-14", "2027-03-14", []string{"2027-03-14 23:30", "2027-03-14 03:01", "2027-03-14 01:59", "2027-03-14 00:30"}},
		{"2027-03-13", "2027-03-13", []string{"2027-03-13 23:30"}},
		{"2027-03-15", "", []string{"2027-03-21 00:00", "2027-03-20 23:59", "2027-03-15 00:30"}},
		{"", "2027-03-13", []string{"2027-03-13 23:30"}},
	} {
		page, err := w.Unlocks.History(As(w.MgrA), doorledger.UnlockFilter{BuildingID: w.A, From: tc.from, To: tc.to})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range page.Events {
			got = append(got, e.EventID)
		}
		if !slices.Equal(got, tc.want) || page.Timezone != "America/New_York" {
			t.Errorf("%s..%s: %q (%s), want %q", tc.from, tc.to, got, page.Timezone, tc.want)
		}
	}
	// Daily counts by local date, the 23-hour day included.
	days, err := w.Unlocks.DailyCounts(As(w.BoardA), w.A, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, d := range days {
		counts[d.Date] = d.Denied
	}
	if len(days) != 10 || days[0].Date != "2027-03-12" || days[9].Date != "2027-03-21" ||
		counts["2027-03-13"] != 1 || counts["2027-03-14"] != 4 || counts["2027-03-15"] != 1 || counts["2027-03-20"] != 1 || counts["2027-03-21"] != 1 {
		t.Fatalf("daily counts: %+v", days)
	}
	// And in autumn, the 25-hour day (November 7, 2027).
	*w.Now = time.Date(2027, 11, 8, 16, 0, 0, 0, time.UTC)
	w.Record(t,
		doorledger.UnlockEvent{DeviceRef: "X1", BuildingID: w.A, EventID: "fall-1", OccurredAt: at("2027-11-07 00:10"), Method: "keypad", Result: doorledger.UnlockGranted},
		doorledger.UnlockEvent{DeviceRef: "X1", BuildingID: w.A, EventID: "fall-2", OccurredAt: at("2027-11-07 23:50"), Method: "keypad", Result: doorledger.UnlockGranted},
		doorledger.UnlockEvent{DeviceRef: "X1", BuildingID: w.A, EventID: "fall-3", OccurredAt: at("2027-11-08 00:10"), Method: "keypad", Result: doorledger.UnlockGranted},
	)
	page, err := w.Unlocks.History(As(w.MgrA), doorledger.UnlockFilter{BuildingID: w.A, From: "2027-11-07", To: "2027-11-07"})
	if err != nil || len(page.Events) != 2 {
		t.Fatalf("25-hour day: %v %v", page, err)
	}
	days, _ = w.Unlocks.DailyCounts(As(w.MgrA), w.A, 0, 2)
	if len(days) != 2 || days[0].Date != "2027-11-07" || days[0].Granted != 2 || days[0].Anomalous != 2 || days[1].Granted != 1 {
		t.Fatalf("autumn daily counts: %+v", days)
	}
}

// LastUnlocks (the building page's "last unlock" column, one read) gives
// each device of the building its newest event by effective time, as one
// History page of one event per device did, and nothing to those without a
// grant on the building.
func testUnlockLastUnlocks(t *testing.T, newServices NewServices) {
	w := NewUnlockWorld(t, newServices(t), "America/New_York", time.Time{})
	now := *w.Now
	d1, _ := w.EnabledDevice(t, w.A)
	d2, _ := w.EnabledDevice(t, w.A)
	quiet, _ := w.EnabledDevice(t, w.A)
	dB, _ := w.EnabledDevice(t, w.B)
	w.Record(t,
		w.At(d1, "d1-old", now.Add(-2*time.Hour), doorledger.UnlockGranted),
		w.At(d1, "d1-new", now.Add(-time.Hour), doorledger.UnlockDenied),
		// A wrong clock a day ahead: it counts at the time received, now.
		unlockEv(d2, "d2-skewed", now.Add(24*time.Hour), doorledger.UnlockGranted),
		w.At(d2, "d2-plain", now.Add(-time.Minute), doorledger.UnlockGranted),
		w.At(0, "relay", now.Add(-time.Second), doorledger.UnlockGranted),
		w.At(dB, "other-building", now, doorledger.UnlockGranted),
	)
	last, err := w.Unlocks.LastUnlocks(As(w.BoardA), w.A)
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != 2 || last[d1] == nil || last[d2] == nil || last[quiet] != nil {
		t.Fatalf("last unlocks: %v, want devices %d and %d", last, d1, d2)
	}
	for _, dev := range []int64{d1, d2} {
		page, err := w.Unlocks.History(As(w.BoardA), doorledger.UnlockFilter{BuildingID: w.A, DeviceID: dev, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := last[dev], page.Events[0]; got.ID != want.ID || got.EventID != want.EventID || !got.OccurredAt.Equal(want.OccurredAt) {
			t.Errorf("device %d: last %+v, history's newest %+v", dev, got, want)
		}
	}
	if got := last[d2].EventID; got != "d2-skewed" {
		t.Errorf("device %d: last %s, want d2-skewed (received now)", d2, got)
	}
	if _, err := w.Unlocks.LastUnlocks(As(w.MgrB), w.A); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Errorf("a manager of another building: %v, want ENOTFOUND", err)
	}
	if _, err := w.Unlocks.LastUnlocks(As(w.InstA), w.A); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Errorf("an installer: %v, want ENOTFOUND", err)
	}
}

// The history's CSV export carries each event's acknowledgement: when (UTC),
// by whom, the note (defused like any cell a spreadsheet could run); an open
// or unflagged event leaves the three columns empty.
func testAnomalyAckInExport(t *testing.T, newServices NewServices) {
	w := NewUnlockWorld(t, newServices(t), "America/New_York", time.Time{})
	dev, _ := w.EnabledDevice(t, w.A)
	w.Record(t, unlockEv(dev, "fine", w.Now.Add(-2*time.Minute), doorledger.UnlockGranted),
		GhostEv(w.A, "gh-1", w), GhostEv(w.A, "gh-2", w))
	const note = "=panel removed; see ticket 41"
	if err := ack1(w, As(w.MgrA), w.EventID(t, w.A, "gh-1"), note); err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	if _, err := w.Unlocks.ExportCSV(As(w.BoardA), doorledger.UnlockFilter{BuildingID: w.A}, &buf); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(buf.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	head := recs[0]
	col := func(name string) int {
		i := slices.Index(head, name)
		if i < 0 {
			t.Fatalf("no column %q in %q", name, head)
		}
		return i
	}
	at, by, nt, ev := col("acknowledged_at_utc"), col("acknowledged_by"), col("ack_note"), col("event_id")
	seen := 0
	for _, r := range recs[1:] {
		switch r[ev] {
		case "gh-1":
			seen++
			if r[at] != w.Now.UTC().Format(time.RFC3339Nano) || r[by] != w.MgrAEmail || r[nt] != "'"+note {
				t.Errorf("acknowledged row: at %q by %q note %q", r[at], r[by], r[nt])
			}
		case "gh-2", "fine":
			seen++
			if r[at] != "" || r[by] != "" || r[nt] != "" {
				t.Errorf("%s: acknowledgement columns %q %q %q, want empty", r[ev], r[at], r[by], r[nt])
			}
		}
	}
	if seen != 3 {
		t.Errorf("%d of the 3 events exported", seen)
	}
}

func testUnlockAccess(t *testing.T, newServices NewServices) {
	w := NewUnlockWorld(t, newServices(t), "UTC", time.Time{})
	f := doorledger.UnlockFilter{BuildingID: w.A}
	for _, tc := range []struct {
		who  context.Context
		code string
	}{
		{As(w.Admin), ""}, {As(w.MgrA), ""}, {As(w.BoardA), ""},
		{As(w.InstA), doorledger.ENOTFOUND}, {As(w.MgrB), doorledger.ENOTFOUND},
		{context.Background(), doorledger.EUNAUTHORIZED},
	} {
		_, err := w.Unlocks.History(tc.who, f)
		_, err2 := w.Unlocks.ExportCSV(tc.who, f, io.Discard)
		_, err3 := w.Unlocks.DailyCounts(tc.who, w.A, 0, 30)
		_, err4 := w.Unlocks.UnlockSettings(tc.who, w.A)
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
		if _, err := w.Unlocks.UpdateUnlockSettings(As(tc.who), w.A, st); doorledger.ErrorCode(err) != tc.code {
			t.Errorf("%s updates settings: %v, want %q", tc.who.Email, err, tc.code)
		}
	}
	if _, err := w.Unlocks.ImportUnlocks(As(w.BoardA), doorledger.UnlockImport{BuildingID: w.A}); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Errorf("board imports: %v", err)
	}
	if _, err := w.Unlocks.Purge(As(w.MgrA), *w.Now); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Errorf("manager purges: %v", err)
	}
	bad := doorledger.UnlockSettings{RetentionDays: 7, BurstCount: -1, BurstMinutes: 0, HeartbeatSeconds: -5,
		DeliveryHours: doorledger.DeliverySchedule{Restricted: true, Days: [7][]doorledger.DeliveryWindow{1: {{Start: 600, End: 500}}}}}
	fields := doorledger.ErrorFields(func() error { _, err := w.Unlocks.UpdateUnlockSettings(As(w.MgrA), w.A, bad); return err }())
	for _, f := range []string{"retention_days", "burst_count", "burst_minutes", "heartbeat_seconds", "delivery_hours"} {
		if fields[f] == "" {
			t.Errorf("no message for %s: %v", f, fields)
		}
	}
	got, err := w.Unlocks.UnlockSettings(As(w.BoardA), w.A)
	if err != nil || got.RetentionDays != 400 || got.BurstCount != 5 {
		t.Fatalf("settings: %+v %v", got, err)
	}
	if n := len(w.Journal(t, w.A, "building.unlock_settings")); n != 1 {
		t.Fatalf("settings audited %d times", n)
	}
}

func testUnlockExportCSV(t *testing.T, newServices NewServices) {
	w := NewUnlockWorld(t, newServices(t), "America/New_York", time.Time{})
	dev, _ := w.EnabledDevice(t, w.A)
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
	w.Record(t, evs...)
	var buf countingWriter
	rows, err := w.Unlocks.ExportCSV(As(w.BoardA), doorledger.UnlockFilter{BuildingID: w.A}, &buf)
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
	if tm, err := time.Parse(time.RFC3339, recs[1][0]); err != nil || !tm.Equal(now) || !strings.HasSuffix(recs[1][0], now.In(MustLoc(t, "America/New_York")).Format("-07:00")) {
		t.Errorf("local time %q (%v)", recs[1][0], err)
	}
	// Filtered.
	buf = countingWriter{}
	rows, err = w.Unlocks.ExportCSV(As(w.MgrA), doorledger.UnlockFilter{BuildingID: w.A, Result: doorledger.UnlockDenied}, &buf)
	if err != nil || rows != 0 || strings.Count(buf.String(), "\n") != 1 {
		t.Fatalf("filtered export: %d %v %q", rows, err, buf.String())
	}
	if n := len(w.Journal(t, 0, "unlocks.export")); n != 2 {
		t.Fatalf("exports audited %d times", n)
	}
}

// MustLoc loads a time zone.
func MustLoc(tb testing.TB, name string) *time.Location {
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

func (c *countingWriter) Write(p []byte) (int, error) { c.writes++; return c.Buffer.Write(p) }

func testUnlockImportCSV(t *testing.T, newServices NewServices) {
	w := NewUnlockWorld(t, newServices(t), "America/New_York", time.Time{})
	dev, _ := w.EnabledDevice(t, w.A)
	devB, _ := w.EnabledDevice(t, w.B)
	day := w.Now.AddDate(0, 0, -3).In(MustLoc(t, "America/New_York")).Format("2006-01-02")
	file := "Timestamp,Serial Number,Status,Type,Courier\n" +
		day + " 09:15:00,SN-00001,Success,Courier App,C-1\n" +
		day + " 09:16:00,sn-00001,Failed,Keypad,C-2\n" +
		day + " 09:17:00,UNKNOWN-9,Success,Remote,\n"
	pv, err := ingest.PreviewCSV(strings.NewReader(file), 5)
	if err != nil {
		t.Fatal(err)
	}
	imp, err := ingest.ParseCSV(strings.NewReader(file), ingest.CSVMapping{Columns: pv.Guess, Location: MustLoc(t, "America/New_York")})
	if err != nil {
		t.Fatal(err)
	}
	imp.BuildingID, imp.FileName = w.A, "export.csv"
	res, err := w.Unlocks.ImportUnlocks(As(w.MgrA), *imp)
	if err != nil || res.Inserted != 3 || res.Anomalous != 1 {
		t.Fatalf("import: %+v %v", res, err)
	}
	// The same file again: nothing new (event ids derived from the rows).
	if res, err := w.Unlocks.ImportUnlocks(As(w.MgrA), *imp); err != nil || res.Duplicates != 3 {
		t.Fatalf("re-import: %+v %v", res, err)
	}
	if e := w.Event(t, w.A, imp.Events[0].EventID); e.DeviceID != dev || e.Source != "csv" || e.OccurredAt.UTC().Hour() != 13 && e.OccurredAt.UTC().Hour() != 14 {
		t.Fatalf("imported: %+v", e)
	}
	// A device number of another building refuses the whole file, by line.
	imp.Events[1].DeviceID, imp.Events[2].DeviceID = devB, 424242
	imp.Events[0].EventID = "fresh"
	_, err = w.Unlocks.ImportUnlocks(As(w.MgrA), *imp)
	f := doorledger.ErrorFields(err)
	if doorledger.ErrorCode(err) != doorledger.EINVALID || !strings.Contains(f["line 3"], "not in building") || !strings.Contains(f["line 4"], "no device 424242") {
		t.Fatalf("bad import: %v", err)
	}
	if page, err := w.Unlocks.History(sys(), doorledger.UnlockFilter{BuildingID: w.A, Limit: 500}); err != nil || slices.ContainsFunc(page.Events, func(e *doorledger.UnlockEvent) bool { return e.EventID == "fresh" }) {
		t.Fatalf("part of a refused import was written (%v)", err)
	}
	if c := len(w.Journal(t, 0, "unlocks.import")); c != 2 {
		t.Fatalf("imports audited %d times", c)
	}
}

func testUnlockOfflineDevices(t *testing.T, newServices NewServices) {
	w := NewUnlockWorld(t, newServices(t), "UTC", time.Time{})
	dev, _ := w.EnabledDevice(t, w.A)
	quiet, _ := w.EnabledDevice(t, w.A)
	now := *w.Now
	st, _ := w.Unlocks.UnlockSettings(As(w.MgrA), w.A)
	st.HeartbeatSeconds = 3600
	if _, err := w.Unlocks.UpdateUnlockSettings(As(w.MgrA), w.A, *st); err != nil {
		t.Fatal(err)
	}
	if err := w.Unlocks.SetDeviceHeartbeat(As(w.MgrA), quiet, 0); err != nil { // not watched
		t.Fatal(err)
	}
	if err := w.Unlocks.SetDeviceHeartbeat(As(w.BoardA), quiet, 10); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Fatalf("board sets heartbeat: %v", err)
	}
	w.Record(t, unlockEv(dev, "alive", now.Add(-time.Minute), doorledger.UnlockGranted)) // last seen now
	if list, err := w.Unlocks.OfflineDevices(sys(), now.Add(30*time.Minute)); err != nil || len(list) != 0 {
		t.Fatalf("within the heartbeat: %+v %v", list, err)
	}
	later := now.Add(2 * time.Hour)
	list, err := w.Unlocks.OfflineDevices(sys(), later)
	if err != nil || len(list) != 1 || list[0].DeviceID != dev || !list[0].Alerted || !list[0].Since.Equal(now) {
		t.Fatalf("offline: %+v %v", list, err)
	}
	list, _ = w.Unlocks.OfflineDevices(sys(), later.Add(time.Hour))
	if len(list) != 1 || list[0].Alerted {
		t.Fatalf("still offline: %+v", list)
	}
	if got := w.Alerts(t, w.MgrAEmail); len(got) != 1 || !strings.Contains(got[0], "offline") {
		t.Fatalf("alerts: %q", got)
	}
	// Heard from again, then silent again: a new silence, a new alert.
	*w.Now = later
	w.Record(t, unlockEv(dev, "back", later, doorledger.UnlockDenied))
	if list, _ := w.Unlocks.OfflineDevices(sys(), later.Add(time.Minute)); len(list) != 0 {
		t.Fatalf("back online: %+v", list)
	}
	list, _ = w.Unlocks.OfflineDevices(sys(), later.Add(3*time.Hour))
	if len(list) != 1 || !list[0].Alerted {
		t.Fatalf("silent again: %+v", list)
	}
	if got := w.Alerts(t, w.MgrAEmail); len(got) != 2 {
		t.Fatalf("alerts: %q", got)
	}
	if c := len(w.Journal(t, 0, "device.offline")); c != 2 {
		t.Fatalf("offline audited %d times", c)
	}
}

// The offline alert and its journal entry, word for word: both backends
// write them the same.
func testUnlockOfflineAlertText(t *testing.T, newServices NewServices) {
	w := NewUnlockWorld(t, newServices(t), "Europe/Zurich", time.Time{})
	dev, _ := w.EnabledDevice(t, w.A)
	now := *w.Now
	st, _ := w.Unlocks.UnlockSettings(As(w.MgrA), w.A)
	st.HeartbeatSeconds = 5400
	if _, err := w.Unlocks.UpdateUnlockSettings(As(w.MgrA), w.A, *st); err != nil {
		t.Fatal(err)
	}
	w.Record(t, unlockEv(dev, "alive", now.Add(-time.Minute), doorledger.UnlockGranted))
	list, err := w.Unlocks.OfflineDevices(sys(), now.Add(2*time.Hour))
	if err != nil || len(list) != 1 || !list[0].Alerted {
		t.Fatalf("offline: %+v %v", list, err)
	}
	d, err := w.Devices.FindDeviceByID(sys(), dev)
	if err != nil {
		t.Fatal(err)
	}
	model := d.Model
	if model == "" {
		model = "(model unknown)"
	}
	wantSubject := fmt.Sprintf("Device %d offline at %s", dev, d.BuildingName)
	wantBody := fmt.Sprintf("Device %d (%s %s, serial %s, at %s) at %s has not been heard from since %s, longer than its heartbeat of 1h30m0s.\n"+
		"Commands cannot reach it while it is silent, and its unlock events arrive late if at all. Check its power and network, or the panel itself.\n",
		dev, d.Vendor, model, d.Serial, d.Location, d.BuildingName, now.Format(time.RFC1123))
	var alerts []*doorledger.Message
	for _, m := range w.MailsTo(t, w.MgrAEmail) {
		if m.Kind == "alert" {
			alerts = append(alerts, m)
		}
	}
	if len(alerts) != 1 || alerts[0].Subject != wantSubject || alerts[0].Body != wantBody {
		t.Fatalf("alerts %+v, want one:\n%s\n\n%s", alerts, wantSubject, wantBody)
	}
	e := w.JournalEntry(t, w.A, "device.offline")
	var detail struct {
		Since     string `json:"since"`
		Heartbeat int64  `json:"heartbeat_seconds"`
	}
	if err := json.Unmarshal([]byte(e.Detail), &detail); err != nil {
		t.Fatal(err)
	}
	if e.ObjectType != "device" || e.ObjectID != dev || detail.Heartbeat != 5400 || detail.Since != now.UTC().Format("2006-01-02T15:04:05.000000Z") {
		t.Errorf("journal entry %s %d %s", e.ObjectType, e.ObjectID, e.Detail)
	}
}

// The journal details of a change of a building's unlock rules and of a
// device's heartbeat, and the heartbeat's bound, as both backends write them.
func testUnlockSettingsJournal(t *testing.T, newServices NewServices) {
	w := NewUnlockWorld(t, newServices(t), "UTC", time.Time{})
	dev, _ := w.EnabledDevice(t, w.A)
	st, err := w.Unlocks.UnlockSettings(As(w.MgrA), w.A)
	if err != nil {
		t.Fatal(err)
	}
	old := *st
	st.RetentionDays, st.BurstCount, st.BurstMinutes, st.AlertBoard, st.HeartbeatSeconds = 400, 7, 15, true, 7200
	st.DeliveryHours, _ = doorledger.ParseDeliverySchedule("mon-fri 08:00-18:00")
	if _, err := w.Unlocks.UpdateUnlockSettings(As(w.MgrA), w.A, *st); err != nil {
		t.Fatal(err)
	}
	describe := func(s *doorledger.UnlockSettings) string {
		return fmt.Sprintf(`{"alert_board":%t,"burst_count":%d,"burst_minutes":%d,"delivery_hours":%q,"heartbeat_seconds":%d,"retention_days":%d}`,
			s.AlertBoard, s.BurstCount, s.BurstMinutes, s.DeliveryHours.String(), s.HeartbeatSeconds, s.RetentionDays)
	}
	e := w.JournalEntry(t, w.A, "building.unlock_settings")
	if want := `{"new":` + describe(st) + `,"old":` + describe(&old) + `}`; e.Detail != want || e.ObjectType != "building" || e.ObjectID != w.A {
		t.Errorf("settings entry %s %d %s, want %s", e.ObjectType, e.ObjectID, e.Detail, want)
	}

	err = w.Unlocks.SetDeviceHeartbeat(As(w.MgrA), dev, 30*86400+1)
	if doorledger.ErrorCode(err) != doorledger.EINVALID || doorledger.ErrorMessage(err) != "Use a heartbeat of at most 30 days." {
		t.Errorf("heartbeat past 30 days: %v", err)
	}
	for _, seconds := range []int{30 * 86400, 0, -1} {
		if err := w.Unlocks.SetDeviceHeartbeat(As(w.MgrA), dev, seconds); err != nil {
			t.Fatalf("heartbeat %d: %v", seconds, err)
		}
	}
	var got []string
	for _, e := range w.Journal(t, w.A, "device.heartbeat") {
		if e.ObjectType != "device" || e.ObjectID != dev {
			t.Errorf("heartbeat entry about %s %d", e.ObjectType, e.ObjectID)
		}
		got = append(got, e.Detail)
	}
	slices.Sort(got)
	if want := []string{`{"seconds":0}`, `{"seconds":2592000}`, `{"seconds":null}`}; !slices.Equal(got, want) {
		t.Errorf("heartbeat entries %q, want %q", got, want)
	}
}

// An anomaly of a registered device (an unlock after its consent was
// withdrawn): its acknowledgement's journal entry names the device by id.
func testAnomalyAckRegisteredDevice(t *testing.T, newServices NewServices) {
	w := NewUnlockWorld(t, newServices(t), "UTC", time.Time{})
	dev, _ := w.EnabledDevice(t, w.A)
	w.Revoke(t, dev, w.Now.Add(-time.Hour))
	w.Record(t, unlockEv(dev, "late", w.Now.Add(-time.Minute), doorledger.UnlockGranted))
	e := w.Event(t, w.A, "late")
	if len(e.Anomalies) == 0 {
		t.Fatalf("event after the withdrawal recorded as %+v, want an anomaly", e)
	}
	if _, err := w.Unlocks.AcknowledgeAnomaly(As(w.MgrA), e.ID, "device removed"); err != nil {
		t.Fatal(err)
	}
	var detail map[string]any
	if err := json.Unmarshal([]byte(w.JournalEntry(t, w.A, "anomaly.acknowledge").Detail), &detail); err != nil {
		t.Fatal(err)
	}
	if len(detail) != 4 || detail["device_id"] != float64(dev) || detail["event_id"] != "late" || detail["note"] != "device removed" {
		t.Errorf("journal detail %v, want the device by id", detail)
	}
}

// Retention runs on the effective time: an event a wrong clock dated ahead,
// received longer ago than the retention, is purged (before, it could not be
// until that future date came, and the purge did not even select it); one
// dated far back but received within the retention is kept.
func testUnlockPurgeByEffectiveTime(t *testing.T, newServices NewServices) {
	w := NewUnlockWorld(t, newServices(t), "UTC", time.Time{})
	dev, _ := w.EnabledDevice(t, w.A)
	st, err := w.Unlocks.UnlockSettings(As(w.MgrA), w.A)
	if err != nil {
		t.Fatal(err)
	}
	st.RetentionDays = 30
	if _, err := w.Unlocks.UpdateUnlockSettings(As(w.MgrA), w.A, *st); err != nil {
		t.Fatal(err)
	}
	now := *w.Now
	// Recorded 40 days ago by a device whose clock said ten days from now.
	*w.Now = now.AddDate(0, 0, -40)
	w.Record(t, unlockEv(dev, "old-ahead", now.AddDate(0, 0, 10), doorledger.UnlockGranted))
	*w.Now = now
	w.Record(t, unlockEv(dev, "new-behind", now.AddDate(0, 0, -400), doorledger.UnlockGranted))
	if n, err := w.Unlocks.Purge(sys(), now); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v; want 1", n, err)
	}
	if w.Recorded(t, w.A, "old-ahead") {
		t.Error("the event received 40 days ago was kept")
	}
	if !w.Recorded(t, w.A, "new-behind") {
		t.Error("the event received today was purged")
	}
}
