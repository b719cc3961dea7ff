package db

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"time"
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
		if next.IsZero() || !next.Before(zoneSpansUntil) || !next.After(t) {
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

// rebuildUnlockDaily counts a building's events again, by date in zone (its
// time zone), and records the zone as the one its counts are dated in. It
// reads every event of the building once (through the index on its
// effective time, one range per offset span); the writer is held meanwhile.
func (tx *Tx) rebuildUnlockDaily(ctx context.Context, buildingID int64, zone string) error {
	if _, err := tx.writeZoneSpans(ctx, zone); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM unlock_daily WHERE building_id = ?`, buildingID); err != nil {
		return fmt.Errorf("clear daily counts of building %d: %w", buildingID, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO unlock_daily (building_id, day, granted, denied, anomalous)
		SELECT ?1, date(substr(e.effective_at, 1, 19), o.modifier) AS day,
			SUM(e.result = 'granted'), SUM(e.result = 'denied'), SUM(e.anomalies <> 0)
		FROM unlock_day_offsets o JOIN unlock_events e
			ON e.building_id = ?1 AND e.effective_at >= o.starts_at AND e.effective_at < o.ends_at
		WHERE o.zone = ?2
		GROUP BY day`, buildingID, zone); err != nil {
		return fmt.Errorf("count days of building %d: %w", buildingID, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO unlock_daily_zones (building_id, zone) VALUES (?, ?)
		ON CONFLICT (building_id) DO UPDATE SET zone = excluded.zone`, buildingID, zone); err != nil {
		return fmt.Errorf("record the zone of building %d: %w", buildingID, err)
	}
	return nil
}

// ensureUnlockDaily brings every building's daily counts up to date at
// start: a zone whose offsets Go now gives differently gets them rewritten
// and its buildings counted again, as does any building whose counts are not
// dated in its time zone. One transaction per zone and per building.
func (db *DB) ensureUnlockDaily(ctx context.Context) error {
	var n int
	if err := db.write.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'unlock_daily'`).Scan(&n); err != nil || n == 0 {
		return err // before migration 050 (tests stop migrations early)
	}
	zones, err := queryStrings(ctx, db.write, `SELECT DISTINCT timezone FROM buildings ORDER BY timezone`)
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
			_, err = tx.ExecContext(ctx, `DELETE FROM unlock_daily_zones WHERE zone = ?`, zone)
		}
		if err == nil {
			err = tx.Commit()
		}
		tx.Rollback()
		if err != nil {
			return fmt.Errorf("offsets of %q: %w", zone, err)
		}
	}
	rows, err := db.write.QueryContext(ctx, `SELECT b.id, b.timezone FROM buildings b
		LEFT JOIN unlock_daily_zones z ON z.building_id = b.id WHERE z.zone IS NOT b.timezone ORDER BY b.id`)
	if err != nil {
		return err
	}
	type stale struct {
		id   int64
		zone string
	}
	var list []stale
	for rows.Next() {
		var s stale
		if err := rows.Scan(&s.id, &s.zone); err != nil {
			rows.Close()
			return err
		}
		list = append(list, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, s := range list {
		tx, err := db.BeginTx(ctx)
		if err != nil {
			return err
		}
		err = tx.rebuildUnlockDaily(ctx, s.id, s.zone)
		if err == nil {
			err = tx.Commit()
		}
		tx.Rollback()
		if err != nil {
			return err
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

// dailyCountsCurrent reports whether the building's counts are dated in its
// time zone, and so may be read.
func dailyCountsCurrent(ctx context.Context, q querier, buildingID int64) (bool, error) {
	var ok bool
	err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM buildings b JOIN unlock_daily_zones z
		ON z.building_id = b.id AND z.zone = b.timezone WHERE b.id = ?)`, buildingID).Scan(&ok)
	if err == sql.ErrNoRows {
		return false, nil
	}
	return ok, err
}
