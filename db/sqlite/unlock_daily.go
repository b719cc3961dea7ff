package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
)

// The per-day counts of unlock events (migration 050): unlock_daily holds a
// building's granted, denied and flagged events by the date, in the building's
// time zone, of their effective time, kept by triggers at every insert and
// delete of an event. What SQLite cannot do alone is this file's: writing a
// zone's UTC offsets (unlock_day_offsets, from Go's time zone database) and
// counting a building's events again when its zone changes, or when the
// portal finds it without current counts at start (the events recorded before
// migration 050, a building made around the services, a zone whose offsets
// Go's database now gives differently).

// Offsets are written from 1900 to 2100; times before fall in the first span
// and after in the last.
var (
	zoneSpansFrom  = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	zoneSpansUntil = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// zoneSpan is a stretch of UTC time over which a zone keeps one offset.
type zoneSpan struct {
	start, end string // as effective_at is written; "" and "9999" at the ends
	modifier   string // the offset as an SQLite date modifier
}

// zoneSpans lists a zone's offsets from zoneSpansFrom to zoneSpansUntil,
// spans of equal offset merged (a change of abbreviation alone is no span).
func zoneSpans(loc *time.Location) []zoneSpan {
	var out []zoneSpan
	for t := zoneSpansFrom; ; {
		_, off := t.In(loc).Zone()
		mod := strconv.Itoa(off) + " seconds"
		if off >= 0 {
			mod = "+" + mod
		}
		if n := len(out); n == 0 || out[n-1].modifier != mod {
			start := formatTime(t)
			if n == 0 {
				start = ""
			} else {
				out[n-1].end = start
			}
			out = append(out, zoneSpan{start: start, modifier: mod})
		}
		_, next := t.In(loc).ZoneBounds()
		if next.IsZero() { // this offset for ever
			break
		}
		// Past a zone's last listed change, Go computes the changes from its
		// rule a year at a time and may answer a bound at or before t at
		// the turn of the year: step over it (no zone changes its offset
		// on the last day of a year).
		if !next.After(t) {
			next = t.Add(24 * time.Hour)
		}
		if !next.Before(zoneSpansUntil) {
			break
		}
		t = next
	}
	out[len(out)-1].end = "9999"
	return out
}

// storedZoneSpans reads a zone's offsets as unlock_day_offsets holds them.
func storedZoneSpans(ctx context.Context, q querier, zone string) ([]zoneSpan, error) {
	rows, err := q.QueryContext(ctx, `SELECT starts_at, ends_at, modifier FROM unlock_day_offsets WHERE zone = ? ORDER BY starts_at`, zone)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []zoneSpan
	for rows.Next() {
		var s zoneSpan
		if err := rows.Scan(&s.start, &s.end, &s.modifier); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// writeZoneSpans makes unlock_day_offsets hold Go's offsets of zone; it
// reports whether they changed (and so every count dated in the zone).
func (tx *Tx) writeZoneSpans(ctx context.Context, zone string) (bool, error) {
	want := zoneSpans(location(zone))
	have, err := storedZoneSpans(ctx, tx, zone)
	if err != nil {
		return false, fmt.Errorf("read offsets of %q: %w", zone, err)
	}
	if slices.Equal(have, want) {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM unlock_day_offsets WHERE zone = ?`, zone); err != nil {
		return false, err
	}
	for _, s := range want {
		if _, err := tx.ExecContext(ctx, `INSERT INTO unlock_day_offsets (zone, starts_at, ends_at, modifier) VALUES (?, ?, ?, ?)`,
			zone, s.start, s.end, s.modifier); err != nil {
			return false, fmt.Errorf("write offsets of %q: %w", zone, err)
		}
	}
	return len(have) > 0, nil
}

// countedAll is unlock_daily_zones.counted_until once every event is counted.
const countedAll = "9999"

// countDaysChunk is how many events one catch-up transaction counts: tens of
// milliseconds of the writer, so ingest waits no longer than that.
var countDaysChunk = 5000

// CountDays brings every building's daily counts up to date (the system's
// background job; admins may run it too): each building whose events are
// not all counted (counted_until, migration 050) gets them counted in
// effective-time order, countDaysChunk at a time, each chunk a transaction
// of its own that moves the mark, until none is left or ctx ends. Returns how
// many events it counted. Nothing to do costs one read.
func (s *UnlockService) CountDays(ctx context.Context) (int64, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return 0, err
	}
	rows, err := s.db.read.QueryContext(ctx, `SELECT building_id, zone FROM unlock_daily_zones WHERE counted_until <> ? ORDER BY building_id`, countedAll)
	if err != nil {
		return 0, fmt.Errorf("daily counts to catch up: %w", err)
	}
	type pending struct {
		id   int64
		zone string
	}
	var list []pending
	for rows.Next() {
		var p pending
		if err := rows.Scan(&p.id, &p.zone); err != nil {
			rows.Close()
			return 0, err
		}
		list = append(list, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	var total int64
	for _, p := range list {
		for ctx.Err() == nil {
			n, done, err := s.countDaysStep(ctx, p.id, p.zone)
			total += n
			if err != nil {
				return total, fmt.Errorf("count days of building %d: %w", p.id, err)
			}
			if done {
				break
			}
		}
	}
	return total, ctx.Err()
}

// countDaysStep counts the next chunk of a building's uncounted events into
// unlock_daily and moves its mark past them. done: all are counted, or the
// building's zone changed meanwhile (the next CountDays starts it again).
func (s *UnlockService) countDaysStep(ctx context.Context, buildingID int64, zone string) (n int64, done bool, err error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return 0, false, err
	}
	defer tx.Rollback()
	var from string
	err = tx.QueryRowContext(ctx, `SELECT counted_until FROM unlock_daily_zones WHERE building_id = ? AND zone = ?`, buildingID, zone).Scan(&from)
	if err == sql.ErrNoRows || from == countedAll {
		return 0, true, nil
	} else if err != nil {
		return 0, false, err
	}
	if from == "" { // the first chunk: the zone's offsets, as Go gives them now
		if _, err := tx.writeZoneSpans(ctx, zone); err != nil {
			return 0, false, err
		}
	}
	// The chunk ends before the effective time of the countDaysChunk-th event
	// on (the events of that very time go into the next chunk whole).
	until := countedAll
	err = tx.QueryRowContext(ctx, `SELECT effective_at FROM unlock_events WHERE building_id = ?1 AND effective_at >= ?2
		ORDER BY effective_at LIMIT 1 OFFSET ?3`, buildingID, from, countDaysChunk).Scan(&until)
	if err != nil && err != sql.ErrNoRows {
		return 0, false, err
	}
	if until == from { // more than a chunk's events at one time: take them all
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MIN(effective_at), ?3) FROM unlock_events WHERE building_id = ?1 AND effective_at > ?2`,
			buildingID, from, countedAll).Scan(&until); err != nil {
			return 0, false, err
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO unlock_daily (building_id, day, granted, denied, anomalous)
		SELECT ?1, date(substr(e.effective_at, 1, 19), o.modifier) AS day,
			SUM(e.result = 'granted'), SUM(e.result = 'denied'), SUM(e.anomalies <> 0)
		FROM unlock_day_offsets o JOIN unlock_events e
			ON e.building_id = ?1 AND e.effective_at >= max(o.starts_at, ?3) AND e.effective_at < min(o.ends_at, ?4)
		WHERE o.zone = ?2 AND o.ends_at > ?3 AND o.starts_at < ?4
		GROUP BY day
		ON CONFLICT (building_id, day) DO UPDATE SET granted = granted + excluded.granted,
			denied = denied + excluded.denied, anomalous = anomalous + excluded.anomalous`, buildingID, zone, from, until)
	if err != nil {
		return 0, false, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE unlock_daily_zones SET counted_until = ? WHERE building_id = ?`, until, buildingID); err != nil {
		return 0, false, err
	}
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM unlock_events WHERE building_id = ?1 AND effective_at >= ?2 AND effective_at < ?3`,
		buildingID, from, until).Scan(&n); err != nil {
		return 0, false, err
	}
	return n, until == countedAll, tx.Commit()
}

// checkZoneOffsets rewrites, at start, the offsets of every zone in use that
// Go's time zone database now gives differently (a new release of its
// rules), and has the buildings dated in such a zone counted again.
func (db *DB) checkZoneOffsets(ctx context.Context) error {
	var n int
	if err := db.write.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'unlock_daily'`).Scan(&n); err != nil || n == 0 {
		return err // before migration 050 (tests stop migrations early)
	}
	zones, err := queryStrings(ctx, db.write, `SELECT DISTINCT zone FROM unlock_day_offsets ORDER BY zone`)
	if err != nil {
		return err
	}
	for _, zone := range zones {
		tx, err := db.BeginTx(ctx)
		if err != nil {
			return err
		}
		changed, err := tx.writeZoneSpans(ctx, zone)
		if err == nil && changed {
			_, err = tx.ExecContext(ctx, `UPDATE unlock_daily_zones SET counted_until = '' WHERE zone = ?`, zone)
			if err == nil {
				_, err = tx.ExecContext(ctx, `DELETE FROM unlock_daily WHERE building_id IN (SELECT building_id FROM unlock_daily_zones WHERE zone = ?)`, zone)
			}
		}
		if err == nil {
			err = tx.Commit()
		}
		tx.Rollback()
		if err != nil {
			return fmt.Errorf("offsets of %q: %w", zone, err)
		}
	}
	return nil
}

func queryStrings(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// dailyCountsCurrent reports whether every event of the building is in its
// daily counts, and so they may be read.
func dailyCountsCurrent(ctx context.Context, q querier, buildingID int64) (bool, error) {
	var ok bool
	err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM unlock_daily_zones WHERE building_id = ? AND counted_until = ?)`,
		buildingID, countedAll).Scan(&ok)
	return ok, err
}

// DailyCounts counts a building's (or one of its devices') events of the last
// days, by the date of their effective time in the building's time zone (23-
// and 25-hour days included), oldest first, every day present. A building's
// counts are read from unlock_daily (unlock_daily.go), kept at every insert
// and purge; one device's, and a building's whose counts are being dated
// again, are counted from the events.
func (s *UnlockService) DailyCounts(ctx context.Context, buildingID, deviceID int64, days int) ([]doorledger.UnlockDay, error) {
	loc, err := checkUnlockRead(ctx, s.db.read, callerFrom(ctx), buildingID)
	if err != nil {
		return nil, err
	}
	if days <= 0 {
		days = 30
	} else if days > 366 {
		return nil, doorledger.Errorf(doorledger.EINVALID, "Count at most 366 days.")
	}
	if deviceID != 0 {
		var n int
		if err := s.db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM devices WHERE id = ? AND building_id = ?`, deviceID, buildingID).Scan(&n); err != nil {
			return nil, err
		} else if n == 0 {
			return nil, doorledger.Errorf(doorledger.ENOTFOUND, "Device not found.")
		}
	}
	today := s.db.Now().In(loc)
	out := make([]doorledger.UnlockDay, days)
	for i := range out {
		out[i].Date = time.Date(today.Year(), today.Month(), today.Day()-(days-1-i), 0, 0, 0, 0, loc).Format("2006-01-02")
	}
	if deviceID == 0 {
		if ok, err := dailyCountsCurrent(ctx, s.db.read, buildingID); err != nil {
			return nil, fmt.Errorf("daily counts: %w", err)
		} else if ok {
			return out, readDailyCounts(ctx, s.db.read, buildingID, out)
		}
	}
	return out, countDays(ctx, s.db.read, buildingID, deviceID, loc, out)
}

// readDailyCounts fills days (consecutive dates, oldest first) from unlock_daily.
func readDailyCounts(ctx context.Context, q querier, buildingID int64, days []doorledger.UnlockDay) error {
	rows, err := q.QueryContext(ctx, `SELECT day, granted, denied, anomalous FROM unlock_daily
		WHERE building_id = ?1 AND day >= ?2 AND day <= ?3`, buildingID, days[0].Date, days[len(days)-1].Date)
	if err != nil {
		return fmt.Errorf("daily counts: %w", err)
	}
	defer rows.Close()
	at := make(map[string]int, len(days))
	for i, d := range days {
		at[d.Date] = i
	}
	for rows.Next() {
		var day string
		var g, dn, a int
		if err := rows.Scan(&day, &g, &dn, &a); err != nil {
			return err
		}
		if i, ok := at[day]; ok {
			days[i].Granted, days[i].Denied, days[i].Anomalous = g, dn, a
		}
	}
	return rows.Err()
}

// countDays fills days (consecutive dates in loc, oldest first) by counting
// the events of each, of one device when deviceID is not 0.
func countDays(ctx context.Context, q querier, buildingID, deviceID int64, loc *time.Location, days []doorledger.UnlockDay) error {
	// Numbered parameters throughout: ?1 the building, ?2 the device, then the days.
	values := make([]string, len(days))
	args := []any{buildingID, deviceID}
	for i, d := range days {
		day, err := time.ParseInLocation("2006-01-02", d.Date, loc)
		if err != nil {
			return err
		}
		end := time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, loc)
		n := len(args)
		values[i] = fmt.Sprintf("(?%d, ?%d, ?%d)", n+1, n+2, n+3)
		args = append(args, i, formatTime(day), formatTime(end))
	}
	deviceCond := ""
	if deviceID != 0 {
		deviceCond = " AND e.device_id = ?2"
	}
	rows, err := q.QueryContext(ctx, `WITH d(i, lo, hi) AS (VALUES `+strings.Join(values, ", ")+`)
		SELECT d.i, SUM(e.result = 'granted'), SUM(e.result = 'denied'), SUM(e.anomalies <> 0)
		FROM d JOIN unlock_events e ON e.building_id = ?1 AND e.effective_at >= d.lo AND e.effective_at < d.hi`+deviceCond+`
		GROUP BY d.i`, args...)
	if err != nil {
		return fmt.Errorf("daily counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var i, g, dn, a int
		if err := rows.Scan(&i, &g, &dn, &a); err != nil {
			return err
		}
		days[i].Granted, days[i].Denied, days[i].Anomalous = g, dn, a
	}
	return rows.Err()
}
