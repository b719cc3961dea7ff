package postgres_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/postgres"
	"github.com/jackc/pgx/v5"
)

// dayCounts are a day's granted, denied and flagged events.
type dayCounts [3]int

// recountDays counts a building's events by the date, in its time zone (Go's
// time package), of their effective time: what unlock_daily must hold.
func recountDays(tb testing.TB, d *postgres.DB, building int64) map[string]dayCounts {
	tb.Helper()
	ctx := context.Background()
	var tz string
	if err := d.Pool().QueryRow(ctx, `SELECT timezone FROM buildings WHERE id = $1`, building).Scan(&tz); err != nil {
		tb.Fatal(err)
	}
	loc := dbtest.MustLoc(tb, tz)
	rows, err := d.Pool().Query(ctx, `SELECT effective_at, result, anomalies FROM unlock_events WHERE building_id = $1`, building)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]dayCounts{}
	var at time.Time
	var result string
	var bits int64
	if _, err := pgx.ForEachRow(rows, []any{&at, &result, &bits}, func() error {
		day := at.In(loc).Format("2006-01-02")
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
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return out
}

// checkRollup fails unless the building's daily counts are current and equal
// to a recount of its events (wantEvents of them, so that a test cannot pass
// on an empty building).
func checkRollup(tb testing.TB, d *postgres.DB, building int64, wantEvents int, when string) {
	tb.Helper()
	ctx := context.Background()
	var current bool
	if err := d.Pool().QueryRow(ctx, `SELECT counted_until = 'infinity' FROM unlock_daily_zones WHERE building_id = $1`, building).Scan(&current); err != nil || !current {
		tb.Errorf("%s: building %d not counted to the end (%v)", when, building, err)
	}
	want := recountDays(tb, d, building)
	got := map[string]dayCounts{}
	rows, err := d.Pool().Query(ctx, `SELECT to_char(day, 'YYYY-MM-DD'), granted, denied, anomalous FROM unlock_daily WHERE building_id = $1`, building)
	if err != nil {
		tb.Fatal(err)
	}
	var day string
	var c dayCounts
	if _, err := pgx.ForEachRow(rows, []any{&day, &c[0], &c[1], &c[2]}, func() error { got[day] = c; return nil }); err != nil {
		tb.Fatal(err)
	}
	n := 0
	for _, c := range want {
		n += c[0] + c[1]
	}
	if n != wantEvents {
		tb.Fatalf("%s: building %d has %d events, want %d", when, building, n, wantEvents)
	}
	for _, day := range slices.Sorted(maps.Keys(mapsUnion(want, got))) {
		if got[day] != want[day] {
			tb.Errorf("%s: building %d on %s: rollup %v, recount %v", when, building, day, got[day], want[day])
		}
	}
}

func mapsUnion(a, b map[string]dayCounts) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// localTimes are instants around local midnights, on ordinary days and on
// the days the zone's offset changes, in the past 400 days.
func localTimes(loc *time.Location, now time.Time) []time.Time {
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

// The daily counts are kept at insert by the local date of each event's
// effective time, in zones with daylight saving time, a half-hour offset
// and a half-hour change; a duplicate counts once.
func TestUnlockDailyRollupAtInsert(t *testing.T) {
	for _, tz := range []string{"America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"} {
		t.Run(tz, func(t *testing.T) {
			s, d := openServices(t)
			w := dbtest.NewUnlockWorld(t, s, tz, time.Time{})
			dev, _ := w.EnabledDevice(t, w.A)
			var evs []doorledger.UnlockEvent
			for i, tm := range localTimes(dbtest.MustLoc(t, tz), *w.Now) {
				evs = append(evs, w.At(dev, fmt.Sprintf("e-%d", i), tm, doorledger.UnlockGranted))
			}
			w.Record(t, evs...)
			w.Record(t, evs[:3]...)
			checkRollup(t, d, w.A, len(evs), "at insert")
		})
	}
}

// A change of zone dates every event again: meanwhile the chart counts the
// events, in the new zone; the catch-up, in steps with events written and
// purged between them, leaves counts equal to a recount; later inserts count
// at once.
func TestUnlockDailyRollupZoneChange(t *testing.T) {
	defer postgres.SetCountDaysChunk(postgres.SetCountDaysChunk(7))
	s, d := openServices(t)
	w := dbtest.NewUnlockWorld(t, s, "America/New_York", time.Time{})
	unlocks := s.Unlocks.(*postgres.UnlockService)
	now := *w.Now
	dev, _ := w.EnabledDevice(t, w.A)
	if _, err := unlocks.UpdateUnlockSettings(dbtest.As(w.MgrA), w.A, doorledger.UnlockSettings{RetentionDays: 30, BurstCount: 20, BurstMinutes: 10}); err != nil {
		t.Fatal(err)
	}
	var evs []doorledger.UnlockEvent
	for i, tm := range localTimes(dbtest.MustLoc(t, "America/New_York"), now) {
		evs = append(evs, w.At(dev, fmt.Sprintf("e-%d", i), tm, doorledger.UnlockGranted))
	}
	n := w.RecordResult(t, evs...).Inserted
	checkRollup(t, d, w.A, n, "in New York")
	before, err := unlocks.DailyCounts(dbtest.As(w.BoardA), w.A, 0, 30)
	if err != nil {
		t.Fatal(err)
	}
	b, err := w.Buildings.FindBuildingByID(sys(), w.A)
	if err != nil {
		t.Fatal(err)
	}
	zone := "Asia/Kolkata"
	if _, err := w.Buildings.UpdateBuilding(dbtest.As(w.MgrA), w.A, doorledger.BuildingInput{Name: b.Name, Address: b.Address, Timezone: zone, ConsentMonths: b.ConsentMonths}); err != nil {
		t.Fatal(err)
	}
	days, err := unlocks.DailyCounts(dbtest.As(w.BoardA), w.A, 0, 30)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(days, before) {
		t.Error("the daily counts did not change with the zone")
	}
	recount := recountDays(t, d, w.A)
	for _, day := range days {
		if r := recount[day.Date]; day.Granted != r[0] || day.Denied != r[1] || day.Anomalous != r[2] {
			t.Errorf("DailyCounts %s during the catch-up: %+v, want %v", day.Date, day, r)
		}
	}
	kolkata := dbtest.MustLoc(t, zone)
	steps := 0
	for i := 0; ; i++ {
		steps++
		done, err := postgres.CountDaysStep(sys(), unlocks, w.A, zone)
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
		n += w.RecordResult(t, more...).Inserted
		if i == 2 {
			purged, err := unlocks.Purge(sys(), now)
			if err != nil || purged == 0 {
				t.Fatalf("purge during the catch-up: %d %v", purged, err)
			}
			n -= int(purged)
		}
	}
	if steps < len(evs)/7 {
		t.Errorf("the catch-up took %d steps of 7 events for %d events and more", steps, len(evs))
	}
	checkRollup(t, d, w.A, n, "in Kolkata")
	w.Record(t, w.At(dev, "after", now.Add(-time.Second), doorledger.UnlockGranted))
	checkRollup(t, d, w.A, n+1, "recorded after the catch-up")
}
