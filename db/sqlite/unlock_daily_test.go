package sqlite_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

// dayCounts are a day's granted, denied and flagged events.
type dayCounts [3]int

// recountDays counts a building's events by the date, in its time zone (Go's
// time package), of their effective time: what unlock_daily must hold.
func recountDays(tb testing.TB, d *sqlite.DB, building int64) map[string]dayCounts {
	tb.Helper()
	var tz string
	if err := d.Reader().QueryRow(`SELECT timezone FROM buildings WHERE id = ?`, building).Scan(&tz); err != nil {
		tb.Fatal(err)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		tb.Fatal(err)
	}
	rows, err := d.Reader().Query(`SELECT effective_at, result, anomalies FROM unlock_events WHERE building_id = ?`, building)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	out := map[string]dayCounts{}
	for rows.Next() {
		var at, result string
		var bits int64
		if err := rows.Scan(&at, &result, &bits); err != nil {
			tb.Fatal(err)
		}
		t, err := time.Parse("2006-01-02T15:04:05.000000Z", at)
		if err != nil {
			tb.Fatal(err)
		}
		day := t.In(loc).Format("2006-01-02")
		c := out[day]
		if result == string(doorledger.UnlockGranted) {
			c[0]++
		} else {
			c[1]++
		}
		if bits != 0 {
			c[2]++
		}
		out[day] = c
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// rollupDays reads unlock_daily of a building.
func rollupDays(tb testing.TB, d *sqlite.DB, building int64) map[string]dayCounts {
	tb.Helper()
	rows, err := d.Reader().Query(`SELECT day, granted, denied, anomalous FROM unlock_daily WHERE building_id = ?`, building)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	out := map[string]dayCounts{}
	for rows.Next() {
		var day string
		var c dayCounts
		if err := rows.Scan(&day, &c[0], &c[1], &c[2]); err != nil {
			tb.Fatal(err)
		}
		out[day] = c
	}
	return out
}

// checkRollup fails unless the building's daily counts are current and equal
// to a recount of its events (wantEvents of them, so that a test cannot pass
// on an empty building).
func checkRollup(tb testing.TB, d *sqlite.DB, building int64, wantEvents int, when string) {
	tb.Helper()
	var until string
	if err := d.Reader().QueryRow(`SELECT counted_until FROM unlock_daily_zones WHERE building_id = ?`, building).Scan(&until); err != nil || until != "9999" {
		tb.Errorf("%s: building %d counted until %q (%v), want every event counted", when, building, until, err)
	}
	want, got := recountDays(tb, d, building), rollupDays(tb, d, building)
	n := 0
	for _, c := range want {
		n += c[0] + c[1]
	}
	if n != wantEvents {
		tb.Fatalf("%s: building %d has %d events, want %d", when, building, n, wantEvents)
	}
	if !maps.Equal(got, want) {
		days := slices.Sorted(maps.Keys(want))
		for _, k := range slices.Sorted(maps.Keys(got)) {
			if _, ok := want[k]; !ok {
				days = append(days, k)
			}
		}
		for _, day := range days {
			if got[day] != want[day] {
				tb.Errorf("%s: building %d on %s: rollup %v, recount %v", when, building, day, got[day], want[day])
			}
		}
	}
}

// mustCountDays runs the catch-up (the portal's background job) to the end.
func mustCountDays(tb testing.TB, s *sqlite.UnlockService) int64 {
	tb.Helper()
	n, err := s.CountDays(sys())
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// localTimes are instants around local midnights, on ordinary days and on
// the days the zone's offset changes in 2026, in the past 90 days and beyond.
func localTimes(tb testing.TB, loc *time.Location, now time.Time) []time.Time {
	tb.Helper()
	var days []time.Time
	for d := now.AddDate(0, 0, -3); d.After(now.AddDate(0, 0, -400)); d = d.AddDate(0, 0, -1) {
		_, end := d.In(loc).ZoneBounds()
		if !end.IsZero() && end.Before(now) && end.After(d) && end.Sub(d) <= 24*time.Hour {
			days = append(days, end) // an offset change
		}
	}
	days = append(days, now.AddDate(0, 0, -2), now.AddDate(0, 0, -30))
	var out []time.Time
	for _, d := range days {
		l := d.In(loc)
		midnight := time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
		for _, off := range []time.Duration{-time.Microsecond, 0, time.Second, 90 * time.Minute, 12 * time.Hour, 24*time.Hour - time.Microsecond} {
			out = append(out, midnight.Add(off))
		}
		out = append(out, d.Add(-time.Microsecond), d)
	}
	return out
}

// The daily counts are kept at insert, by the local date of each event's
// effective time, whatever path recorded it: one event at a time, batches,
// a vendor's CSV import, a device whose clock is wrong (counted on the day
// it was received), duplicates (counted once); and an acknowledgement
// changes no count. Zones with daylight saving time, a half-hour offset and a
// half-hour change.
func TestUnlockDailyRollupAtInsert(t *testing.T) {
	for _, tz := range []string{"America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"} {
		t.Run(tz, func(t *testing.T) {
			w := newUnlockWorld(t, tz, time.Time{})
			loc := mustLoc(t, tz)
			now := *w.Now
			dev, _ := w.enabledDevice(t, w.A)
			mustCountDays(t, w.svc) // the zones' offsets; nothing to count
			checkRollup(t, w.d, w.A, 0, "empty")
			times := localTimes(t, loc, now)
			n := 0
			// One at a time.
			for i, tm := range times[:8] {
				w.record(t, w.At(dev, fmt.Sprintf("one-%d", i), tm, doorledger.UnlockGranted))
				n++
			}
			checkRollup(t, w.d, w.A, n, "single events")
			// A batch, granted and denied, known and unknown devices (flagged).
			var batch []doorledger.UnlockEvent
			for i, tm := range times {
				result, device := doorledger.UnlockGranted, dev
				if i%3 == 0 {
					result = doorledger.UnlockDenied
				}
				if i%4 == 0 {
					device = 0
				}
				batch = append(batch, w.At(device, fmt.Sprintf("batch-%d", i), tm, result))
			}
			if res := w.record(t, batch...); res.Inserted != len(batch) || res.Anomalous == 0 {
				t.Fatalf("batch: %+v", res)
			}
			n += len(batch)
			checkRollup(t, w.d, w.A, n, "a batch")
			// The same again: duplicates count nothing.
			if res := w.record(t, batch...); res.Duplicates != len(batch) {
				t.Fatalf("batch again: %+v", res)
			}
			checkRollup(t, w.d, w.A, n, "duplicates")
			// Wrong clocks: a day ahead and a year behind, counted today (received now).
			w.record(t, unlockEv(dev, "skew-ahead", now.Add(30*time.Hour), doorledger.UnlockGranted),
				unlockEv(dev, "skew-behind", now.AddDate(-1, 0, 0), doorledger.UnlockDenied))
			n += 2
			checkRollup(t, w.d, w.A, n, "skewed clocks")
			if got := rollupDays(t, w.d, w.A)[now.In(loc).Format("2006-01-02")]; got[0]+got[1] < 2 || got[2] < 2 {
				t.Errorf("today's counts %v hold no skewed event", got)
			}
			// A vendor's CSV export, old events included.
			var imp []doorledger.UnlockEvent
			for i, tm := range times[:10] {
				e := unlockEv(dev, fmt.Sprintf("csv-%d", i), tm.AddDate(0, 0, -1), doorledger.UnlockGranted)
				e.Source = doorledger.SourceCSV
				imp = append(imp, e)
			}
			if res, err := w.svc.ImportUnlocks(uctx(w.MgrA), doorledger.UnlockImport{BuildingID: w.A, FileName: "export.csv", Events: imp}); err != nil || res.Inserted != len(imp) {
				t.Fatalf("import: %+v %v", res, err)
			}
			n += len(imp)
			checkRollup(t, w.d, w.A, n, "a CSV import")
			// Acknowledging the flagged ones changes nothing: the chart counts
			// events flagged, acknowledged or not.
			var ids []int64
			rows, _ := w.d.Reader().Query(`SELECT id FROM unlock_events WHERE building_id = ? AND anomalies <> 0`, w.A)
			for rows.Next() {
				var id int64
				rows.Scan(&id)
				ids = append(ids, id)
			}
			rows.Close()
			if _, err := w.svc.AcknowledgeAnomalies(uctx(w.MgrA), w.A, ids, "checked"); err != nil {
				t.Fatal(err)
			}
			checkRollup(t, w.d, w.A, n, "acknowledgements")
			checkRollup(t, w.d, w.B, 0, "the other building")

			// DailyCounts reads the rollup: what it holds is what the chart shows.
			today := now.In(loc).Format("2006-01-02")
			w.exec(t, `UPDATE unlock_daily SET granted = 4242 WHERE building_id = ? AND day = ?`, w.A, today)
			days, err := w.svc.DailyCounts(uctx(w.BoardA), w.A, 0, 30)
			if err != nil {
				t.Fatal(err)
			}
			if last := days[len(days)-1]; last.Date != today || last.Granted != 4242 {
				t.Errorf("DailyCounts today: %+v, want the rollup's 4242 granted", last)
			}
		})
	}
}

// The retention purge takes its events out of their days, and days counted
// down to nothing go.
func TestUnlockDailyRollupPurge(t *testing.T) {
	w := newUnlockWorld(t, "America/New_York", time.Time{})
	loc := mustLoc(t, "America/New_York")
	now := *w.Now
	dev, _ := w.enabledDevice(t, w.A)
	mustCountDays(t, w.svc)
	if _, err := w.svc.UpdateUnlockSettings(uctx(w.MgrA), w.A, doorledger.UnlockSettings{RetentionDays: 30, BurstCount: 20, BurstMinutes: 10}); err != nil {
		t.Fatal(err)
	}
	var evs []doorledger.UnlockEvent
	for i, tm := range localTimes(t, loc, now) {
		result := doorledger.UnlockGranted
		if i%2 == 0 {
			result = doorledger.UnlockDenied
		}
		evs = append(evs, w.At(dev, fmt.Sprintf("e-%d", i), tm, result))
	}
	// Around the purge's cutoff, both sides of it, on one local day.
	cut := now.AddDate(0, 0, -30)
	evs = append(evs, w.At(dev, "cut-before", cut.Add(-time.Second), doorledger.UnlockGranted), w.At(0, "cut-after", cut.Add(time.Second), doorledger.UnlockGranted))
	w.record(t, evs...)
	checkRollup(t, w.d, w.A, len(evs), "before the purge")
	n, err := w.svc.Purge(sys(), now)
	if err != nil || n == 0 {
		t.Fatalf("purge: %d %v", n, err)
	}
	checkRollup(t, w.d, w.A, len(evs)-int(n), "after the purge")
	oldest := cut.In(loc).AddDate(0, 0, -1).Format("2006-01-02")
	if c := w.count(t, `SELECT COUNT(*) FROM unlock_daily WHERE building_id = ? AND day < ?`, w.A, oldest); c != 0 {
		t.Errorf("%d days before %s are left in the rollup after the purge", c, oldest)
	}
}

// A new time zone dates every event again. The counts are not read until
// the catch-up has counted them again (the chart counts the events
// meanwhile), which it does in steps; events recorded and purged between
// its steps are counted right.
func TestUnlockDailyRollupZoneChange(t *testing.T) {
	defer sqlite.SetCountDaysChunk(sqlite.SetCountDaysChunk(7))
	w := newUnlockWorld(t, "America/New_York", time.Time{})
	now := *w.Now
	dev, _ := w.enabledDevice(t, w.A)
	mustCountDays(t, w.svc)
	if _, err := w.svc.UpdateUnlockSettings(uctx(w.MgrA), w.A, doorledger.UnlockSettings{RetentionDays: 30, BurstCount: 20, BurstMinutes: 10}); err != nil {
		t.Fatal(err)
	}
	var evs []doorledger.UnlockEvent
	for i, tm := range localTimes(t, mustLoc(t, "America/New_York"), now) {
		evs = append(evs, w.At(dev, fmt.Sprintf("e-%d", i), tm, doorledger.UnlockGranted))
	}
	w.record(t, evs...)
	n := len(evs)
	checkRollup(t, w.d, w.A, n, "in New York")
	before, err := w.svc.DailyCounts(uctx(w.BoardA), w.A, 0, 30)
	if err != nil {
		t.Fatal(err)
	}

	buildings := sqlite.NewBuildingService(w.d)
	b, err := buildings.FindBuildingByID(sys(), w.A)
	if err != nil {
		t.Fatal(err)
	}
	zone := "Asia/Kolkata"
	if _, err := buildings.UpdateBuilding(uctx(w.MgrA), w.A, doorledger.BuildingInput{Name: b.Name, Address: b.Address, Timezone: zone, ConsentMonths: b.ConsentMonths}); err != nil {
		t.Fatal(err)
	}
	if c := w.count(t, `SELECT COUNT(*) FROM unlock_daily_zones WHERE building_id = ? AND zone = ? AND counted_until = ''`, w.A, zone); c != 1 {
		t.Fatal("the zone change left the counts marked current")
	}
	// Meanwhile the chart counts the events, in the new zone.
	kolkata := mustLoc(t, zone)
	days, err := w.svc.DailyCounts(uctx(w.BoardA), w.A, 0, 30)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(days, before) {
		t.Error("the daily counts did not change with the zone")
	}
	recount := recountDays(t, w.d, w.A)
	for _, d := range days {
		if r := recount[d.Date]; d.Granted != r[0] || d.Denied != r[1] || d.Anomalous != r[2] {
			t.Errorf("DailyCounts %s during the catch-up: %+v, want %v", d.Date, d, r)
		}
	}
	// The catch-up in steps of 7 events, with writes between them: new
	// events on both sides of its mark, and a purge.
	steps := 0
	for i := 0; ; i++ {
		steps++
		done, err := sqlite.CountDaysStep(sys(), w.svc, w.A, zone)
		if err != nil {
			t.Fatal(err)
		}
		if done {
			break
		}
		var more []doorledger.UnlockEvent
		for j, tm := range []time.Time{now.AddDate(0, 0, -300), now.AddDate(0, 0, -45), now.AddDate(0, 0, -2), now.Add(-time.Minute)} {
			more = append(more, w.At(dev, fmt.Sprintf("during-%d-%d", i, j), tm.In(kolkata), doorledger.UnlockDenied))
		}
		n += w.record(t, more...).Inserted
		if i == 2 {
			purged, err := w.svc.Purge(sys(), now)
			if err != nil || purged == 0 {
				t.Fatalf("purge during the catch-up: %d %v", purged, err)
			}
			n -= int(purged)
		}
	}
	if steps < len(evs)/7 {
		t.Errorf("the catch-up took %d steps of 7 events for %d events and more", steps, len(evs))
	}
	checkRollup(t, w.d, w.A, n, "in Kolkata")
	w.record(t, w.At(dev, "after", now.Add(-time.Second), doorledger.UnlockGranted))
	checkRollup(t, w.d, w.A, n+1, "recorded after the catch-up")
}

// A purge between two steps of the catch-up that deletes events of one day
// on both sides of its mark takes out only those it had counted; events of
// one instant go into one step, however many.
func TestUnlockDailyRollupPurgeDuringCatchUp(t *testing.T) {
	defer sqlite.SetCountDaysChunk(sqlite.SetCountDaysChunk(1))
	w := newUnlockWorld(t, "UTC", time.Time{})
	now := *w.Now
	dev, _ := w.enabledDevice(t, w.A)
	if _, err := w.svc.UpdateUnlockSettings(uctx(w.MgrA), w.A, doorledger.UnlockSettings{RetentionDays: 30, BurstCount: 20, BurstMinutes: 10}); err != nil {
		t.Fatal(err)
	}
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -60)
	tie := now.Add(-time.Hour)
	w.record(t, w.At(dev, "old-1", day.Add(time.Hour), doorledger.UnlockGranted), w.At(dev, "old-2", day.Add(2*time.Hour), doorledger.UnlockGranted),
		w.At(dev, "tie-1", tie, doorledger.UnlockGranted), w.At(dev, "tie-2", tie, doorledger.UnlockDenied), w.At(0, "tie-3", tie, doorledger.UnlockGranted))
	if done, err := sqlite.CountDaysStep(sys(), w.svc, w.A, "UTC"); err != nil || done {
		t.Fatalf("first step: done %v, %v", done, err)
	}
	if got := rollupDays(t, w.d, w.A)[day.Format("2006-01-02")]; got[0] != 1 || got[1] != 0 {
		t.Fatalf("after one step of one event: %v", got)
	}
	if n, err := w.svc.Purge(sys(), now); err != nil || n != 2 {
		t.Fatalf("purge: %d %v", n, err)
	}
	// The mark stands at the purged old-2: one step up to the instant of
	// the three, one step for all three.
	steps := 0
	for done := false; !done; steps++ {
		if steps == 10 {
			t.Fatal("the catch-up makes no progress past three events of one instant")
		}
		var err error
		if done, err = sqlite.CountDaysStep(sys(), w.svc, w.A, "UTC"); err != nil {
			t.Fatal(err)
		}
	}
	if steps > 2 {
		t.Errorf("the rest took %d steps of one event, want 2", steps)
	}
	checkRollup(t, w.d, w.A, 3, "purged during the catch-up")
}

// Migration 050 counts the events recorded before it: the building's counts
// are read from the events until the catch-up has counted them.
func TestMigrationUnlockDailyBackfill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	old := sqlite.NewDB(path)
	old.PasswordCost = 4
	sqlite.SetMigrateThrough(old, "049")
	if err := old.Open(); err != nil {
		t.Fatal(err)
	}
	b, err := sqlite.NewBuildingService(old).CreateBuilding(sys(), doorledger.BuildingInput{Name: "Alder Court", Address: "1 Alder Court", Timezone: "America/Los_Angeles"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	ts := localTimes(t, mustLoc(t, "America/Los_Angeles"), now)
	for i, tm := range ts {
		s := tm.UTC().Format("2006-01-02T15:04:05.000000Z")
		result := "granted"
		if i%5 == 0 {
			result = "denied"
		}
		if _, err := old.Writer().Exec(`INSERT INTO unlock_events (building_id, device_ref, event_id, occurred_at, received_at, method, result, anomalies, source, effective_at)
			VALUES (?, 'relay-9', ?, ?, ?, 'keypad', ?, 4, 'mqtt', ?)`, b.ID, fmt.Sprintf("old-%d", i), s, s, result, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	d := sqlite.NewDB(path)
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	svc := sqlite.NewUnlockService(d)
	want, err := svc.DailyCounts(sys(), b.ID, 0, 366) // from the events
	if err != nil {
		t.Fatal(err)
	}
	if n := mustCountDays(t, svc); n != int64(len(ts)) {
		t.Errorf("the catch-up counted %d events, want %d", n, len(ts))
	}
	checkRollup(t, d, b.ID, len(ts), "after migration 050")
	got, err := svc.DailyCounts(sys(), b.ID, 0, 366) // from the rollup
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("DailyCounts from the rollup differ from the count of the events:\n%v\n%v", got, want)
	}
	if n := mustCountDays(t, svc); n != 0 {
		t.Errorf("a second catch-up counted %d events", n)
	}
}

// A zone's offsets, as written for SQLite, give every instant from 1900 to
// 2100 the date Go gives it; offsets changed behind the portal's back are
// written again at start and the zone's buildings counted again.
func TestUnlockDayOffsets(t *testing.T) {
	w := newUnlockWorld(t, "Australia/Lord_Howe", time.Time{})
	mustCountDays(t, w.svc)
	r := rand.New(rand.NewPCG(1, 2))
	lo, hi := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	for _, tz := range []string{"Australia/Lord_Howe", "UTC"} {
		loc := mustLoc(t, tz)
		for range 2000 {
			tm := time.Unix(lo+r.Int64N(hi-lo), 0).UTC()
			s := tm.Format("2006-01-02T15:04:05.000000Z")
			var got string
			if err := w.d.Reader().QueryRow(`SELECT date(substr(?1, 1, 19), (SELECT modifier FROM unlock_day_offsets WHERE zone = ?2 AND starts_at <= ?1
				ORDER BY starts_at DESC LIMIT 1))`, s, tz).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if want := tm.In(loc).Format("2006-01-02"); got != want {
				t.Fatalf("%s in %s: SQLite dates it %s, Go %s", s, tz, got, want)
			}
		}
	}
	dev, _ := w.enabledDevice(t, w.A)
	w.record(t, w.At(dev, "e", w.Now.Add(-time.Hour), doorledger.UnlockGranted))
	w.exec(t, `UPDATE unlock_day_offsets SET modifier = '+0 seconds' WHERE zone = 'Australia/Lord_Howe'`)
	path := w.d.Path
	if err := w.d.Close(); err != nil {
		t.Fatal(err)
	}
	d := sqlite.NewDB(path)
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var until string
	if err := d.Reader().QueryRow(`SELECT counted_until FROM unlock_daily_zones WHERE building_id = ?`, w.A).Scan(&until); err != nil || until != "" {
		t.Fatalf("after start, counted until %q (%v), want the building to be counted again", until, err)
	}
	mustCountDays(t, sqlite.NewUnlockService(d))
	checkRollup(t, d, w.A, 1, "offsets written again")
}
