package sqlite_test

import (
	"bytes"
	"encoding/csv"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

// An event a device with a wrong clock dates three days ahead,
// or 400 days back, but the portal receives today, is today's: in the
// history's date filter and pages, the CSV export, the daily counts and a
// board report for yesterday–today, which is not refused as "after today".
func TestUnlockEffectiveTime(t *testing.T) {
	w := newReportWorld(t, "America/New_York")
	ny, _ := time.LoadLocation("America/New_York")
	now := *w.Now
	dev, _ := w.enabledDevice(t, w.A)
	today := now.In(ny).Format("2006-01-02")
	yesterday := now.In(ny).AddDate(0, 0, -1).Format("2006-01-02")
	ahead, behind := now.Add(3*24*time.Hour), now.AddDate(0, 0, -400)
	w.record(t,
		unlockEv(dev, "skew-ahead", ahead, doorledger.UnlockGranted),
		unlockEv(dev, "skew-behind", behind, doorledger.UnlockDenied),
		unlockEv(dev, "plain", now.Add(-time.Minute), doorledger.UnlockGranted),
	)
	for _, id := range []string{"skew-ahead", "skew-behind"} {
		e := w.Event(t, w.A, id)
		if !e.ClockSkewed() || !e.EffectiveAt().Equal(now) {
			t.Errorf("%s: anomalies %v, effective %v; want clock_skew, effective at the time received %v", id, e.Anomalies, e.EffectiveAt(), now)
		}
	}
	var stored int
	w.d.Reader().QueryRow(`SELECT COUNT(*) FROM unlock_events WHERE event_id IN ('skew-ahead', 'skew-behind') AND effective_at = received_at AND effective_at <> occurred_at`).Scan(&stored)
	if stored != 2 {
		t.Errorf("%d skewed events stored with effective_at = received_at, want 2", stored)
	}
	want := []string{"plain", "skew-ahead", "skew-behind"}

	// The history's date filter, page by page.
	var got []string
	f := doorledger.UnlockFilter{BuildingID: w.A, From: today, To: today, Limit: 1}
	for {
		page, err := w.svc.History(uctx(w.BoardA), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			got = append(got, e.EventID)
		}
		if page.Next.IsZero() {
			break
		}
		f.After = page.Next
	}
	if slices.Sort(got); !slices.Equal(got, want) {
		t.Errorf("history of %s: %v, want %v", today, got, want)
	}
	for _, day := range []string{ahead.In(ny).Format("2006-01-02"), behind.In(ny).Format("2006-01-02")} {
		page, err := w.svc.History(uctx(w.BoardA), doorledger.UnlockFilter{BuildingID: w.A, From: day, To: day})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) != 0 {
			t.Errorf("history of %s (a date the wrong clock gave): %d events, want none", day, len(page.Events))
		}
	}

	// The CSV export of today: both times of each event, and the time it counts at.
	var buf bytes.Buffer
	if _, err := w.svc.ExportCSV(uctx(w.BoardA), doorledger.UnlockFilter{BuildingID: w.A, From: today, To: today}, &buf); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	got = got[:0]
	for _, r := range recs[1:] {
		got = append(got, r[col["event_id"]])
		if r[col["event_id"]] == "skew-ahead" {
			if r[col["occurred_at_utc"]] != ahead.UTC().Format(time.RFC3339Nano) || r[col["effective_at"]] != now.In(ny).Format(time.RFC3339Nano) {
				t.Errorf("exported skew-ahead: occurred %s, effective %s; want %s and %s", r[col["occurred_at_utc"]], r[col["effective_at"]],
					ahead.UTC().Format(time.RFC3339Nano), now.In(ny).Format(time.RFC3339Nano))
			}
		}
	}
	if slices.Sort(got); !slices.Equal(got, want) {
		t.Errorf("CSV export of %s: %v, want %v", today, got, want)
	}

	// The chart's daily counts.
	days, err := w.svc.DailyCounts(uctx(w.BoardA), w.A, 0, 7)
	if err != nil {
		t.Fatal(err)
	}
	if last := days[len(days)-1]; last.Date != today || last.Granted != 2 || last.Denied != 1 {
		t.Errorf("daily counts of %s: %+v, want 2 granted and 1 denied", today, last)
	}

	// A board report for yesterday–today holds them; a range reaching the
	// date the wrong clock gave is still after today.
	rec, err := w.reports.RequestReport(uctx(w.BoardA), doorledger.ReportRequest{BuildingID: w.A, Format: doorledger.ReportPDF, From: yesterday, To: today})
	if err != nil {
		t.Fatalf("report %s to %s: %v", yesterday, today, err)
	}
	if rec.Total != 3 {
		t.Errorf("report counted %d events, want 3", rec.Total)
	}
	if _, err := w.reports.RequestReport(uctx(w.BoardA), doorledger.ReportRequest{BuildingID: w.A, Format: doorledger.ReportPDF,
		From: yesterday, To: ahead.In(ny).Format("2006-01-02")}); doorledger.ErrorFields(err)["to"] == "" {
		t.Errorf("a range ending in three days: %v, want refused as after today", err)
	}
	got = got[:0]
	if err := w.reports.GatherReport(gen(), rec.ID, func(r *doorledger.AuditReport) error {
		return r.Events(func(e *doorledger.UnlockEvent) error {
			got = append(got, e.EventID)
			if e.EventID == "skew-behind" && (!e.OccurredAt.Equal(behind) || !e.ReceivedAt.Equal(now)) {
				t.Errorf("gathered skew-behind: occurred %v, received %v", e.OccurredAt, e.ReceivedAt)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if slices.Sort(got); !slices.Equal(got, want) {
		t.Errorf("report %s to %s: %v, want %v", yesterday, today, got, want)
	}
}

// Migration 012 gives every event recorded before it its effective time,
// without changing one log leaf: the log still verifies, and the events of
// a skewed clock are found by the date they were received.
func TestMigrationEffectiveTimeBackfill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	old := sqlite.NewDB(path)
	old.PasswordCost = 4
	sqlite.SetMigrateThrough(old, "011_command_refused.sql")
	if err := old.Open(); err != nil {
		t.Fatal(err)
	}
	b, err := sqlite.NewBuildingService(old).CreateBuilding(sys(), doorledger.BuildingInput{Name: "Alder Court", Address: "1 Alder Court", Timezone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	at := func(d time.Duration) string { return now.Add(d).Format("2006-01-02T15:04:05.000000Z") }
	// As the portal before 012 recorded them: no effective_at.
	for _, e := range []struct {
		id, occurred, received string
		bits                   int
	}{
		{"ahead", at(72 * time.Hour), at(0), 32 | 4},
		{"behind", at(-400 * 24 * time.Hour), at(0), 32 | 4},
		{"plain", at(-time.Minute), at(0), 4},
	} {
		if _, err := old.Writer().Exec(`INSERT INTO unlock_events (building_id, device_ref, event_id, occurred_at, received_at, method, result, anomalies, source)
			VALUES (?, 'relay-9', ?, ?, ?, 'keypad', 'denied', ?, 'mqtt')`, b.ID, e.id, e.occurred, e.received, e.bits); err != nil {
			t.Fatal(err)
		}
	}
	key := mustLogKey(t)
	// The log of such a database was written by the sequencer of its day.
	// This version's reads the redaction columns of 045 too (all empty
	// here): the old database lends it them for this one step.
	shim := []string{`ALTER TABLE unlock_events ADD COLUMN redaction_id INTEGER`,
		`CREATE TABLE unlock_redactions (unlock_id INTEGER PRIMARY KEY, redaction_id INTEGER, leaf BLOB, redacted BLOB)`}
	for _, q := range shim {
		if _, err := old.Writer().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sqlite.NewLogService(old, key).Sequence(sys()); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TABLE unlock_redactions`, `ALTER TABLE unlock_events DROP COLUMN redaction_id`} {
		if _, err := old.Writer().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	leaves := func(d *sqlite.DB) []string {
		t.Helper()
		rows, err := d.Reader().Query(`SELECT idx || ' ' || kind || ' ' || ref_id || ' ' || hex(hash) FROM log_leaves ORDER BY idx`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			rows.Scan(&s)
			out = append(out, s)
		}
		return out
	}
	before := leaves(old)
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	d := sqlite.NewDB(path)
	d.Now = func() time.Time { return now }
	if err := d.Open(); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	defer d.Close()
	if after := leaves(d); !slices.Equal(after, before) || len(after) < 3 {
		t.Errorf("log leaves changed by the migration:\nbefore %v\nafter  %v", before, after)
	}
	logs := sqlite.NewLogService(d, key)
	if _, err := logs.Sequence(sys()); err != nil {
		t.Fatal(err)
	}
	if v, err := logs.Verify(sys()); err != nil || !v.OK() {
		t.Fatalf("verify after the migration: %+v, %v", v, err)
	}
	rows, err := d.Reader().Query(`SELECT event_id, effective_at FROM unlock_events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var id, eff string
		rows.Scan(&id, &eff)
		got = append(got, id+" "+eff)
	}
	rows.Close()
	if want := []string{"ahead " + at(0), "behind " + at(0), "plain " + at(-time.Minute)}; !slices.Equal(got, want) {
		t.Errorf("effective_at after the migration: %v, want %v", got, want)
	}
	// Still never changed, and no event recorded without its effective time.
	for _, stmt := range []string{
		`UPDATE unlock_events SET effective_at = occurred_at`,
		`INSERT INTO unlock_events (building_id, device_ref, event_id, occurred_at, received_at, method, result, anomalies, source)
			VALUES (1, 'relay-9', 'no-effective', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', 'keypad', 'denied', 4, 'mqtt')`,
		`INSERT INTO unlock_events (building_id, device_ref, event_id, occurred_at, received_at, method, result, anomalies, source, effective_at)
			VALUES (1, 'relay-9', 'wrong-effective', '2026-01-01T00:00:00.000000Z', '2026-02-01T00:00:00.000000Z', 'keypad', 'denied', 36, 'mqtt', '2026-01-01T00:00:00.000000Z')`,
	} {
		if _, err := d.Writer().Exec(stmt); err == nil {
			t.Errorf("the database took %.60s…", stmt)
		}
	}
	page, err := sqlite.NewUnlockService(d).History(sys(), doorledger.UnlockFilter{BuildingID: b.ID, From: now.Format("2006-01-02"), To: now.Format("2006-01-02")})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 3 {
		t.Errorf("history of today after the migration: %d events, want 3", len(page.Events))
	}
}

// The effective time stored with each event is chosen by the
// clock-skew rule at insert, at its edges: the device's time while it is
// within a day ahead or 30 days behind the time received (a vendor's CSV
// export may be any age, never ahead), the time received beyond. The stored
// column, the event read back and the history's date filter agree.
func TestUnlockEffectiveAtChoice(t *testing.T) {
	w := newUnlockWorld(t, "UTC", time.Time{})
	dev, _ := w.enabledDevice(t, w.A)
	now := *w.Now
	const day = 24 * time.Hour
	for _, tt := range []struct {
		id       string
		occurred time.Time
		source   string
		skewed   bool
	}{
		{"on-time", now.Add(-time.Second), doorledger.SourceMQTT, false},
		{"ahead-23h", now.Add(23 * time.Hour), doorledger.SourceHTTP, false},
		{"ahead-25h", now.Add(25 * time.Hour), doorledger.SourceHTTP, true},
		{"behind-29d", now.Add(-29 * day), doorledger.SourceMQTT, false},
		{"behind-31d", now.Add(-31 * day), doorledger.SourceMQTT, true},
		{"csv-behind-400d", now.Add(-400 * day), doorledger.SourceCSV, false},
		{"csv-ahead-3d", now.Add(3 * day), doorledger.SourceCSV, true},
	} {
		ev := unlockEv(dev, tt.id, tt.occurred, doorledger.UnlockDenied)
		ev.Source = tt.source
		w.record(t, ev)
		want := tt.occurred
		if tt.skewed {
			want = now
		}
		e := w.Event(t, w.A, tt.id)
		if e.ClockSkewed() != tt.skewed || !e.EffectiveAt().Equal(want) {
			t.Errorf("%s: skewed %v, effective %v; want skewed %v, effective %v", tt.id, e.ClockSkewed(), e.EffectiveAt(), tt.skewed, want)
		}
		var stored string
		if err := w.d.Reader().QueryRow(`SELECT effective_at FROM unlock_events WHERE event_id = ?`, tt.id).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored != udb(want) {
			t.Errorf("%s: stored effective_at %s, want %s", tt.id, stored, udb(want))
		}
		date := want.Format("2006-01-02")
		page, err := w.svc.History(uctx(w.BoardA), doorledger.UnlockFilter{BuildingID: w.A, From: date, To: date, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(page.Events, func(e *doorledger.UnlockEvent) bool { return e.EventID == tt.id }) {
			t.Errorf("%s: not in the history of %s", tt.id, date)
		}
	}
}
